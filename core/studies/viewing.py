"""What the Viewer page computes: built-in examples, uploads, windows, the picture and its scale.

Kept apart from the page (no streamlit here) so it can be tested and reused: the page only
wires widgets to these calls.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.studies.masks import LabelMap, draw
from core.studies.reader import open_files, open_study
from core.studies.study import Study, StudyError, View, study_errors
from core.studies.windows import Window

__all__ = [
    "EXAMPLES", "Example", "MaskStyle", "Picture", "Uploads", "example_path",
    "manual_or_preset", "metadata_rows", "nice_length", "open_example", "open_uploads",
    "picture", "png", "spacing_caption", "summary", "window_choices",
]


@dataclass(frozen=True)
class Example:
    """A built-in example study: a real file shipped inside an installed package."""

    file: str
    title: str
    package: str  # "pydicom" (pydicom / pydicom-data test files) or "nibabel"


EXAMPLES: dict[str, Example] = {
    e.file: e
    for e in (
        Example("693_UNCR.dcm", "CT head, 512x512, HU", "pydicom"),
        Example("RG1_UNCR.dcm", "CR chest, MONOCHROME1", "pydicom"),
        Example("anatomical.nii", "MR brain volume, NIfTI", "nibabel"),
        Example("emri_small.dcm", "MR, multi-frame (10 frames)", "pydicom"),
        Example("CT_small.dcm", "CT, 128x128", "pydicom"),
        Example("examples_ybr_color.dcm", "Ultrasound cine, colour", "pydicom"),
    )
}


def example_path(file: str) -> Path:
    """Where a built-in example lies on disk (never downloaded)."""
    example = EXAMPLES[file]
    if example.package == "nibabel":
        import nibabel

        path = Path(nibabel.__file__).parent / "tests" / "data" / file
        if not path.is_file():
            raise StudyError(f"{file}: not found in the installed nibabel")
        return path
    from pydicom.data import get_testdata_file

    found = get_testdata_file(file, download=False)
    if found is None:
        raise StudyError(f"{file}: not among the installed pydicom test files")
    return Path(str(found))


def open_example(file: str) -> Study:
    return open_study(example_path(file), name=file)


# -- uploads ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Uploads:
    """What a set of uploaded files opened as: studies to show and one line per failure."""

    studies: tuple[Study, ...]
    errors: tuple[str, ...]
    note: str | None = None  # set when several files could not be read as one series


def open_uploads(files: list[tuple[str, bytes]]) -> Uploads:
    """One file as itself; several as one study (a DICOM series) when they make one.

    When several files do not make one study, each is opened on its own, so one bad
    file does not hide the others.
    """
    if not files:
        return Uploads((), ())
    if len(files) == 1:
        name, data = files[0]
        try:
            return Uploads((open_study(data, name=name),), ())
        except StudyError as error:
            return Uploads((), (str(error),))
    try:
        return Uploads((open_files(files),), ())
    except StudyError as error:
        series_error = str(error)
    studies, errors = [], []
    for name, data in files:
        try:
            studies.append(open_study(data, name=name))
        except StudyError as error:
            errors.append(str(error))
    note = None
    if studies:
        note = (f"The {len(files)} files do not make one study ({series_error}); "
                "each readable file is opened on its own.")
    return Uploads(tuple(studies), tuple(errors), note)


# -- windows ------------------------------------------------------------------------------

def window_choices(study: Study) -> tuple[dict[str, Window], str | None]:
    """The windows to offer by name, and the name of the study's own default window.

    The study's default window comes first when it is none of the presets. Empty for
    colour studies, which are shown as stored.
    """
    with study_errors(study.name, "show"):
        presets = study.presets()
    if study.window is None:
        return presets, None
    for name, window in presets.items():
        if window == study.window:
            return presets, name
    default = f"Default: {study.window.describe(study.units)}"
    return {default: study.window, **presets}, default


def manual_or_preset(preset: Window, center: float, width: float) -> Window:
    """The preset itself while the manual values are its own, else a manual window."""
    if math.isclose(center, preset.center, abs_tol=1e-6) and math.isclose(
            width, preset.width, abs_tol=1e-6):
        return preset
    return Window(float(center), float(width), "manual")


# -- the picture --------------------------------------------------------------------------

# Small images are enlarged (whole-pixel nearest neighbour) to at least this size, so the
# browser shows crisp pixels and the scale bar has room.
MIN_SHOWN = 512
# Wider images are reduced to this width (area averaging) before they are sent: Streamlit
# would otherwise reduce them itself (bilinear, re-encoding the PNG), and no page column
# is wider.
MAX_WIDTH = 1460


@dataclass(frozen=True)
class Picture:
    """One image as the viewer shows it.

    `shown` is `Study.display(...)` exactly; `image` is that picture scaled by `scale`
    (small images enlarged by whole pixels, very wide ones reduced) with a strip below
    carrying the scale bar when the pixel spacing is known.
    """

    image: np.ndarray
    shown: np.ndarray
    view: View
    scale: float  # pixels of `image` per pixel of `shown`
    pixel_mm: float | None  # mm per pixel of `shown` across (None: spacing unknown)
    bar_mm: float | None  # length of the scale bar drawn, mm


def nice_length(limit_mm: float) -> float:
    """The longest 1, 2 or 5 x 10^k mm that is at most `limit_mm`."""
    if not 0 < limit_mm < math.inf:
        raise ValueError("the limit must be positive and finite")
    exponent = math.floor(math.log10(limit_mm))
    for step in (5, 2, 1):
        length = step * 10.0**exponent
        if length <= limit_mm * (1 + 1e-9):
            return length
    return 10.0**exponent  # unreachable: 1 x 10^floor(log10) <= limit


@dataclass(frozen=True)
class MaskStyle:
    """How a label map is drawn over a picture: 3D Slicer's defaults (fill 0.5, outline
    1.0), the segments hidden by their numbers, and Cornerstone's 2-pixel outline."""

    fill: float = 0.5
    outline: float = 1.0
    hidden: frozenset[int] = frozenset()
    width: int = 2


def picture(study: Study, index: int = 0, window: Window | None = None,
            plane: str | None = None, min_size: int = MIN_SHOWN,
            max_width: int = MAX_WIDTH, mask: LabelMap | None = None,
            style: MaskStyle = MaskStyle()) -> Picture:
    """The displayed image of one frame or slice, with a scale bar when spacing is known,
    and `mask` (aligned with the study: `masks.fit`) drawn over it in `style`.

    What a library raises on a study's odd values (a spacing no scale bar can draw)
    becomes a StudyError naming the study, as for reading it."""
    with study_errors(study.name, "show"):
        return _picture(study, index, window, plane, min_size, max_width, mask, style)


def _picture(study: Study, index: int, window: Window | None, plane: str | None,
             min_size: int, max_width: int, mask: LabelMap | None = None,
             style: MaskStyle = MaskStyle()) -> Picture:
    view = study.view(index, plane)
    shown = study.display(index, window, plane)
    rows, cols = shown.shape[:2]
    image, scale = shown, 1.0
    zoom = min_size // max(rows, cols)
    if zoom > 1:
        image, scale = np.repeat(np.repeat(shown, zoom, axis=0), zoom, axis=1), float(zoom)
    elif cols > max_width:
        size = (max_width, max(1, round(rows * max_width / cols)))
        image = np.asarray(Image.fromarray(shown).resize(size, Image.Resampling.BOX))
        scale = max_width / cols
    visible = (set() if mask is None
               else {s.number for s in mask.segments} - set(style.hidden))
    if visible:
        # Drawn at the size shown, so outlines are `style.width` screen pixels wide.
        image = draw(image, mask.view(index, plane), mask.segments, fill=style.fill,
                     outline=style.outline, visible=visible, width=style.width)
    pixel_mm = None
    if view.spacing is not None and min(view.spacing) > 0:
        # `display` may resample to square pixels: measure against what it returned.
        pixel_mm = view.values.shape[1] * view.spacing[1] / cols
        if not math.isfinite(pixel_mm) or pixel_mm <= 0:
            pixel_mm = None  # no scale bar for a size that cannot be drawn
    bar_mm = None
    if pixel_mm is not None:
        image, bar_mm = _with_scale_bar(image, pixel_mm / scale)
    return Picture(np.ascontiguousarray(image), shown, view, scale, pixel_mm, bar_mm)


def png(image: np.ndarray) -> bytes:
    """An 8-bit image as PNG (lossless), favouring speed over size."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _with_scale_bar(image: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, float]:
    """The image with a black strip below it holding a white bar and its length."""
    rows, cols = image.shape[:2]
    height = max(28, cols // 14)
    bar_mm = nice_length(cols * pixel_mm / 4)
    bar_px = max(1, round(bar_mm / pixel_mm))
    strip = Image.new("L", (cols, height), 0)
    draw = ImageDraw.Draw(strip)
    margin, thick = max(6, cols // 60), max(3, height // 8)
    top = (height - thick) // 2
    draw.rectangle([margin, top, margin + bar_px - 1, top + thick - 1], fill=255)
    label = f"{bar_mm:g} mm"
    font = _font(max(10, int(height * 0.55)))
    _, text_top, _, text_bottom = draw.textbbox((0, 0), label, font=font)
    draw.text((margin + bar_px + margin, (height - (text_bottom + text_top)) // 2), label,
              fill=255, font=font)
    band = np.asarray(strip)
    if image.ndim == 3:
        band = np.repeat(band[..., None], image.shape[2], axis=-1)
    return np.concatenate([image, band], axis=0), bar_mm


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def spacing_caption(pic: Picture, study: Study) -> str:
    """Spacing and scale in words, for under the picture."""
    view = pic.view
    if pic.pixel_mm is None or view.spacing is None:
        return "Pixel spacing not in the file: distances cannot be measured (no scale bar)."
    text = (f"Pixel spacing {view.spacing[0]:.4g} x {view.spacing[1]:.4g} mm (row x column)")
    if study.is_volume and study.slice_spacing:
        text += f", slices {study.slice_spacing:.4g} mm apart"
    rows, cols = view.values.shape[:2]
    if pic.shown.shape[:2] != (rows, cols):
        text += (f"; resampled to {pic.shown.shape[1]}x{pic.shown.shape[0]} square pixels of "
                 f"{pic.pixel_mm:.4g} mm for the true aspect ratio")
    if pic.scale > 1:
        text += f"; shown enlarged {pic.scale:g}x"
    elif pic.scale < 1:
        text += f"; shown reduced to {pic.image.shape[1]} pixels across"
    return text + f". Scale bar: {pic.bar_mm:g} mm."


# -- words and tables ---------------------------------------------------------------------

def summary(study: Study) -> str:
    """One line: format, modality, size, photometric, units, transfer syntax."""
    parts = [study.format, study.modality or "no modality", "x".join(map(str, study.shape)),
             study.photometric]
    if study.units:
        parts.append(f"values in {study.units}")
    if study.transfer_syntax:
        parts.append(study.transfer_syntax)
    return " · ".join(parts)


def metadata_rows(tags: dict[str, str]) -> list[dict[str, str]]:
    """A tag dictionary as table rows."""
    return [{"Tag": str(key), "Value": str(value)} for key, value in tags.items()]
