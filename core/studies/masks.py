"""Label maps: a mask per voxel (0 = nothing, k = segment k), with the segments' names
and colours, aligned with the study they belong to.

A `LabelMap`'s `labels` has the same layout as `Study.pixels` (frame or slice axis
first, then rows and columns) and the same geometry (affine, spacing), so it is cut into
views exactly as the study is (`study.cut`), measured and written. Label maps come from
NIfTI, DICOM SEG (highdicom; PS3.3 A.51), PNG, or a segmentation model's prediction
(`from_views`). `draw` shows one view over the study's picture as 3D Slicer does: a fill
and an outline per segment, in its colour.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from core.studies.reader import is_seg, open_study
from core.studies.study import (
    MAX_VOXELS,
    Stack,
    Study,
    StudyError,
    canonical_axes,
    check_memory,
    content_digest,
    cut,
    from_canonical,
    library_errors,
    one_line,
    printable,
    study_errors,
    to_canonical,
    uncut,
)

# Segments without a colour of their own: Sasha Trubetskoy's "20 simple, distinct
# colours" (the light and grey ones left out, as they vanish over a grey image).
DEFAULT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0),
    (255, 215, 180), (0, 0, 128), (250, 190, 212),
)
# A fractional (probability or occupancy) SEG voxel belongs to its segment from here.
FRACTION = 0.5


def default_colour(number: int) -> tuple[int, int, int]:
    """The display colour of segment `number` (1, 2, ...) when it has none of its own."""
    return DEFAULT_COLOURS[(int(number) - 1) % len(DEFAULT_COLOURS)]


@dataclass(frozen=True)
class Segment:
    """One label of a label map: its value in `LabelMap.labels`, name and display colour."""

    number: int  # 1..65535 (0 is "no segment")
    name: str
    colour: tuple[int, int, int]  # RGB 0-255


@dataclass
class LabelMap(Stack):
    """Which segment each voxel belongs to, aligned with a study.

    `labels`: (n, rows, cols) uint8 or uint16, n frames or slices as in `Study.pixels`.
    `affine`, `pixel_spacing`, `slice_spacing` as `Study`'s (None when unknown).
    `source`: "NIfTI", "DICOM SEG", "PNG" or "model" (a prediction).
    """

    name: str
    labels: np.ndarray
    segments: tuple[Segment, ...]
    source: str
    affine: np.ndarray | None = field(default=None, repr=False)
    pixel_spacing: tuple[float, float] | None = None
    slice_spacing: float | None = None
    notes: tuple[str, ...] = ()

    @cached_property
    def fingerprint(self) -> str:
        """The map's content (a job's input digest): its labels, segments and geometry."""
        return content_digest((self.segments, self.pixel_spacing, self.slice_spacing),
                              self.labels, self.affine)

    @property
    def _stack(self) -> np.ndarray:
        return self.labels

    @property
    def is_volume(self) -> bool:
        """As `Study.is_volume`: slices with a known position and orientation."""
        return self.affine is not None and self.frames > 1

    def view(self, index: int, plane: str | None = None) -> np.ndarray:
        """The 2-D labels of one image, oriented exactly as `Study.view(index, plane)`
        orients the pixels of a study with the same geometry."""
        plane = self._index(index, plane)
        if plane is None:
            return self.labels[index]
        return cut(*self._canonical, plane, index)[0]

    def volumes_ml(self) -> dict[str, float]:
        """Each segment's volume in mL (voxel count x voxel volume); {} when the voxel
        size (pixel and slice spacing) is unknown."""
        if self.pixel_spacing is None or not self.slice_spacing:
            return {}
        voxel_ml = self.pixel_spacing[0] * self.pixel_spacing[1] * self.slice_spacing / 1000
        return {s.name: float(self._counts[s.number] * voxel_ml) for s in self.segments}

    @cached_property
    def _counts(self) -> np.ndarray:
        # Voxels per label, counted once (a page asks on every rerun; 20 ms a volume).
        return np.bincount(self.labels.ravel(), minlength=self._top + 1)

    def segment(self, key: int | str) -> Segment:
        """A segment by its number or name (any case)."""
        for s in self.segments:
            if s.number == key or (isinstance(key, str) and s.name.casefold() == key.casefold()):
                return s
        names = ", ".join(f"{s.number} {s.name}" for s in self.segments) or "none"
        raise StudyError(f"{self.name}: no segment {key!r} (segments: {names})")

    # -- internals --------------------------------------------------------------------

    @property
    def _top(self) -> int:
        return max((s.number for s in self.segments), default=0)



# -- reading ------------------------------------------------------------------------------

def read_labels(path: str | Path | None, data: bytes | None = None,
                name: str | None = None) -> LabelMap:
    """A label map from a NIfTI (.nii, .nii.gz), DICOM SEG or PNG file (a path, or its
    bytes in `data`), the format found from the content. Anything else, or a malformed
    file, is one `StudyError` line naming it."""
    name = name or (str(path) if path is not None else "upload")
    if data is None:
        if path is None:
            raise StudyError(f"{name}: no file given")
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise StudyError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise StudyError(f"{name}: a folder; a label map is one file") from None
        except OSError as exc:
            raise StudyError(f"{name}: cannot read ({exc.strerror})") from None
    if not data:
        raise StudyError(f"{name}: the file is empty")
    with study_errors(name):
        if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise StudyError(f"{name}: a zip archive; a label map is one NIfTI, DICOM SEG "
                             "or PNG file")
        if data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\x1f\x8b")) or _nifti(data):
            # The study readers, with their guards on size and inflation, then a check
            # that the values are labels.
            labels = _from_study(open_study(data, name=name), name)
            return _named(labels, data) if labels.source == "NIfTI" else labels
        return _read_seg(data, name)


# A NIfTI comment extension (code 6) holding {"medlens_segments": [{"number", "name",
# "colour"}]}: how MedLens writes a mask's segment names and colours into NIfTI
# (core/segment/write.py), read back here.
NIFTI_COMMENT = 6


def _named(labels: LabelMap, data: bytes) -> LabelMap:
    """The label map with the segment names and colours its NIfTI file carries, if it
    carries them; as it is otherwise (a table that does not parse is ignored)."""
    import gzip
    import io
    import json

    import nibabel as nib

    stream = gzip.GzipFile(fileobj=io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else \
        io.BytesIO(data)
    try:
        header = nib.Nifti1Header.from_fileobj(stream, check=False)
        table = None
        for extension in header.extensions:
            if extension.get_code() == NIFTI_COMMENT:
                found = json.loads(extension.get_content()).get("medlens_segments")
                table = found if isinstance(found, list) else table
        if not table:
            return labels
        named = {int(row["number"]): Segment(int(row["number"]), printable(str(row["name"]))[:200],
                                             tuple(int(c) % 256 for c in row["colour"][:3]))
                 for row in table}
    except (*library_errors(), TypeError, AttributeError):
        return labels
    if any(not 0 < number <= 65535 for number in named):
        return labels
    present = {s.number: s for s in labels.segments}
    segments = tuple(named.get(k) or present[k] for k in sorted(set(named) | set(present)))
    return replace(labels, segments=segments)


def _nifti(data: bytes) -> bool:
    from core.studies.nifti import is_nifti

    return is_nifti(data)


def _from_study(study: Study, name: str) -> LabelMap:
    """A study's pixels as labels: whole numbers 0..65535 (a 0/255 PNG is label 1)."""
    if study.format == "JPEG":
        raise StudyError(f"{name}: a JPEG; its lossy compression changes label values "
                         "(save the mask as PNG)")
    values = study.pixels
    if values.ndim == 4:
        if not (np.array_equal(values[..., 0], values[..., 1])
                and np.array_equal(values[..., 0], values[..., 2])):
            raise StudyError(f"{name}: a colour picture; a label map's labels are grey "
                             "values 0, 1, 2...")
        values = values[..., 0]
    low, high = float(values.min()), float(values.max())
    if low < 0:
        raise StudyError(f"{name}: negative values (down to {low:g}); labels are 0, 1, 2...")
    if high > 65535:
        raise StudyError(f"{name}: values up to {high:g}; labels go up to 65535")
    labels = values.astype(np.uint8 if high < 256 else np.uint16)
    if not np.array_equal(labels, values):
        odd = float(values[labels != values].flat[0])
        raise StudyError(f"{name}: non-integer values (e.g. {odd:g}): a probability map, "
                         "not labels; threshold it first")
    notes = list(study.notes)
    counts = np.bincount(labels.ravel())
    present = [int(k) for k in np.flatnonzero(counts) if k]
    if study.format == "PNG" and present == [255]:
        labels = (labels == 255).astype(np.uint8)
        present = [1]
        notes.append("a binary 0/255 mask: 255 read as label 1")
    source = "NIfTI" if study.format == "NIfTI" else "PNG" if study.format == "PNG" else \
        study.format
    segments = tuple(Segment(k, f"label {k}", default_colour(k)) for k in present)
    return LabelMap(name=name, labels=labels, segments=segments, source=source,
                    affine=study.affine, pixel_spacing=study.pixel_spacing,
                    slice_spacing=study.slice_spacing, notes=tuple(notes))


def _read_seg(data: bytes, name: str) -> LabelMap:
    """A DICOM SEG (BINARY, FRACTIONAL or LABELMAP) into labels on its frames' volume:
    slices in order along the normal, the affine in `core.studies.dicom`'s convention."""
    import logging

    from core.studies.nifti import _quiet

    # pydicom and highdicom warn and log per odd attribute: the CLI allows one line, and
    # what matters is in the error or the notes.
    with warnings.catch_warnings(), _quiet(logging.getLogger("highdicom")), \
            _quiet(logging.getLogger("pydicom")):
        warnings.simplefilter("ignore")
        return _seg_labels(data, name)


def _seg_labels(data: bytes, name: str) -> LabelMap:
    from core.studies.dicom import kind_of, parse

    ds = parse(data, name)
    if not is_seg(ds):
        raise StudyError(f"{name}: a DICOM {kind_of(ds)} object, not a label map "
                         "(a DICOM SEG is)")
    rows, cols = _count(ds, "Rows", name), _count(ds, "Columns", name)
    frames = _count(ds, "NumberOfFrames", name, default=1)
    _check(name, frames, rows, cols, "frames")  # the declared size, before any decoding
    import highdicom as hd

    try:
        _little_endian(ds)
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:  # highdicom's checks raise any type on a malformed SEG
        raise StudyError(f"{name}: not a valid DICOM SEG ({one_line(exc)})") from None
    kind = str(getattr(seg.segmentation_type, "value", seg.segmentation_type))
    try:
        geometry = seg.get_volume_geometry()
    except Exception as exc:  # irregular or tiled frames: highdicom says why
        raise StudyError(f"{name}: its frames do not form a regular volume "
                         f"({one_line(exc)})") from None
    if geometry is None:
        raise StudyError(f"{name}: its frames do not form a regular volume")
    slices, height, width = (int(s) for s in geometry.spatial_shape)
    # Missing positions are filled with empty slices: a few frames may span many.
    _check(name, slices, height, width, "slices")

    segments, notes = [], []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        label = str(description.get("SegmentLabel", "") or "").strip() or f"segment {number}"
        colour = default_colour(number)
        lab = description.get("RecommendedDisplayCIELabValue")
        if lab is not None:
            try:
                colour = tuple(int(c) for c in
                               hd.color.CIELabColor.from_dicom_value(tuple(lab)).to_rgb())
            except Exception:  # an out-of-range colour: the default one is shown instead
                notes.append(f"segment {number}: its display colour is not valid")
        segments.append(Segment(int(number), one_line(label, 64), colour))

    labels = np.zeros((slices, height, width),
                      dtype=np.uint8 if max(seg.segment_numbers, default=0) < 256 else np.uint16)
    overlap = 0
    try:
        if kind == "LABELMAP":
            labels[:] = seg.get_volume(combine_segments=True).array
        else:
            for s in segments:
                # One segment at a time: never a (slices, rows, cols, segments) array.
                part = seg.get_volume(segment_numbers=[s.number]).array[..., 0]
                inside = part >= FRACTION if kind == "FRACTIONAL" else part > 0
                overlap += int(np.count_nonzero(inside & (labels > 0)))
                labels[inside] = s.number  # a later segment wins where they overlap
    except StudyError:
        raise
    except Exception as exc:  # pixel data highdicom or pydicom cannot decode
        raise StudyError(f"{name}: cannot read the segmentation frames "
                         f"({one_line(exc)})") from None
    if kind == "FRACTIONAL":
        fractional = str(getattr(seg.segmentation_fractional_type, "value", "")).lower()
        notes.append(f"a FRACTIONAL ({fractional or 'unknown type'}) segmentation: voxels "
                     f"at {FRACTION} or more belong to the segment")
    if overlap:
        notes.append(f"{overlap:,} voxels belong to more than one segment: the later "
                     "segment is kept")
    affine, labels = _lps_affine(np.asarray(geometry.affine, dtype=np.float64), labels)
    spacing = [float(np.linalg.norm(affine[:3, axis])) for axis in range(3)]
    return LabelMap(name=name, labels=labels, segments=tuple(segments), source="DICOM SEG",
                    affine=affine, pixel_spacing=(spacing[1], spacing[0]),
                    slice_spacing=spacing[2], notes=tuple(notes))


def _little_endian(ds) -> None:
    """Re-encode a big-endian SEG's pixel data as little endian, in place: highdicom reads
    only little-endian files (pydicom decodes both; the other elements are already
    values)."""
    from pydicom.pixels import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian

    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if syntax is None or syntax.is_little_endian or "PixelData" not in ds:
        return
    pixels = ds.pixel_array
    if int(ds.BitsAllocated) == 1:
        ds.PixelData = pack_bits(pixels, pad=True)
    else:
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)


def seg_summary(data: bytes, name: str) -> dict[str, object]:
    """What a DICOM SEG holds, from its header alone (no pixel data decoded): its
    segmentation type, and each segment's number, label, colour and frame count."""
    import highdicom as hd

    from core.studies.dicom import parse

    with study_errors(name):
        ds = parse(data, name)
        if not is_seg(ds):
            raise StudyError(f"{name}: not a DICOM SEG")
        frames = _count(ds, "NumberOfFrames", name, default=1)
        per_frame: dict[int, int] = {}
        shared = ds.get("SharedFunctionalGroupsSequence") or [None]
        for item in list(ds.get("PerFrameFunctionalGroupsSequence") or [])[:frames]:
            ident = item.get("SegmentIdentificationSequence") or (
                shared[0].get("SegmentIdentificationSequence") if shared[0] else None)
            if ident:
                number = int(ident[0].ReferencedSegmentNumber)
                per_frame[number] = per_frame.get(number, 0) + 1
        segments = []
        for item in ds.get("SegmentSequence") or []:
            number = int(item.get("SegmentNumber", 0))
            lab = item.get("RecommendedDisplayCIELabValue")
            try:
                colour = list(hd.color.CIELabColor.from_dicom_value(tuple(lab)).to_rgb()) \
                    if lab is not None else None
            except ValueError:
                colour = None
            segments.append({"number": number,
                             "label": one_line(str(item.get("SegmentLabel", "") or ""), 64),
                             "colour": colour, "frames": per_frame.get(number, 0)})
        return {"segmentation_type": str(ds.get("SegmentationType", "")),
                "frames": frames, "rows": _count(ds, "Rows", name),
                "columns": _count(ds, "Columns", name), "segments": segments}


def _count(ds, keyword: str, name: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value in (None, "") and default is not None:
        return default
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise StudyError(f"{name}: invalid {keyword} '{one_line(str(value), 40)}'") from None
    if count < 1:
        raise StudyError(f"{name}: {keyword} {count}: no label image")
    return count


def _check(name: str, count: int, rows: int, cols: int, what: str) -> None:
    """Refuse a label map over the voxel limit or the memory budget, before decoding."""
    if count * rows * cols > MAX_VOXELS:
        raise StudyError(f"{name}: {count} {what} of {cols}x{rows}, larger than the "
                         f"{MAX_VOXELS:,}-voxel limit")
    # Labels are 1-2 bytes a voxel, not 4, but decoding holds a frame stack beside them.
    check_memory(name, count * rows * cols, f"{count} {what} of {cols}x{rows}")


def _lps_affine(affine: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """highdicom's volume affine (index (slice, row, col) -> LPS) as `core.studies.dicom`
    writes one: index (col, row, slice) -> LPS, slices increasing along the normal
    (row cosines x column cosines), the labels flipped to match."""
    ours = affine[:, [2, 1, 0, 3]].copy()
    normal = np.cross(ours[:3, 0], ours[:3, 1])
    if float(ours[:3, 2] @ normal) < 0:
        ours[:3, 3] += (labels.shape[0] - 1) * ours[:3, 2]
        ours[:3, 2] = -ours[:3, 2]
        labels = np.ascontiguousarray(labels[::-1])
    return ours, labels


# -- pairing with a study -------------------------------------------------------------------

def _describe(shape: tuple[int, ...], volume: bool) -> str:
    n, rows, cols = shape[:3]
    if n == 1:
        return f"1 image of {cols}x{rows}"
    return f"{n} {'slices' if volume else 'frames'} of {cols}x{rows}"


def _frame(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a volume lies in canonical order: the LPS position of canonical voxel
    (0, 0, 0) and the LPS step of each canonical axis (z, y, x), in mm."""
    flips, order, _ = canonical_axes(affine)
    steps = [affine[:3, 2 - axis].copy() for axis in range(3)]  # array axis -> its column
    origin = affine[:3, 3].copy()
    for axis in flips:
        origin += (shape[axis] - 1) * steps[axis]
        steps[axis] = -steps[axis]
    return origin, np.stack([steps[axis] for axis in order])


def fit(labels: LabelMap, study: Study) -> LabelMap:
    """The label map in `study`'s layout and geometry, after checking it belongs there:
    the same grid (shape, spacing within 1e-3, orientation and slice positions within a
    tenth of a voxel), possibly stored in another axis order (a NIfTI mask of a DICOM
    series). A one-line StudyError naming both files when it does not fit."""
    grid = tuple(int(s) for s in study.pixels.shape[:3])
    mine = tuple(int(s) for s in labels.labels.shape)

    def refuse(why: str) -> StudyError:
        return StudyError(f"{labels.name}: {why} do not fit {study.name} "
                          f"({_describe(grid, study.is_volume)})")

    notes = list(labels.notes)
    values = labels.labels
    if study.is_volume and labels.is_volume:
        if sorted(mine) != sorted(grid):
            raise refuse(_describe(mine, True))
        ours_origin, ours_steps = _frame(mine, labels.affine)
        its_origin, its_steps = _frame(grid, study.affine)
        scale = float(np.min(np.linalg.norm(its_steps, axis=1)))
        (_, ours, _), (_, its, _) = canonical_axes(labels.affine), canonical_axes(study.affine)
        if [mine[a] for a in ours] != [grid[a] for a in its]:
            raise refuse(_describe(mine, True) + " in another orientation")
        if not np.allclose(ours_steps, its_steps, rtol=1e-3, atol=1e-3 * scale):
            raise refuse(f"{_describe(mine, True)} with other voxel axes "
                         f"({_steps(ours_steps)} vs {_steps(its_steps)} mm)")
        shift = float(np.linalg.norm(ours_origin - its_origin))
        if shift > 0.1 * scale:
            raise refuse(f"{_describe(mine, True)} {shift:.3g} mm away")
        if canonical_axes(labels.affine)[:2] != canonical_axes(study.affine)[:2]:
            canonical, _ = to_canonical(values, labels.affine)
            values = np.ascontiguousarray(from_canonical(canonical, study.affine))
            notes.append("reordered to the study's axes")
    else:
        if mine != grid:
            raise refuse(_describe(mine, labels.is_volume))
        for mask_mm, study_mm, what in (
                (labels.pixel_spacing, study.pixel_spacing, "pixel spacing"),
                (labels.slice_spacing, study.slice_spacing if study.frames > 1 else None,
                 "slice spacing")):
            if mask_mm is not None and study_mm is not None and not np.allclose(
                    mask_mm, study_mm, rtol=1e-3, atol=0):
                raise refuse(f"{_describe(mine, labels.is_volume)} at {what} "
                             f"{_mm(mask_mm)} (the study's: {_mm(study_mm)})")
    return LabelMap(name=labels.name, labels=values, segments=labels.segments,
                    source=labels.source, affine=study.affine,
                    pixel_spacing=study.pixel_spacing or labels.pixel_spacing,
                    slice_spacing=study.slice_spacing or labels.slice_spacing,
                    notes=tuple(notes))


def _steps(steps: np.ndarray) -> str:
    return "/".join(",".join(f"{v:.3g}" for v in row) for row in steps)


def _mm(value: float | Sequence[float]) -> str:
    values = [value] if isinstance(value, (int, float)) else list(value)
    return "x".join(f"{v:.4g}" for v in values) + " mm"


def from_views(study: Study, plane: str | None, slices: np.ndarray,
               segments: Sequence[Segment], name: str, source: str = "model") -> LabelMap:
    """Labels given view by view, (study.count(plane), h, w) as `Study.view(i, plane)`
    cuts them (a model's masks slice by slice), into a LabelMap in the study's stored
    layout and geometry."""
    slices = np.asarray(slices)
    plane = study._plane(plane)
    count = study.count(plane)
    shape = study.view(0, plane).values.shape[:2]
    if slices.shape != (count, *shape):
        raise ValueError(f"{name}: {slices.shape} labels for {count} {plane or 'frame'} "
                         f"views of {shape[0]}x{shape[1]}")
    top = max((s.number for s in segments), default=0)
    dtype = np.uint8 if top < 256 else np.uint16
    if plane is None:
        labels = slices.astype(dtype)
    else:
        labels = from_canonical(uncut(slices, plane), study.affine).astype(dtype)
    return LabelMap(name=name, labels=np.ascontiguousarray(labels), segments=tuple(segments),
                    source=source, affine=study.affine, pixel_spacing=study.pixel_spacing,
                    slice_spacing=study.slice_spacing)


# -- drawing --------------------------------------------------------------------------------

def draw(picture: np.ndarray, labels2d: np.ndarray, segments: Sequence[Segment],
         spacing: tuple[float, float] | None = None, fill: float = 0.5,
         outline: float = 1.0, visible: Collection[int | str] | None = None,
         width: int = 2) -> np.ndarray:
    """The picture (`Study.display`'s uint8 image) with each visible segment filled in its
    colour at `fill` opacity and outlined `width` pixels wide, inside its edge, at
    `outline` opacity (3D Slicer's defaults: fill 0.5, outline 1.0). `labels2d` is
    `LabelMap.view(index, plane)`, resized nearest-neighbour to the picture (which
    `Study.display` may have stretched for true aspect; `spacing`, the labels' (row, col)
    mm, is then checked against that stretch). Returns (H, W, 3) uint8."""
    import cv2

    picture = np.asarray(picture)
    height, width_px = picture.shape[:2]
    rows, cols = labels2d.shape
    if spacing is not None and (rows, cols) != (height, width_px):
        expected = rows * spacing[0] / (cols * spacing[1])
        if abs(expected / (height / width_px) - 1) > 0.05 + 2 / min(height, width_px):
            raise ValueError(f"a {width_px}x{height} picture does not show {cols}x{rows} "
                             f"labels at {spacing[0]:.4g}x{spacing[1]:.4g} mm")
    if (rows, cols) != (height, width_px):
        # Nearest neighbour at pixel centres, as an image resize with NEAREST does.
        r = np.minimum(((np.arange(height) + 0.5) * rows / height).astype(np.intp), rows - 1)
        c = np.minimum(((np.arange(width_px) + 0.5) * cols / width_px).astype(np.intp),
                       cols - 1)
        labels2d = labels2d[r[:, None], c[None, :]]
    labels2d = np.ascontiguousarray(labels2d, dtype=np.uint16 if labels2d.max(initial=0) > 255
                                    else np.uint8)
    out = np.array(picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2),
                   dtype=np.uint8, copy=True)
    top = int(labels2d.max(initial=0))
    if top == 0:
        return out
    # Per-label colour and opacities, looked up for every pixel at once: the cost does not
    # grow with the number of segments (an atlas has a hundred).
    colours = np.zeros((top + 1, 3), np.float32)
    fills = np.zeros(top + 1, np.float32)
    lines = np.zeros(top + 1, np.float32)
    for s in segments:
        if 0 < s.number <= top and (visible is None or s.number in visible
                                     or s.name in visible):
            colours[s.number], fills[s.number], lines[s.number] = s.colour, fill, outline
    inside = np.flatnonzero(labels2d.ravel())
    values = labels2d.ravel()[inside]
    alpha = fills[values]
    if width > 0 and outline != fill:
        # A pixel is on a segment's outline when another label lies within `width` pixels
        # (a square neighbourhood; pixels past the image's edge repeat it).
        kernel = np.ones((2 * int(width) + 1,) * 2, np.uint8)
        low = cv2.erode(labels2d, kernel, borderType=cv2.BORDER_REPLICATE).ravel()[inside]
        high = cv2.dilate(labels2d, kernel, borderType=cv2.BORDER_REPLICATE).ravel()[inside]
        edge = (low != values) | (high != values)
        alpha[edge] = lines[values[edge]]
    shown = alpha > 0
    where, a = inside[shown], alpha[shown][:, None]
    flat = out.reshape(-1, 3)
    flat[where] = np.round(flat[where] * (1 - a) + colours[values[shown]] * a).astype(np.uint8)
    return out
