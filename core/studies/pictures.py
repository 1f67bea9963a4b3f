"""PNG and JPEG files (and whatever else Pillow opens by content) into `Study`."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.studies.study import MAX_PIXELS, Study, StudyError, one_line
from core.studies.windows import Window, auto_window


def read_picture(data: bytes, name: str) -> Study:
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS check below decides; PIL's warning would be a second line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        fmt = img.format or "image"
        cols, rows = img.size
        if rows * cols > MAX_PIXELS:
            raise StudyError(
                f"{name}: {cols}x{rows} pixels, larger than the {MAX_PIXELS:,}-pixel limit"
            )
        img.load()
    except StudyError:
        raise
    except Image.DecompressionBombError as exc:
        raise StudyError(
            f"{name}: larger than the {MAX_PIXELS:,}-pixel limit ({one_line(exc)})"
        ) from None
    except UnidentifiedImageError:
        raise StudyError(f"{name}: cannot decode the image (not a valid PNG or JPEG)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{name}: cannot decode the image ({one_line(exc)})") from None

    notes: list[str] = []
    if img.mode in ("1", "L", "LA"):
        pixels, photometric = np.asarray(img.convert("L")), "MONOCHROME2"
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels, photometric = np.asarray(img), "MONOCHROME2"
    else:  # RGB, RGBA (alpha dropped), P (palette), CMYK, YCbCr
        if "A" in img.mode or "transparency" in img.info:
            notes.append("alpha channel dropped")
        pixels, photometric = np.asarray(img.convert("RGB")), "RGB"
    stored = "uint16" if img.mode.startswith("I;16") else str(pixels.dtype)
    values = pixels.astype(np.float32)[None]
    window = None
    if photometric != "RGB":
        if stored == "uint8":
            window = Window(128.0, 256.0, "full 8-bit range")
        else:
            window = auto_window(values[0])
    return Study(
        name=name,
        format=fmt,
        pixels=values,
        photometric=photometric,
        stored_dtype=stored,
        window=window,
        bits_stored=16 if stored != "uint8" else 8,
        metadata={"Format": fmt, "Mode": img.mode, "Size": f"{cols} x {rows}"},
        samples_per_pixel=3 if photometric == "RGB" else 1,
        notes=tuple(notes),
    )
