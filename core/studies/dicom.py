"""DICOM files and series into `Study`: every transfer syntax pydicom decodes with the
pylibjpeg plugins, greyscale, RGB, YBR and palette colour, multi-frame, and series.

The modality LUT (PS3.3 C.11.1) gives physical values: rescale slope/intercept, a
Modality LUT Sequence, or the Pixel Value Transformation of enhanced multi-frame
objects, per frame where frames differ. A series is ordered by position along the slice
normal (ImagePositionPatient . (row x column cosines)), else by InstanceNumber.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.studies.deid import IDENTIFYING_KEYWORDS, identifying
from core.studies.study import MAX_PIXELS, MAX_VOXELS, Study, StudyError, one_line
from core.studies.windows import VOILUT, Window, auto_window

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"

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
            return pydicom.dcmread(io.BytesIO(data), force=False)
        except InvalidDicomError:
            # Files without the 128-byte preamble are still DICOM: try once more, then
            # insist on a recognisable object.
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
            except Exception:
                raise StudyError(f"{name}: not a DICOM, PNG, JPEG or NIfTI file") from None
            if len(ds) == 0 or not any(k in ds for k in ("SOPClassUID", "Rows", "Modality")):
                raise StudyError(f"{name}: not a DICOM, PNG, JPEG or NIfTI file") from None
            return ds
        except Exception as exc:
            raise StudyError(f"{name}: cannot parse the DICOM file ({one_line(exc)})") from None


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


def _decode(ds, name: str) -> _Pixels:
    """Decode the pixel data and apply the modality LUT (or colour conversion)."""
    rows, cols = _int(ds, "Rows", 0, name), _int(ds, "Columns", 0, name)
    frames = _int(ds, "NumberOfFrames", 1, name)
    if rows * cols > MAX_PIXELS or rows * cols * frames > MAX_VOXELS:
        raise StudyError(f"{name}: {cols}x{rows}x{frames} pixels, larger than the "
                         f"{MAX_PIXELS:,}-pixel limit per image ({MAX_VOXELS:,} per study)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = ds.pixel_array
    except NotImplementedError:
        raise StudyError(f"{name}: unsupported transfer syntax ({_syntax(ds)}): no decoder "
                         "for it is installed") from None
    except MemoryError:
        raise StudyError(f"{name}: not enough memory to decode the pixel data") from None
    except Exception as exc:
        raise StudyError(
            f"{name}: cannot decode the pixel data ({_syntax(ds) or 'unknown transfer syntax'})"
            f": {one_line(exc)}"
        ) from None

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    samples = _int(ds, "SamplesPerPixel", 1, name)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = np.asarray(apply_color_lut(stored, ds), dtype=np.float64)
        scale = 255.0 / 65535.0 if rgb.max() > 255 else 1.0
        values = _frames_first(rgb * scale, colour=True)
        return _Pixels(values.astype(np.float32), "RGB", str(stored.dtype), "")
    if samples == 3:
        # pydicom converts YBR to RGB; deeper samples are brought to 8 bits for display.
        bits = _int(ds, "BitsStored", 8, name)
        scale = 255.0 / float(2**bits - 1) if bits > 8 else 1.0
        values = _frames_first(stored.astype(np.float64) * scale, colour=True)
        return _Pixels(values.astype(np.float32), "RGB", str(stored.dtype), "")
    if samples != 1:
        raise StudyError(f"{name}: {samples} samples per pixel is not supported")

    stored = _frames_first(stored, colour=False)
    values = _modality_lut(stored, ds, name)
    units = _units(ds)
    if ds.get("Modality") == "RTDOSE" and "DoseGridScaling" in ds:
        values = values * float(ds.DoseGridScaling)
        units = str(ds.get("DoseUnits", "")).replace("GY", "Gy")
    return _Pixels(values.astype(np.float32), photometric, str(stored.dtype), units)


def _frames_first(array: np.ndarray, colour: bool) -> np.ndarray:
    """A frame axis first, also for a single frame."""
    return array[None] if array.ndim == (3 if colour else 2) else array


def _modality_lut(stored: np.ndarray, ds, name: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    # Enhanced multi-frame objects carry the rescale per frame or shared, not at the top.
    rescales = [_functional(ds, "PixelValueTransformationSequence", i)
                for i in range(stored.shape[0])]
    if any(r is not None for r in rescales):
        out = np.empty(stored.shape, dtype=np.float64)
        for i, item in enumerate(rescales):
            slope = float(item.get("RescaleSlope", 1.0)) if item is not None else 1.0
            intercept = float(item.get("RescaleIntercept", 0.0)) if item is not None else 0.0
            out[i] = stored[i] * slope + intercept
        return out
    try:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:
        raise StudyError(f"{name}: invalid modality LUT ({one_line(exc)})") from None


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
    """(between rows, between columns) in mm, and a note on where it came from."""
    for source in (ds, _functional(ds, "PixelMeasuresSequence", 0)):
        if source is not None and source.get("PixelSpacing"):
            return _pair(source.PixelSpacing), ""
    if ds.get("ImagerPixelSpacing"):
        return _pair(ds.ImagerPixelSpacing), "pixel spacing at the detector (ImagerPixelSpacing)"
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        region = regions[0]
        # Physical units 3 = cm (PS3.3 C.8.5.5.1.15); deltas are per pixel.
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units == (3, 3):
            dy, dx = abs(float(region.PhysicalDeltaY)) * 10, abs(float(region.PhysicalDeltaX)) * 10
            if dx > 0 and dy > 0:
                return (dy, dx), "pixel spacing of the first ultrasound region"
    return None, ""


def _pair(value) -> tuple[float, float] | None:
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def _orientation(ds, frame: int = 0) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        item = _functional(ds, "PlaneOrientationSequence", frame)
        value = None if item is None else item.get("ImageOrientationPatient")
    try:
        cosines = np.asarray([float(v) for v in value], dtype=np.float64).reshape(2, 3)
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(cosines)) or np.linalg.norm(np.cross(*cosines)) < 0.5:
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
    if len(gaps) == 0 or np.any(gaps < 1e-3):
        return None
    spacing = float(np.mean(gaps))
    note = ""
    if gaps.max() - gaps.min() > 0.01 * spacing + 1e-3:
        note = (f"slice spacing varies from {gaps.min():.3g} to {gaps.max():.3g} mm "
                f"(mean {spacing:.3g} mm used)")
    return order, normal, spacing, note


# -- one file ---------------------------------------------------------------------------

def _study_from_file(ds, name: str) -> Study:
    pixels = _decode(ds, name)
    spacing, spacing_note = _pixel_spacing(ds)
    notes = [spacing_note] if spacing_note else []
    values, affine, slice_spacing = pixels.values, None, None
    frames = values.shape[0]
    cosines = _orientation(ds)
    if frames > 1 and pixels.photometric != "RGB" and cosines is not None and spacing:
        # Enhanced multi-frame CT/MR: frames with their own plane positions are a volume.
        positions = [_position(ds, i) for i in range(frames)]
        orientations = [_orientation(ds, i) for i in range(frames)]
        same = all(o is not None and np.allclose(o, cosines, atol=1e-4) for o in orientations)
        if all(p is not None for p in positions) and same:
            stack = _order_by_position(positions, cosines)
            if stack is not None:
                order, normal, slice_spacing, note = stack
                values = values[order]
                affine = _affine(cosines, spacing, positions[order[0]], normal, slice_spacing)
                notes += [note] if note else []
                if not np.array_equal(order, np.arange(frames)):
                    notes.append("frames reordered by position along the slice normal")
    windows = _windows(ds, frame=0)
    return Study(
        name=name,
        format="DICOM",
        pixels=values,
        photometric=pixels.photometric,
        stored_dtype=pixels.stored_dtype,
        window=_default_window(windows, values, pixels.photometric),
        modality=str(ds.get("Modality", "")) or None,
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
        notes=tuple(notes),
    )


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
            if width <= 0:
                continue
            explained = i < len(explanations) and explanations[i]
            label = f"file, {explanations[i]}" if explained else "file"
            found.append(Window(center, width, label, function))
    return found


def _many(value) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return [value]
    return list(value)


def _voi_lut(item) -> VOILUT | None:
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        raw = item.LUTData
    except (AttributeError, TypeError, ValueError):
        return None
    entries = entries or 65536
    if isinstance(raw, bytes):
        data = np.frombuffer(raw, dtype="<u2" if bits > 8 else np.uint8)
    else:
        data = np.asarray(list(raw) if hasattr(raw, "__iter__") else [raw], dtype=np.float64)
    data = np.asarray(data[:entries], dtype=np.float64)
    if data.size == 0:
        return None
    # Real files often declare 16 bits for 12-bit data (DCMTK checks the data too): when
    # the entries stay far below the declared range, use the range they span.
    actual = max(8, int(data.max()).bit_length())
    bits = actual if actual > bits or (bits == 16 and actual <= 12) else bits
    return VOILUT(first=first, bits=bits, data=data,
                  explanation=str(item.get("LUTExplanation", "") or ""))


# -- de-identification ------------------------------------------------------------------



def display_metadata(ds) -> dict[str, str]:
    """Technical attributes only: never one that `is_identifying`."""
    shown: dict[str, str] = {}
    syntax = _syntax(ds)
    if syntax:
        shown["TransferSyntax"] = syntax
    for keyword in DISPLAY_KEYWORDS:
        if keyword in ds and keyword not in IDENTIFYING_KEYWORDS:
            value = ds[keyword].value
            if keyword == "SOPClassUID":
                value = getattr(value, "name", value)
            shown[keyword] = str(value)
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
    images: list[tuple[str, Any]] = []
    skipped: Counter[str] = Counter()
    others: list[tuple[str, bytes]] = []
    for file_name, data in files:
        try:
            ds = parse(data, file_name)
        except StudyError:
            others.append((file_name, data))
            continue
        try:
            _require_image(ds, file_name)
        except StudyError:
            skipped[kind_of(ds)] += 1
            continue
        images.append((file_name, ds))

    if not images:
        if open_other is not None and (len(files) == 1 or (len(others) == 1 and not skipped)):
            # One non-DICOM file (a PNG, a NIfTI in a zip): read it as itself.
            file_name, data = (others or files)[0]
            return open_other(data, file_name)
        found = ", ".join(f"{n} {k}" for k, n in skipped.items())
        if others:
            found += (", " if found else "") + f"{len(others)} files that are not DICOM"
        raise StudyError(f"{name}: no DICOM images ({found})")

    series: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for file_name, ds in images:
        series[str(ds.get("SeriesInstanceUID", "unknown"))].append((file_name, ds))
    common = []
    if skipped:
        common.append("skipped: " + ", ".join(f"{n} {k}" for k, n in skipped.items()))
    if others:
        common.append(f"skipped {len(others)} file(s) that are not DICOM: "
                      + ", ".join(n.rsplit('/', 1)[-1] for n, _ in others[:5])
                      + (" ..." if len(others) > 5 else ""))
    # The largest series first; if it cannot be read, the next (an undecodable file must
    # not hide a good one), and the reason is kept in the notes.
    failures: list[str] = []
    for uid in sorted(series, key=lambda u: -len(series[u])):
        notes = list(failures)
        if len(series) > 1:
            rest = [f"{len(v)} file(s) of series {k[-12:]} ({_series_label(v[0][1])})"
                    for k, v in series.items() if k != uid]
            notes.append(f"other series not mixed in: {'; '.join(rest)}")
        notes += common
        try:
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


def _series_label(ds) -> str:
    return f"{ds.get('Modality', '?')} {kind_of(ds)}"


def _size(ds) -> tuple[int, int]:
    return int(ds.Rows), int(ds.Columns)


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
        slice_spacing = float(declared) if declared else None

    slices, dtypes, units = [], set(), set()
    for index in order:
        file_name, ds = chosen[int(index)]
        pixels = _decode(ds, file_name)
        if pixels.photometric == "RGB":
            raise StudyError(f"{file_name}: a colour image in a series; open it on its own")
        slices.append(pixels.values[0])
        dtypes.add(pixels.stored_dtype)
        units.add(pixels.units)
        photometric = pixels.photometric
    values = np.stack(slices)
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
        modality=str(middle.get("Modality", "")) or None,
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
    )
