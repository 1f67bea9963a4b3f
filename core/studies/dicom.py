"""DICOM files and series into `Study`: every transfer syntax pydicom decodes with the
pylibjpeg plugins, greyscale, RGB, YBR and palette colour, multi-frame, and series.

The modality LUT (PS3.3 C.11.1) gives physical values: rescale slope/intercept, a
Modality LUT Sequence, or the Pixel Value Transformation of enhanced multi-frame
objects, per frame where frames differ. A series is ordered by position along the slice
normal (ImagePositionPatient . (row x column cosines)), else by InstanceNumber.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.studies.deid import IDENTIFYING_KEYWORDS, identifying
from core.studies.study import (
    MAX_PIXELS,
    MAX_VOXELS,
    MB,
    Study,
    StudyError,
    byte_budget,
    check_memory,
    library_errors,
    one_line,
    plausible_mm,
    study_errors,
)
from core.studies.windows import VOILUT, Window, auto_window

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
# Pixel Data, Float and Double Float Pixel Data: not kept in a study's source headers.
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

# What the viewer shows of a DICOM header: technical attributes only.
DISPLAY_KEYWORDS = (
    "Modality", "SOPClassUID", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
    "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "PixelSpacing",
    "ImagerPixelSpacing", "SliceThickness", "SpacingBetweenSlices", "RescaleIntercept",
    "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction", "KVP",
    "MagneticFieldStrength", "RepetitionTime", "EchoTime", "ImageType",
    "ImageOrientationPatient",
)
# Elements larger than this are read from the file's bytes when first used, not copied
# while the header is parsed (the pixel data of a 1000-file series, read one at a time).
DEFER = 64 * 1024
# Room for a gzipped DICOM's header beside the pixel data it declares (enhanced
# multi-frame objects carry a few KB per frame).
HEADER_ROOM = 64 * MB


def read_dicom(data: bytes, name: str) -> Study:
    """One DICOM file (single or multi-frame) into a `Study`."""
    ds = parse(data, name)
    _require_image(ds, name)
    return _study_from_file(ds, name)


def parse(data: bytes, name: str):
    """The dataset of a DICOM file, or `StudyError` saying it is not one."""
    ds = _parse(data, name)
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta and getattr(ds, "original_encoding", None):
        # Old files without a meta header: record the encoding they were read with, so
        # the pixel decoders know it (PS3.10 requires it; pydicom found it by probing).
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def _parse(data: bytes, name: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns per odd element; we report once
        try:
            return pydicom.dcmread(io.BytesIO(data), force=False, defer_size=DEFER)
        except InvalidDicomError:
            # Files without the 128-byte preamble are still DICOM: try once more, then
            # insist on a recognisable object.
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=DEFER)
            except Exception:
                raise StudyError(f"{name}: not a DICOM, PNG, JPEG or NIfTI file") from None
            if len(ds) == 0 or not any(k in ds for k in ("SOPClassUID", "Rows", "Modality")):
                raise StudyError(f"{name}: not a DICOM, PNG, JPEG or NIfTI file") from None
            return ds
        except Exception as exc:
            raise StudyError(f"{name}: cannot parse the DICOM file ({one_line(exc)})") from None


def declared_bytes(head: bytes, name: str) -> int:
    """The most bytes a gzipped DICOM may inflate to, from the header in its first bytes:
    the pixel data it declares (uncompressed) and room for the header; refused at once
    when those pixels would not fit the memory budget. Without a readable header in the
    head, the study's share of the budget."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(head), force=True, stop_before_pixels=True)
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.get("BitsAllocated") or 16)
    except Exception:  # a partial or odd header: pydicom raises anything; only a hint
        return byte_budget()
    if min(rows, cols, frames, samples, bits) < 1:
        return byte_budget()
    _check_size(name, rows, cols, frames, samples)
    return min(byte_budget(), rows * cols * frames * samples * -(-bits // 8) + HEADER_ROOM)


def _check_size(name: str, rows: int, cols: int, frames: int, samples: int) -> None:
    """Refuse pixels over the limits or the memory budget, from what the header declares."""
    if rows * cols > MAX_PIXELS or rows * cols * frames > MAX_VOXELS:
        raise StudyError(f"{name}: {cols}x{rows}x{frames} pixels, larger than the "
                         f"{MAX_PIXELS:,}-pixel limit per image ({MAX_VOXELS:,} per study)")
    check_memory(name, rows * cols * frames * samples,
                 f"{frames} frame(s) of {cols}x{rows}" + (" colour" if samples > 1 else ""))


def kind_of(ds) -> str:
    """What a DICOM object is, in words: its SOP class name or modality."""
    uid = ds.get("SOPClassUID")
    if uid is not None:
        return str(getattr(uid, "name", uid))
    return f"modality {ds.get('Modality', 'unknown')}"


def _require_image(ds, name: str) -> None:
    """Refuse, for what they are, objects that are not images to view."""
    if str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS or ds.get("Modality") == "SEG":
        segments = [str(s.get("SegmentLabel", "?")) for s in ds.get("SegmentSequence", [])]
        frames = _int(ds, "NumberOfFrames", 1, name)
        raise StudyError(
            f"{name}: a DICOM Segmentation (SEG) of {frames} frame(s), segments: "
            f"{', '.join(segments) or 'none'}; a label map, not an image to view or explain"
        )
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise StudyError(f"{name}: float pixel data ({kind_of(ds)}) is not supported")
        raise StudyError(f"{name}: a DICOM object without pixel data ({kind_of(ds)})")


def _int(ds, keyword: str, default: int, name: str) -> int:
    value = ds.get(keyword)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StudyError(f"{name}: invalid {keyword} '{value}'") from None


def _syntax(ds) -> str | None:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return None if uid is None else str(getattr(uid, "name", uid))


@dataclass
class _Pixels:
    values: np.ndarray  # (frames, rows, cols[, 3]) float32, physical units
    photometric: str
    stored_dtype: str
    units: str
    notes: list[str] = field(default_factory=list)


def _colour(ds, name: str) -> bool:
    """Whether the pixels are shown as RGB (palette colour or three samples)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    return photometric == "PALETTE COLOR" or _int(ds, "SamplesPerPixel", 1, name) == 3


def _decode(ds, name: str, out: np.ndarray | None = None,
            slots: list[int] | None = None) -> _Pixels:
    """Decode the pixel data frame by frame and apply the modality LUT (or colour
    conversion), each frame straight into float32: frame i goes to `out[slots[i]]`
    (a new array, in file order, by default). Nothing is decoded before the declared
    size is checked against the limits and the memory budget."""
    rows, cols = _int(ds, "Rows", 0, name), _int(ds, "Columns", 0, name)
    frames = _int(ds, "NumberOfFrames", 1, name)
    samples = _int(ds, "SamplesPerPixel", 1, name)
    if min(rows, cols) < 1 or frames < 1:
        raise StudyError(f"{name}: declares {cols}x{rows} pixels in {frames} frame(s): "
                         "no image")
    colour = _colour(ds, name)
    _check_size(name, rows, cols, frames, 3 if colour else 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if not colour and samples != 1:
        raise StudyError(f"{name}: {samples} samples per pixel is not supported")
    shape = (rows, cols, 3) if colour else (rows, cols)
    if out is None:
        out = np.empty((frames, *shape), dtype=np.float32)
    slots = list(range(frames)) if slots is None else slots
    if out.shape[1:] != shape or len(slots) != frames:
        raise StudyError(f"{name}: {frames} frame(s) of {cols}x{rows} do not fit the "
                         f"{out.shape[0]} of {out.shape[2]}x{out.shape[1]} being read")
    notes: list[str] = []
    if photometric == "PALETTE COLOR":
        stored_dtype = _palette(ds, name, out, slots)
        return _Pixels(out, "RGB", stored_dtype, "")
    stored_dtype, count = "", 0
    if colour:
        # pydicom converts YBR to RGB; deeper samples are brought to 8 bits for display.
        bits = _int(ds, "BitsStored", 8, name)
        scale = 255.0 / float(2**bits - 1) if bits > 8 else 1.0
        for i, frame in enumerate(_frames(ds, name)):
            _fits(frame, shape, i, frames, name)
            out[slots[i]] = frame.astype(np.float64) * scale if scale != 1.0 else frame
            stored_dtype, count = str(frame.dtype), i + 1
        _all_frames(count, frames, name)
        return _Pixels(out, "RGB", stored_dtype, "")

    units = _units(ds)
    dose = None
    if ds.get("Modality") == "RTDOSE" and "DoseGridScaling" in ds:
        dose = float(ds.DoseGridScaling)
        units = str(ds.get("DoseUnits", "")).replace("GY", "Gy")
    # Enhanced multi-frame objects carry the rescale per frame or shared, not at the top.
    # (Looked up frame by frame as they decode: a header may declare a million frames.)
    per_frame = _has_functional(ds, "PixelValueTransformationSequence")
    for i, frame in enumerate(_frames(ds, name)):
        _fits(frame, shape, i, frames, name)
        # Float64 for one frame at a time, as pydicom computes it; stored as float32.
        item = _functional(ds, "PixelValueTransformationSequence", i) if per_frame else None
        values = _modality_lut(frame, ds, name, item, per_frame)
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, said in a note
            out[slots[i]] = values * dose if dose is not None else values
        stored_dtype, count = str(frame.dtype), i + 1
    _all_frames(count, frames, name)
    # A hostile rescale (slope 1e308) overflows float32: min and max see any inf or NaN
    # without a mask as large as the frames.
    finite = True
    for slot in slots:
        if not (np.isfinite(out[slot].min()) and np.isfinite(out[slot].max())):
            np.nan_to_num(out[slot], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            finite = False
    if not finite:
        notes.append("values beyond float32 (the modality LUT overflowed) shown as 0")
    return _Pixels(out, photometric, stored_dtype, units, notes)


def _frames(ds, name: str) -> Iterator[np.ndarray]:
    """The stored frames, decoded one at a time by pydicom (never all at once, never
    cached in the dataset). What a decoder raises on bad data becomes a StudyError."""
    from pydicom.pixels import iter_pixels

    frames = iter_pixels(ds)
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = next(frames)
        except StopIteration:
            return
        except NotImplementedError:
            raise StudyError(f"{name}: unsupported transfer syntax ({_syntax(ds)}): no "
                             "decoder for it is installed") from None
        except MemoryError:
            raise StudyError(f"{name}: not enough memory to decode the pixel data") from None
        except Exception as exc:  # decoder plugins raise any type; only their code is here
            syntax = _syntax(ds) or "unknown transfer syntax"
            raise StudyError(f"{name}: cannot decode the pixel data ({syntax}): "
                             f"{one_line(exc)}") from None
        yield frame


def _fits(frame: np.ndarray, shape: tuple[int, ...], index: int, frames: int,
          name: str) -> None:
    """A decoded frame is one the header declared: pydicom infers extra frames from
    surplus pixel data, which would slip past the size checked before decoding."""
    if index >= frames:
        raise StudyError(f"{name}: the pixel data holds more than the {frames} frame(s) of "
                         f"{'x'.join(map(str, shape))} its header declares")
    if frame.shape != shape:
        raise StudyError(f"{name}: a decoded frame of {'x'.join(map(str, frame.shape))} does "
                         f"not match its header ({'x'.join(map(str, shape))})")


def _all_frames(count: int, frames: int, name: str) -> None:
    if count != frames:
        raise StudyError(f"{name}: {count} of the {frames} frames its header declares")


def _palette(ds, name: str, out: np.ndarray, slots: list[int]) -> str:
    """Palette colour frames as RGB in `out`; 16-bit palettes brought to 8 bits when any
    value needs it (as for the whole image at once)."""
    from pydicom.pixels import apply_color_lut

    frames = []  # the indices: small beside the RGB floats
    for i, frame in enumerate(_frames(ds, name)):
        _fits(frame, out.shape[1:3], i, len(slots), name)
        frames.append(frame)
    _all_frames(len(frames), len(slots), name)
    top = 0
    for frame in frames:
        try:
            top = max(top, int(np.max(apply_color_lut(frame, ds))))
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            # pydicom builds numpy types from the file's LUT descriptors: a bad one
            # surfaces as any of these.
            raise StudyError(f"{name}: invalid palette colour LUT ({one_line(exc)})") from None
    scale = 255.0 / 65535.0 if top > 255 else 1.0
    for i, frame in enumerate(frames):
        rgb = apply_color_lut(frame, ds)
        out[slots[i]] = rgb.astype(np.float64) * scale if scale != 1.0 else rgb
    return str(frames[0].dtype) if frames else ""


def _modality_lut(stored: np.ndarray, ds, name: str, item: Any, per_frame: bool
                  ) -> np.ndarray:
    """One frame's physical values (float64, as pydicom computes them): from its Pixel
    Value Transformation item when the file has them per frame (`per_frame`), else the
    rescale or Modality LUT at the top of the dataset."""
    from pydicom.pixels import apply_modality_lut

    if per_frame:
        try:
            slope = float(item.get("RescaleSlope", 1.0)) if item is not None else 1.0
            intercept = float(item.get("RescaleIntercept", 0.0)) if item is not None else 0.0
        except (TypeError, ValueError):
            raise StudyError(f"{name}: invalid rescale slope or intercept") from None
        return stored * slope + intercept
    exact = _integer_rescale(stored, ds)
    if exact is not None:
        return exact
    try:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:  # pydicom on the file's LUT or rescale: any type
        raise StudyError(f"{name}: invalid modality LUT ({one_line(exc)})") from None


def _integer_rescale(stored: np.ndarray, ds) -> np.ndarray | None:
    """The common case computed straight in float32: integers of at most 16 bits, slope 1
    (or no rescale at all) and a whole intercept, where float32 holds every value exactly,
    so the result is pydicom's float64 one, without its float64 copies. None otherwise
    (a Modality LUT, a real slope, a dose grid): pydicom computes those."""
    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        return None
    if "ModalityLUTSequence" in ds or ds.get("Modality") == "RTDOSE":
        return None
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None and intercept is None:
        return stored.astype(np.float32)
    try:
        slope, intercept = float(slope), float(intercept)
    except (TypeError, ValueError):
        return None  # pydicom's own handling, and its error, apply
    if slope != 1.0 or not intercept.is_integer() or abs(intercept) >= 2**23:
        return None
    out = stored.astype(np.float32)
    out += np.float32(intercept)
    return out


def _functional(ds, sequence: str, frame: int):
    """An item of a functional-group sequence for one frame: per-frame, else shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        items = per_frame[frame].get(sequence)
        if items:
            return items[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    items = shared[0].get(sequence) if shared else None
    return items[0] if items else None


def _has_functional(ds, sequence: str) -> bool:
    """Whether any frame has an item of this functional-group sequence (per frame or
    shared): looked for in the groups the file holds, not once per declared frame."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(sequence):
        return True
    return any(group.get(sequence) for group in ds.get("PerFrameFunctionalGroupsSequence") or ())


def _units(ds) -> str:
    rescale_type = str(ds.get("RescaleType", "") or "")
    item = _functional(ds, "PixelValueTransformationSequence", 0)
    if item is not None and not rescale_type:
        rescale_type = str(item.get("RescaleType", "") or "")
    has_rescale = "RescaleIntercept" in ds or item is not None
    if ds.get("Modality") == "CT" and has_rescale and rescale_type in ("", "HU"):
        return "HU"
    if ds.get("ModalityLUTSequence"):
        rescale_type = str(ds.ModalityLUTSequence[0].get("ModalityLUTType", "") or "")
    return "" if rescale_type in ("", "US") else rescale_type


# -- geometry ---------------------------------------------------------------------------

def _pixel_spacing(ds) -> tuple[tuple[float, float] | None, str]:
    """(between rows, between columns) in mm, and a note on where it came from (or why
    the file's own was not used)."""
    for source in (ds, _functional(ds, "PixelMeasuresSequence", 0)):
        if source is not None and source.get("PixelSpacing"):
            return _spacing(source.PixelSpacing, "PixelSpacing", "")
    if ds.get("ImagerPixelSpacing"):
        return _spacing(ds.ImagerPixelSpacing, "ImagerPixelSpacing",
                        "pixel spacing at the detector (ImagerPixelSpacing)")
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        region = regions[0]
        # Physical units 3 = cm (PS3.3 C.8.5.5.1.15); deltas are per pixel.
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units == (3, 3):
            deltas = _pair((region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")),
                           scale=10.0, absolute=True)
            if deltas is not None:
                return deltas, "pixel spacing of the first ultrasound region"
    return None, ""


def _spacing(value: Any, keyword: str, note: str) -> tuple[tuple[float, float] | None, str]:
    pair = _pair(value)
    if pair is None:
        # 0 is how many files say "unknown"; anything else unusable is worth a word.
        if _pair(value, absolute=True, zero=True) is not None:
            return None, ""
        return None, f"{keyword} {printable_value(value)} is not a usable size: distances unknown"
    return pair, note


def printable_value(value: Any, limit: int = 60) -> str:
    """An attribute's value for a note: one short line."""
    return one_line(str(value), limit)


def _pair(value: Any, scale: float = 1.0, absolute: bool = False, zero: bool = False
          ) -> tuple[float, float] | None:
    """Two spacings in mm (times `scale`; their sizes if `absolute`), or None unless both
    are plausible sizes (finite, from a nanometre to a kilometre; or both 0 if `zero`)."""
    try:
        row, col = float(value[0]) * scale, float(value[1]) * scale
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if absolute:
        row, col = abs(row), abs(col)
    if zero and row == col == 0:
        return row, col
    return (row, col) if plausible_mm(row) and plausible_mm(col) else None


def _orientation(ds, frame: int = 0) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        item = _functional(ds, "PlaneOrientationSequence", frame)
        value = None if item is None else item.get("ImageOrientationPatient")
    try:
        cosines = np.asarray([float(v) for v in value], dtype=np.float64).reshape(2, 3)
    except (TypeError, ValueError):
        return None
    # Direction cosines lie in [-1, 1]; some slack for files that round them loosely.
    if not np.all(np.abs(cosines) <= 1.5) or np.linalg.norm(np.cross(*cosines)) < 0.5:
        return None
    return cosines


def _position(ds, frame: int | None = None) -> np.ndarray | None:
    if frame is None:  # a single-frame file
        value = ds.get("ImagePositionPatient")
    else:  # one frame of an enhanced multi-frame file
        item = _functional(ds, "PlanePositionSequence", frame)
        value = None if item is None else item.get("ImagePositionPatient")
    try:
        position = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return position if position.shape == (3,) and np.all(np.isfinite(position)) else None


def _affine(cosines: np.ndarray, spacing: tuple[float, float], origin: np.ndarray,
            normal: np.ndarray, slice_spacing: float) -> np.ndarray:
    """Index (column, row, slice) -> patient LPS mm (PS3.3 C.7.6.2.1.1, equation C.7.6.2.1-1)."""
    affine = np.eye(4)
    affine[:3, 0] = cosines[0] * spacing[1]  # along a row: column index, column spacing
    affine[:3, 1] = cosines[1] * spacing[0]  # down a column: row index, row spacing
    affine[:3, 2] = normal * slice_spacing
    affine[:3, 3] = origin
    return affine


def _order_by_position(positions: list[np.ndarray], cosines: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, float, str] | None:
    """Sort order along the normal, the normal, the mean spacing and a note; None when
    positions do not make a stack (repeats: several echoes or time points)."""
    normal = np.cross(cosines[0], cosines[1])
    distances = np.array([float(p @ normal) for p in positions])
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order])
    if len(gaps) == 0 or not np.all(np.isfinite(gaps)) or np.any(gaps < 1e-3):
        return None
    spacing = float(np.mean(gaps))
    if not plausible_mm(spacing):  # positions 1e300 mm apart are no volume
        return None
    note = ""
    if gaps.max() - gaps.min() > 0.01 * spacing + 1e-3:
        note = (f"slice spacing varies from {gaps.min():.3g} to {gaps.max():.3g} mm "
                f"(mean {spacing:.3g} mm used)")
    return order, normal, spacing, note


# -- one file ---------------------------------------------------------------------------

def _study_from_file(ds, name: str) -> Study:
    rows, cols = _int(ds, "Rows", 0, name), _int(ds, "Columns", 0, name)
    frames = _int(ds, "NumberOfFrames", 1, name)
    colour = _colour(ds, name)
    # The sizes first: the geometry below walks every frame the header declares.
    _check_size(name, rows, cols, max(frames, 1), 3 if colour else 1)
    spacing, spacing_note = _pixel_spacing(ds)
    notes = [spacing_note] if spacing_note else []
    affine, slice_spacing, slots = None, None, None
    cosines = _orientation(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or ()
    # Enhanced multi-frame CT/MR: frames with their own plane positions are a volume. Each
    # frame needs its own group (the file's, not the header's count, bounds the walk).
    if frames > 1 and not colour and cosines is not None and spacing and len(per_frame) >= frames:
        positions = [_position(ds, i) for i in range(frames)]
        orientations = [_orientation(ds, i) for i in range(frames)]
        same = all(o is not None and np.allclose(o, cosines, atol=1e-4) for o in orientations)
        if all(p is not None for p in positions) and same:
            stack = _order_by_position(positions, cosines)
            if stack is not None:
                order, normal, slice_spacing, note = stack
                affine = _affine(cosines, spacing, positions[order[0]], normal, slice_spacing)
                notes += [note] if note else []
                if not np.array_equal(order, np.arange(frames)):
                    # Each frame decoded straight into its place: no reordered copy.
                    slots = [int(s) for s in np.argsort(order)]
                    notes.append("frames reordered by position along the slice normal")
    pixels = _decode(ds, name, slots=slots)
    values = pixels.values
    windows = _windows(ds, frame=0)
    return Study(
        name=name,
        format="DICOM",
        pixels=values,
        photometric=pixels.photometric,
        stored_dtype=pixels.stored_dtype,
        window=_default_window(windows, values, pixels.photometric),
        modality=_text(ds, "Modality") or None,
        units=pixels.units,
        bits_stored=_int(ds, "BitsStored", 8, name),
        metadata=display_metadata(ds),
        identifying=identifying(ds),
        transfer_syntax=_syntax(ds),
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1, name),
        pixel_spacing=spacing,
        slice_spacing=slice_spacing,
        affine=affine,
        windows=tuple(windows),
        notes=tuple(notes + pixels.notes),
        sources=(_header(ds),),  # last: what is shown above is read first
    )


def _header(ds):
    """What a Study keeps of a file it was read from (`Study.sources`): its dataset, once
    decoded, without the pixel data and any other element still unread in the file's
    bytes, and without those bytes (a 1000-file series keeps headers, not files)."""
    from pydicom.dataelem import RawDataElement

    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if tag in PIXEL_TAGS or (isinstance(raw, RawDataElement) and raw.value is None
                                  and raw.length):
            del ds[tag]
    ds.buffer = None
    return ds


def _text(ds, keyword: str) -> str:
    """A short text attribute as one printable line ('' when absent)."""
    return printable_value(ds.get(keyword, "") or "", 64)


def _default_window(windows: list[Window], values: np.ndarray, photometric: str
                    ) -> Window | None:
    """The file's first window, else a percentile window; none for colour."""
    if photometric == "RGB":
        return None
    return windows[0] if windows else auto_window(values)


def _windows(ds, frame: int) -> list[Window]:
    """Every window the file offers (PS3.3 C.11.2): VOI LUTs first, then centre/width."""
    found: list[Window] = []
    for i, item in enumerate(ds.get("VOILUTSequence", []) or []):
        lut = _voi_lut(item)
        if lut is not None:
            span = len(lut.data)
            found.append(Window(lut.first + span / 2, float(span),
                                lut.explanation or f"VOI LUT {i + 1}", lut=lut))
    source = ds if "WindowCenter" in ds else _functional(ds, "FrameVOILUTSequence", frame)
    if source is not None and "WindowCenter" in source and "WindowWidth" in source:
        centers, widths = _many(source.WindowCenter), _many(source.WindowWidth)
        explanations = _many(source.get("WindowCenterWidthExplanation", []))
        function = str(source.get("VOILUTFunction", ds.get("VOILUTFunction", "LINEAR")) or
                       "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
            try:
                center, width = float(c), float(w)
            except (TypeError, ValueError):
                continue
            if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
                continue
            explained = i < len(explanations) and explanations[i]
            label = f"file, {printable_value(explanations[i])}" if explained else "file"
            found.append(Window(center, width, label, function))
    return found


def _many(value) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return [value]
    return list(value)


def _voi_lut(item) -> VOILUT | None:
    """A VOI LUT item as a VOILUT; None when its descriptor or data cannot be used."""
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        raw = item.LUTData
        entries = entries or 65536
        if isinstance(raw, bytes):
            width = 2 if bits > 8 else 1
            data = np.frombuffer(raw[: len(raw) // width * width],
                                 dtype="<u2" if width == 2 else np.uint8)
        else:
            data = np.asarray(list(raw) if hasattr(raw, "__iter__") else [raw],
                              dtype=np.float64)
        data = np.asarray(data[:entries], dtype=np.float64)
        if data.size == 0 or not np.all(np.isfinite(data)) or data.min() < 0:
            return None
        # Real files often declare 16 bits for 12-bit data (DCMTK checks the data too):
        # when the entries stay far below the declared range, use the range they span.
        actual = max(8, int(data.max()).bit_length())
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None  # the file's descriptor or data, not ours: no such window
    bits = actual if actual > bits or (bits == 16 and actual <= 12) else bits
    return VOILUT(first=first, bits=min(bits, 32), data=data,
                  explanation=printable_value(item.get("LUTExplanation", "") or ""))


# -- what is shown ------------------------------------------------------------------------

def display_metadata(ds) -> dict[str, str]:
    """Technical attributes only: never one that `is_identifying`. One that cannot be
    read (a value of the wrong length) is left out, not the study."""
    shown: dict[str, str] = {}
    syntax = _syntax(ds)
    if syntax:
        shown["TransferSyntax"] = syntax
    for keyword in DISPLAY_KEYWORDS:
        if keyword in ds and keyword not in IDENTIFYING_KEYWORDS:
            try:
                value = ds[keyword].value
                if keyword == "SOPClassUID":
                    value = getattr(value, "name", value)
                text = str(value)
            except library_errors():
                continue
            shown[keyword] = one_line(text, 200)
    return shown


# -- series -----------------------------------------------------------------------------

def read_series(files: list[tuple[str, bytes]], name: str,
                open_other: Callable[[bytes, str], Study] | None = None) -> Study:
    """Many files (a folder, a zip, several uploads) as one study.

    The largest DICOM series among them is read, ordered along the slice normal; files
    of other series, non-image objects and non-DICOM files are reported in `notes`. A
    single file that is not DICOM (a PNG, a NIfTI in a zip) is read by `open_other`
    (`core.studies.open_study`), where one is given.
    """
    images: list[tuple[str, Any, str]] = []
    skipped: Counter[str] = Counter()
    others: list[tuple[str, bytes]] = []
    unreadable: list[str] = []
    for file_name, data in files:
        # One file that cannot be parsed, or whose header cannot be read, is reported
        # with the others, never the end of the series.
        try:
            with study_errors(file_name):
                ds = parse(data, file_name)
        except StudyError:
            others.append((file_name, data))
            continue
        try:
            with study_errors(file_name):
                try:
                    _require_image(ds, file_name)
                except StudyError:  # not an image: counted by what it is
                    skipped[kind_of(ds)] += 1
                    continue
                key = str(ds.get("SeriesInstanceUID", "unknown"))
        except StudyError:  # a header that cannot be read
            unreadable.append(file_name)
            continue
        images.append((file_name, ds, key))

    if not images:
        if open_other is not None and (len(files) == 1 or (len(others) == 1 and not skipped)):
            # One non-DICOM file (a PNG, a NIfTI in a zip): read it as itself.
            file_name, data = (others or files)[0]
            return open_other(data, file_name)
        found = ", ".join(f"{n} {k}" for k, n in skipped.items())
        if others:
            found += (", " if found else "") + f"{len(others)} files that are not DICOM"
        if unreadable:
            found += (", " if found else "") + (f"{len(unreadable)} whose DICOM header "
                                                "cannot be read")
        raise StudyError(f"{name}: no DICOM images ({found})")

    # Grouped by SeriesInstanceUID, which is never shown (nor any part of it): series
    # are told apart in the notes by number, modality, kind and size.
    series: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for file_name, ds, key in images:
        series[key].append((file_name, ds))
    common = []
    if skipped:
        common.append("skipped: " + ", ".join(f"{n} {k}" for k, n in skipped.items()))
    if others:
        common.append(f"skipped {len(others)} file(s) that are not DICOM: "
                      + ", ".join(n.rsplit('/', 1)[-1] for n, _ in others[:5])
                      + (" ..." if len(others) > 5 else ""))
    if unreadable:
        common.append(f"skipped {len(unreadable)} file(s) whose DICOM header cannot be read: "
                      + ", ".join(n.rsplit('/', 1)[-1] for n in unreadable[:5])
                      + (" ..." if len(unreadable) > 5 else ""))
    # The largest series first; if it cannot be read, the next (an undecodable file must
    # not hide a good one), and the reason is kept in the notes.
    failures: list[str] = []
    for uid in sorted(series, key=lambda u: -len(series[u])):
        notes = list(failures)
        if len(series) > 1:
            rest = [f"{_series_label(v[0][1])}: {len(v)} file(s)"
                    for k, v in series.items() if k != uid]
            notes.append(f"other series not mixed in: {'; '.join(rest)}")
        notes += common
        try:
            with study_errors(name):
                if len(series[uid]) == 1:
                    file_name, ds = series[uid][0]
                    study = _study_from_file(ds, file_name)
                    return replace(study, notes=study.notes + tuple(notes))
                return _stack(series[uid], name, notes)
        except StudyError as exc:
            if len(series) == 1:
                raise
            failures.append(f"not readable: {exc}")
    raise StudyError(f"{name}: no readable DICOM series ({failures[0]})")


def _safely(describe: Callable[[], str], fallback: str) -> str:
    """A description read from a header that may not be readable."""
    try:
        return describe()
    except (StudyError, *library_errors()):
        return fallback


def _series_label(ds) -> str:
    """A series in words, without any identifier: "series 3 (CT Image Storage, CT,
    512x512)"."""
    number = _safely(lambda: printable_value(ds.get("SeriesNumber", "") or "", 12), "")
    kind = _safely(lambda: kind_of(ds), "unknown kind")
    modality = _safely(lambda: _text(ds, "Modality"), "")
    size = _safely(lambda: "x".join(str(v) for v in reversed(_size(ds))), "")
    details = ", ".join(part for part in (kind, modality, size) if part)
    return f"series {number} ({details})" if number else f"a series without a number ({details})"


def _size(ds) -> tuple[int, int]:
    return int(ds.Rows), int(ds.Columns)


def _mm(value: Any) -> float | None:
    """A declared length in mm, if it is a plausible one."""
    try:
        mm = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return mm if mm is not None and plausible_mm(mm) else None


def _stack(chosen: list[tuple[str, Any]], name: str, notes: list[str]) -> Study:
    multi = [n for n, ds in chosen if _int(ds, "NumberOfFrames", 1, n) > 1]
    if multi:
        raise StudyError(f"{name}: a series of {len(chosen)} multi-frame files; open "
                         f"them one at a time (first: {multi[0]})")
    sizes = Counter(_size(ds) for _, ds in chosen)
    size, _ = sizes.most_common(1)[0]
    if len(sizes) > 1:
        odd = [n.rsplit('/', 1)[-1] for n, ds in chosen if _size(ds) != size]
        notes.append(f"skipped {len(odd)} file(s) of another size (localiser?): "
                     + ", ".join(odd[:5]))
        chosen = [(n, ds) for n, ds in chosen if _size(ds) == size]
    if size[0] * size[1] * len(chosen) > MAX_VOXELS:
        raise StudyError(f"{name}: {len(chosen)} slices of {size[1]}x{size[0]}, larger "
                         f"than the {MAX_VOXELS:,}-voxel limit")
    check_memory(name, size[0] * size[1] * len(chosen),
                 f"{len(chosen)} slices of {size[1]}x{size[0]}")

    first = chosen[0][1]
    cosines = _orientation(first)
    spacing, spacing_note = _pixel_spacing(first)
    notes += [spacing_note] if spacing_note else []
    positions = [_position(ds) for _, ds in chosen]
    stack = None
    if cosines is not None and all(p is not None for p in positions) and all(
            (o := _orientation(ds)) is not None and np.allclose(o, cosines, atol=1e-3)
            for _, ds in chosen):
        stack = _order_by_position(positions, cosines)
        if stack is None:
            notes.append("several files share one position (echoes or time points?): "
                         "ordered by InstanceNumber, no volume geometry")
    affine, slice_spacing = None, None
    if stack is not None:
        order, normal, slice_spacing, note = stack
        notes += [note] if note else []
    else:
        if cosines is None or any(p is None for p in positions):
            notes.append("no ImagePositionPatient/ImageOrientationPatient: "
                         "ordered by InstanceNumber, no volume geometry")
        numbers = [_int(ds, "InstanceNumber", i, n) for i, (n, ds) in enumerate(chosen)]
        order = np.argsort(numbers, kind="stable")
        declared = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
        slice_spacing = _mm(declared)

    # Every slice decoded straight into its place in one float32 volume, its pixel data
    # dropped once decoded: no list of slices to stack, no second copy of the files.
    rows, cols = size
    values = np.empty((len(chosen), rows, cols), dtype=np.float32)
    dtypes, units = set(), set()
    for place, index in enumerate(order):
        file_name, ds = chosen[int(index)]
        if _colour(ds, file_name):
            raise StudyError(f"{file_name}: a colour image in a series; open it on its own")
        pixels = _decode(ds, file_name, out=values, slots=[place])
        if "PixelData" in ds:
            del ds.PixelData
        dtypes.add(pixels.stored_dtype)
        units.add(pixels.units)
        photometric = pixels.photometric
        notes += [n for n in pixels.notes if n not in notes]
    ordered = [chosen[int(i)][1] for i in order]
    if stack is not None and spacing:
        affine = _affine(cosines, spacing, positions[int(order[0])], stack[1], slice_spacing)
    middle = ordered[len(ordered) // 2]
    windows = _windows(middle, frame=0)
    metadata = display_metadata(middle)
    metadata["Files"] = str(len(ordered))
    if slice_spacing:
        metadata["SliceSpacing"] = f"{slice_spacing:.4g} mm"
    return Study(
        name=name,
        format="DICOM series",
        pixels=values,
        photometric=photometric,
        stored_dtype=sorted(dtypes)[0],
        window=_default_window(windows, values, photometric),
        modality=_text(middle, "Modality") or None,
        units=units.pop() if len(units) == 1 else "",
        bits_stored=_int(middle, "BitsStored", 8, name),
        metadata=metadata,
        identifying=identifying(middle),
        transfer_syntax=_syntax(middle),
        samples_per_pixel=1,
        pixel_spacing=spacing,
        slice_spacing=slice_spacing,
        affine=affine,
        windows=tuple(windows),
        notes=tuple(notes),
        sources=tuple(_header(ds) for ds in ordered),
    )
