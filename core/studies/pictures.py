"""PNG and JPEG files (and whatever else Pillow opens by content) into `Study`."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.studies.study import MAX_PIXELS, Study, StudyError, check_memory, one_line
from core.studies.windows import Window, auto_window

GREY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I")


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
        # The header's size, before a byte of the image is decoded.
        check_memory(name, rows * cols * (1 if img.mode in GREY_MODES else 3),
                     f"a {cols}x{rows} image")
        img.load()
    except StudyError:
        raise
    except Image.DecompressionBombError as exc:
        raise StudyError(
            f"{name}: larger than the {MAX_PIXELS:,}-pixel limit ({one_line(exc)})"
        ) from None
    except UnidentifiedImageError:
        raise StudyError(f"{name}: cannot decode the image (not a valid PNG or JPEG)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports a broken PNG chunk as SyntaxError.
        raise StudyError(f"{name}: cannot decode the image ({one_line(exc)})") from None

    notes: list[str] = []
    if img.mode in ("1", "L", "LA"):
        grey = img if img.mode == "L" else img.convert("L")
        pixels, photometric = grey, "MONOCHROME2"
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels, photometric = img, "MONOCHROME2"
    else:  # RGB, RGBA (alpha dropped), P (palette), CMYK, YCbCr
        if "A" in img.mode or "transparency" in img.info:
            notes.append("alpha channel dropped")
        pixels, photometric = (img if img.mode == "RGB" else img.convert("RGB")), "RGB"
    stored = "uint16" if img.mode.startswith("I;16") else (
        "int32" if img.mode == "I" else "uint8")
    values = _float32(pixels)[None]
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


def _float32(img: Image.Image) -> np.ndarray:
    """The image's values as float32, converted band by band of rows: `np.asarray(img)`
    would first copy the whole image out of Pillow (100 MB for a 9999 x 9999 one)."""
    cols, rows = img.size
    shape = np.asarray(img.crop((0, 0, 1, 1))).shape[2:]
    out = np.empty((rows, cols, *shape), dtype=np.float32)
    step = max(1, (1 << 22) // max(1, cols))
    for top in range(0, rows, step):
        out[top:top + step] = np.asarray(img.crop((0, top, cols, min(rows, top + step))))
    return out
