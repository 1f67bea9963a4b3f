"""`Study`: one study's pixels in physical units, its views and how they are shown, and
`StudyError`, the one error of reading and showing a study.

Readers (`core.studies.reader`) build a Study; this module knows none of them.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from core.studies.windows import (
    CT_PRESETS,
    PERCENTILE_PRESETS,
    Window,
    apply_window,
    auto_window,
)

# A 50 000 x 50 000 image would need ~10 GB as float32: refuse before decoding.
MAX_PIXELS = 100_000_000
# A volume (series, multi-frame, NIfTI) up to ~1000 slices of 512 x 512 (1 GB as float32).
MAX_VOXELS = 270_000_000
# How deep archives may nest (a .nii.gz in a zip in a zip): deeper is not a study.
MAX_NESTING = 4

# The memory one study may use while it is opened, shown and prepared: a server setting,
# in MB. A study keeps its pixels as float32, and reading and showing it holds at most
# about PEAK_FACTOR times that (the file's bytes, the decoded values, the float32 result),
# so a file declaring more than the budget allows is refused before anything is decoded
# or inflated. The default fits the largest volume MAX_VOXELS allows (1.08 GB as float32).
MEMORY_SETTING = "MEDLENS_STUDY_MEMORY_MB"
DEFAULT_MEMORY_MB = 3200
PEAK_FACTOR = 3

PLANES = ("axial", "coronal", "sagittal")
MB = 1024**2
# Longer messages (a name nested twenty zips deep) keep their start and end.
MESSAGE_LIMIT = 300


def printable(text: str) -> str:
    """`text` with control and other non-printing characters escaped (a newline as \\n,
    ESC as \\x1b), so it stays one line and cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """At most `limit` characters; the middle of a longer text is elided, so the file
    named at its start and the problem at its end both stay."""
    if len(text) <= limit:
        return text
    tail = (limit - 5) // 2
    return f"{text[: limit - 5 - tail]} ... {text[-tail:]}"


class StudyError(ValueError):
    """A file that cannot be read or shown as a study. The message is one printable line
    of at most MESSAGE_LIMIT characters naming the file: every message is made so here,
    whatever names or values a file put into it."""

    def __init__(self, message: object = "") -> None:
        super().__init__(shorten(printable(str(message))))


def memory_budget() -> int:
    """The memory budget of one study, in bytes (MEDLENS_STUDY_MEMORY_MB, read on each
    call so a server's setting and a test's both apply)."""
    text = os.environ.get(MEMORY_SETTING, "").strip()
    if not text:
        return DEFAULT_MEMORY_MB * MB
    try:
        mb = int(text)
    except ValueError:
        mb = 0
    if mb <= 0:
        # A server setting, not the file's fault: not a StudyError.
        raise RuntimeError(f"{MEMORY_SETTING}={text!r}: expected a whole number of MB above 0")
    return mb * MB


# Bytes the archives around the file being read already hold (the members of a zip that
# holds a zip): they come out of the same share of the budget.
_enclosing: ContextVar[int] = ContextVar("medlens_enclosing_bytes", default=0)


def byte_budget() -> int:
    """The most bytes one study's files may hold once inflated (a zip's members, a gzip
    stream): its share of the memory budget, less what enclosing archives hold."""
    return max(0, memory_budget() // PEAK_FACTOR - _enclosing.get())


@contextmanager
def holding(count: int) -> Iterator[None]:
    """While an archive's `count` inflated bytes are held, what it contains may hold
    only the rest of the share (`byte_budget`)."""
    token = _enclosing.set(_enclosing.get() + count)
    try:
        yield
    finally:
        _enclosing.reset(token)


def check_memory(name: str, values: int, what: str) -> None:
    """Refuse, before decoding, a study of `values` float32 values (samples counted) whose
    reading would need more than the memory budget."""
    need, budget = PEAK_FACTOR * 4 * values, memory_budget()
    if need > budget:
        raise StudyError(f"{name}: {what} would need about {need / MB:,.0f} MB to open, more "
                         f"than the {budget / MB:,.0f} MB a study may use ({MEMORY_SETTING})")


def plausible_mm(value: float) -> bool:
    """A spacing a file may declare, in mm: finite, from a micrometre's thousandth (whole-
    slide images) to a kilometre. Beyond that, ratios overflow and pictures are one pixel
    thin; the spacing is treated as unknown."""
    return 1e-6 <= value <= 1e6


# Where the libraries keep their own exception types: (module, names). Looked up only in
# modules already imported (a library not loaded raised nothing), so naming them costs
# no import (nibabel alone takes ~0.4 s).
_LIBRARY_ERRORS = (
    ("PIL.Image", ("DecompressionBombError",)),
    ("pydicom.errors", ("BytesLengthException", "InvalidDicomError")),
    ("nibabel.spatialimages", ("HeaderDataError", "HeaderTypeError", "ImageDataError")),
    ("nibabel.filebasedimages", ("ImageFileError",)),
    ("nibabel.wrapstruct", ("WrapStructError",)),
)


def library_errors() -> tuple[type[BaseException], ...]:
    """What the libraries the readers call raise on malformed input: pydicom (also lazily,
    when an element is first read), nibabel, Pillow, numpy, zlib, zipfile, struct. A
    TypeError, AttributeError or NameError is not here: those are bugs of ours and must
    surface. SyntaxError is Pillow's for a broken PNG, caught where Pillow is called."""
    found: list[type[BaseException]] = [
        zlib.error, EOFError, OSError, ValueError, NotImplementedError, struct.error,
        RecursionError, MemoryError, OverflowError, ZeroDivisionError, IndexError, KeyError,
        zipfile.BadZipFile, zipfile.LargeZipFile]
    for module, names in _LIBRARY_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None:
            found += [getattr(loaded, name) for name in names if hasattr(loaded, name)]
    return tuple(found)


def describe(exc: BaseException) -> str:
    """A library's exception in a few words, for a StudyError."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "not enough memory"
    if isinstance(exc, zlib.error):
        return f"damaged compressed data: {one_line(exc)}"
    if isinstance(exc, EOFError):
        return f"the data ends early ({one_line(exc)})"
    return f"{type(exc).__name__}: {one_line(exc)}"


@contextmanager
def study_errors(name: str, doing: str = "read") -> Iterator[None]:
    """The boundary of reading or showing a study: what a library raises on malformed
    input becomes one StudyError naming the file; anything else (a bug) goes through."""
    try:
        yield
    except StudyError:
        raise
    except library_errors() as exc:
        raise StudyError(f"{name}: cannot {doing} it ({describe(exc)})") from exc


@dataclass(frozen=True)
class View:
    """One 2-D image of a study, in physical units, as it is to be shown.

    `spacing` is (between rows, between columns) in mm when known; `label` says which
    image it is ("axial 12 of 24", "frame 3 of 120").
    """

    values: np.ndarray
    spacing: tuple[float, float] | None
    plane: str | None
    index: int
    count: int
    label: str


class Stack:
    """What a study and a label map share: 2-D images with the frame or slice axis first,
    and the geometry (`affine`: (column, row, slice) -> LPS mm) that cuts a volume in
    the three planes. Subclasses give `name`, `affine`, `is_volume` and `_stack`."""

    name: str
    affine: np.ndarray | None

    @property
    def _stack(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def is_volume(self) -> bool:
        raise NotImplementedError

    @property
    def frames(self) -> int:
        """How many 2-D images it holds (frames or slices)."""
        return int(self._stack.shape[0])

    @property
    def acquired_plane(self) -> str | None:
        """The plane the slices were acquired in (the one the volume opens in)."""
        if not self.is_volume:
            return None
        normal = np.abs(self.affine[:3, 2])
        return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]

    def count(self, plane: str | None = None) -> int:
        """How many images there are to scroll through in `plane`."""
        plane = self._plane(plane)
        if plane is None:
            return self.frames
        return int(self._canonical[0].shape[PLANES.index(plane)])

    def _index(self, index: int, plane: str | None) -> str | None:
        """The plane to cut (None: frames as stored), with `index` checked against it."""
        plane = self._plane(plane)
        count = self.count(plane)
        if not 0 <= index < count:
            what = f"{plane} slice" if plane else "frame"
            raise StudyError(f"{self.name}: {what} {index} is out of range (0..{count - 1})")
        return plane

    def _plane(self, plane: str | None) -> str | None:
        if not self.is_volume:
            if plane not in (None, "axial"):
                raise StudyError(f"{self.name}: not a volume, so no {plane} view")
            return None
        if plane is None:
            return self.acquired_plane
        if plane not in PLANES:
            raise StudyError(f"{self.name}: unknown plane '{plane}' (planes: {', '.join(PLANES)})")
        return plane

    @cached_property
    def _canonical(self) -> tuple[np.ndarray, tuple[float, float, float]]:
        return to_canonical(self._stack, self.affine)


@dataclass
class Study(Stack):
    """One study, its pixels in physical units, ready to be shown.

    `pixels` has the frame or slice axis first: (n, rows, cols) for greyscale,
    (n, rows, cols, 3) for colour. For a volume (a series, an enhanced multi-frame
    or NIfTI) slices are in acquisition order along the slice normal, and `affine`
    maps (column, row, slice) indices to patient coordinates (DICOM LPS, mm).
    """

    name: str
    format: str  # "DICOM", "DICOM series", "NIfTI", "PNG" or "JPEG"
    pixels: np.ndarray
    photometric: str  # MONOCHROME1, MONOCHROME2 or RGB
    stored_dtype: str  # the dtype the file stores, before any rescale
    window: Window | None  # the file's own window, else a default; None for colour
    modality: str | None = None
    units: str = ""
    bits_stored: int = 8
    metadata: dict[str, str] = field(default_factory=dict)
    identifying: dict[str, str] = field(default_factory=dict, repr=False)
    transfer_syntax: str | None = None
    samples_per_pixel: int = 1
    pixel_spacing: tuple[float, float] | None = None  # (between rows, between columns), mm
    slice_spacing: float | None = None  # mm, for volumes
    affine: np.ndarray | None = field(default=None, repr=False)
    windows: tuple[Window, ...] = ()  # every window or VOI LUT the file offers
    notes: tuple[str, ...] = ()  # what was done or skipped while reading
    # The DICOM headers the pixels came from (pydicom datasets without pixel data), in
    # `pixels`' slice order (one for a single or multi-frame file), so what is derived
    # from the study (a DICOM SEG) can reference them. Never shown; () for other formats.
    sources: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # Notes carry names from the file (zip entries): each stays one printable line.
        self.notes = tuple(shorten(printable(note), 1000) for note in self.notes)

    @cached_property
    def fingerprint(self) -> str:
        """The study's content (a job's input digest): its name, pixels and how they are
        shown. Hashed once per Study."""
        return content_digest((self.name, self.format, self.photometric, self.window),
                              self.pixels, self.affine)

    @property
    def _stack(self) -> np.ndarray:
        return self.pixels

    @property
    def is_colour(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def is_volume(self) -> bool:
        """Slices with a known position and orientation: axial/coronal/sagittal views."""
        return self.affine is not None and self.frames > 1 and not self.is_colour

    @property
    def slices(self) -> int:
        """Slices of a volume or series; 1 for a single image or a cine (one slice over
        time)."""
        stack = self.is_volume or self.format in ("DICOM series", "NIfTI")
        return self.frames if stack else 1

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, cols) of one stored 2-D image."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    @property
    def shape(self) -> list[int]:
        """[rows, cols] for one image, [frames or slices, rows, cols] for several."""
        rows, cols = self.image_shape
        return [rows, cols] if self.frames == 1 else [self.frames, rows, cols]

    @property
    def spacing(self) -> tuple[float, ...] | None:
        """(slice, row, column) spacing in mm for volumes, (row, column) for images."""
        if self.pixel_spacing is None:
            return None
        if self.is_volume and self.slice_spacing:
            return (self.slice_spacing, *self.pixel_spacing)
        return self.pixel_spacing

    # -- views ------------------------------------------------------------------------

    @property
    def planes(self) -> tuple[str, ...]:
        """The planes a volume can be viewed in; () for images and cines."""
        return PLANES if self.is_volume else ()

    def default_index(self, plane: str | None = None) -> int:
        """Where a viewer opens: the middle slice of a volume, the first frame otherwise."""
        return self.count(plane) // 2 if self._plane(plane) else 0

    def view(self, index: int = 0, plane: str | None = None) -> View:
        """One 2-D image in physical units, oriented for display (radiological for volumes)."""
        plane = self._index(index, plane)
        count = self.count(plane)
        if plane is None:
            label = f"frame {index + 1} of {count}" if count > 1 else "image"
            return View(self.pixels[index], self.pixel_spacing, None, index, count, label)
        values, spacing = cut(*self._canonical, plane, index)
        known = self.pixel_spacing is not None  # else the affine is only index order
        label = f"{plane} {index + 1} of {count}"
        return View(values, spacing if known else None, plane, index, count, label)

    def image(self, frame: int = 0) -> np.ndarray:
        """The stored 2-D image of one frame or slice, in physical units."""
        if not 0 <= frame < self.frames:
            raise StudyError(f"{self.name}: frame {frame} is out of range (0..{self.frames - 1})")
        return self.pixels[frame]

    def display(self, index: int = 0, window: Window | None = None,
                plane: str | None = None) -> np.ndarray:
        """The 8-bit image exactly as the viewer shows it.

        Windowed (VOI), MONOCHROME1 inverted, volumes oriented radiologically, and
        non-square pixels resampled so the picture has the true aspect ratio.
        """
        view = self.view(index, plane)
        with study_errors(self.name, "show"):
            if self.is_colour:
                shown = np.clip(view.values, 0, 255).astype(np.uint8)
            else:
                shown = apply_window(view.values, window or self.window or self.auto_window)
                if self.photometric == "MONOCHROME1":
                    shown = 255 - shown
            return true_aspect(shown, view.spacing)

    def presets(self) -> dict[str, Window]:
        """Windows to offer: the file's own, CT presets for HU, percentile windows."""
        if self.is_colour:
            return {}
        found: dict[str, Window] = {}
        for i, w in enumerate(self.windows):
            name = (f"File: {w.describe(self.units)}" if w.lut is None
                    else f"VOI LUT {i + 1} from the file")
            found[name] = w
        if self.units == "HU":
            for name, (c, w) in CT_PRESETS.items():
                found[name] = Window(c, w, name)
        for name, (low, high) in PERCENTILE_PRESETS.items():
            found[name] = self._percentile_window(low, high)
        return found

    # -- internals --------------------------------------------------------------------

    @cached_property
    def auto_window(self) -> Window:
        """The 0.5-99.5 percentile window over every pixel (the "Auto" preset), computed
        once per study: a percentile of a whole volume takes a while."""
        return self._percentile_window(*PERCENTILE_PRESETS["Auto (0.5-99.5 percentile)"])

    def _percentile_window(self, low: float, high: float) -> Window:
        return auto_window(self.pixels, low, high)


def canonical_axes(affine: np.ndarray) -> tuple[tuple[int, ...], list[int],
                                                 tuple[float, float, float]]:
    """How a (slice, row, col) volume with this affine is reordered to (inferior->superior,
    anterior->posterior, right->left): the array axes to flip, then the transpose order,
    and the canonical (z, y, x) spacing in mm.

    Each array axis is assigned to the patient axis its direction is closest to (oblique
    volumes are shown along their nearest orthogonal planes, not resampled).
    """
    # Array axis 0 is the slice index (affine column 2), 1 the row (column 1), 2 the column.
    directions = [affine[:3, 2], affine[:3, 1], affine[:3, 0]]
    cosines = np.abs(np.stack([d / (np.linalg.norm(d) or 1.0) for d in directions]))
    patient_axis = [-1, -1, -1]
    for flat in np.argsort(-cosines, axis=None):  # greedy: strongest alignment first
        array_axis, lps = divmod(int(flat), 3)
        if patient_axis[array_axis] < 0 and lps not in patient_axis:
            patient_axis[array_axis] = lps
    flips = tuple(axis for axis in range(3) if directions[axis][patient_axis[axis]] < 0)
    # Target order (LPS z, y, x): superior, posterior, left increasing.
    order = [patient_axis.index(lps) for lps in (2, 1, 0)]
    spacing = tuple(float(np.linalg.norm(directions[axis])) for axis in order)
    return flips, order, spacing  # type: ignore[return-value]


def content_digest(described: tuple, values: np.ndarray, affine: np.ndarray | None) -> str:
    """The sha256 of an array (its buffer, not a copy: `tobytes` would double a 1 GB
    volume), its shape and dtype, its affine and what else describes it."""
    h = hashlib.sha256(repr((*described, values.shape, values.dtype.str)).encode())
    h.update(np.ascontiguousarray(values).data)
    if affine is not None:
        h.update(np.ascontiguousarray(affine, dtype=np.float64).tobytes())
    return h.hexdigest()


def to_canonical(pixels: np.ndarray, affine: np.ndarray
                 ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Reorder a (slice, row, col) volume to (inferior->superior, anterior->posterior,
    right->left), the orientation from which radiological views are cut
    (`canonical_axes`). Returns the volume (a view, not a copy) and its (z, y, x) spacing
    in mm."""
    flips, order, spacing = canonical_axes(affine)
    volume = np.flip(pixels, axis=flips) if flips else pixels
    return np.transpose(volume, order), spacing


def from_canonical(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The inverse of `to_canonical`: a canonical (z, y, x) volume back to the stored
    (slice, row, col) layout of a volume with this affine (a view, not a copy)."""
    flips, order, _ = canonical_axes(affine)
    stored = np.transpose(volume, np.argsort(order))
    return np.flip(stored, axis=flips) if flips else stored


def cut(volume: np.ndarray, spacing: tuple[float, float, float], plane: str, index: int
        ) -> tuple[np.ndarray, tuple[float, float]]:
    """One radiological image of a canonical volume (`to_canonical`) and its (row, col)
    spacing: the same cut for a study's pixels and a label map's labels."""
    sz, sy, sx = spacing
    # Canonical axes: 0 inferior->superior, 1 anterior->posterior, 2 right->left, so
    # axial images have the patient's right on the viewer's left and anterior at the
    # top; coronal and sagittal are flipped so superior is at the top.
    if plane == "axial":
        return volume[index], (sy, sx)
    if plane == "coronal":
        return volume[::-1, index, :], (sz, sx)
    return volume[::-1, :, index], (sz, sy)


def uncut(images: np.ndarray, plane: str) -> np.ndarray:
    """The inverse of `cut` over every index: a stack of (count(plane), h, w) images as
    `cut` gives them, back to the canonical (z, y, x) volume (a view, not a copy)."""
    if plane == "axial":
        return images
    if plane == "coronal":  # images[y] = volume[::-1, y, :]
        return np.transpose(images[:, ::-1, :], (1, 0, 2))
    return np.transpose(images[:, ::-1, :], (1, 2, 0))  # images[x] = volume[::-1, :, x]


def true_aspect(image: np.ndarray, spacing: tuple[float, float] | None,
                limit: int = 4096) -> np.ndarray:
    """Resample an 8-bit image so that one pixel is as tall as it is wide (bilinear)."""
    if spacing is None:
        return image
    row, col = (float(s) for s in spacing)
    # Spacings a file declares can be anything: beyond a 10^6 ratio the picture would be
    # one pixel thin (and 1e308 / 1e-308 overflows to inf and NaN); it is shown as stored.
    if not (row > 0 and col > 0 and 1e-6 < row / col < 1e6) or abs(row / col - 1.0) < 0.01:
        return image
    rows, cols = image.shape[:2]
    # Stretch the side with the coarser spacing; if that exceeds `limit`, shrink both.
    height, width = (rows * row / col, cols) if row > col else (rows, cols * col / row)
    shrink = min(1.0, limit / max(height, width))
    size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def one_line(exc: BaseException | str, limit: int = 240) -> str:
    """An exception's message (or a text) folded onto one printable line (decoders report
    on several), at most `limit` characters."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = printable(text) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."
