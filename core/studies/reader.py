"""Opening a study: the format is found from the content, not the extension, and the
bytes are handed to the first reader whose signature matches (`READERS`).

This is the only module that knows every reader; the readers know only `Study`, so
nothing imports in a circle. A series hands a file that is not DICOM back through
`open_study` (`read_series(..., open_other=open_study)`).

`open_study` and `open_files` are the boundary of reading: whatever a library raises on a
malformed file becomes one `StudyError` naming it (`study.study_errors`), and archives
may nest only `MAX_NESTING` deep.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from core.studies.archives import check_count, read_folder, read_zip
from core.studies.dicom import (
    SEG_SOP_CLASS,
    _require_image,
    _study_from_file,
    parse,
    read_series,
)
from core.studies.dicom import declared_bytes as dicom_declared_bytes
from core.studies.nifti import HEAD, gunzip, is_gzip, is_nifti, read_nifti
from core.studies.nifti import declared_bytes as nifti_declared_bytes
from core.studies.pictures import read_picture
from core.studies.study import (
    MAX_NESTING,
    MAX_VOXELS,
    Study,
    StudyError,
    byte_budget,
    holding,
    study_errors,
)

__all__ = ["READERS", "open_files", "open_study"]

# How many archives (zip, gzip) the file being read sits in, in this thread or task.
_depth: ContextVar[int] = ContextVar("medlens_archive_depth", default=0)


def _nested(name: str) -> int:
    depth = _depth.get() + 1
    if depth > MAX_NESTING:
        raise StudyError(f"{name}: archives nested more than {MAX_NESTING} deep")
    return depth


def _zip(data: bytes, name: str) -> Study:
    token = _depth.set(_nested(name))
    try:
        files = read_zip(data, name)
        with holding(sum(len(content) for _, content in files)):
            return read_series(files, name, open_other=open_study)
    finally:
        _depth.reset(token)


def _declared(head: bytes, name: str) -> tuple[int, int, str]:
    """What a gzip stream's head says it holds: (bytes to keep, most bytes, header)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        most = dicom_declared_bytes(head, name)
        return most, most, "DICOM"
    if not is_nifti(head.ljust(544, b"\0")):
        raise StudyError(f"{name}: a gzip file holding neither NIfTI nor DICOM")
    keep, most = nifti_declared_bytes(head.ljust(544, b"\0"), name)
    return keep, most, "NIfTI"


def _gzip(data: bytes, name: str) -> Study:
    """A .nii.gz or a gzipped DICOM: unpacked up to what its header declares, within the
    largest study we hold as float32 and the memory budget, then read as what it holds."""
    token = _depth.set(_nested(name))
    try:
        limit = min(MAX_VOXELS * 4 + HEAD, byte_budget() + HEAD)
        inner = gunzip(data, name, limit, _declared)
        if is_gzip(inner):
            raise StudyError(f"{name}: gzip inside gzip is not read")
        with holding(len(inner)):
            return _read_bytes(inner, name)
    finally:
        _depth.reset(token)


def is_seg(ds) -> bool:
    """Whether a parsed DICOM dataset is a Segmentation (SEG): a label map, not a study."""
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS or ds.get("Modality") == "SEG"


def _dicom(data: bytes, name: str) -> Study:
    """One DICOM file; a SEG is named for what it is: a mask to open over its study."""
    ds = parse(data, name)
    if is_seg(ds):
        segments = [str(s.get("SegmentLabel", "?")) for s in ds.get("SegmentSequence", [])]
        frames = ds.get("NumberOfFrames") or 1
        raise StudyError(
            f"{name}: a DICOM Segmentation (SEG) of {frames} frame(s), segments: "
            f"{', '.join(segments) or 'none'}; a label map: open it as a mask over its study")
    _require_image(ds, name)
    return _study_from_file(ds, name)


def _is_picture(data: bytes) -> bool:
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))


def _is_zip(data: bytes) -> bool:
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


# (does the content look like it, reader), tried in order; DICOM, which may have no
# preamble, is what is left.
READERS: tuple[tuple[Callable[[bytes], bool], Callable[[bytes, str], Study]], ...] = (
    (_is_picture, read_picture),
    (_is_zip, _zip),
    (is_gzip, _gzip),
    (is_nifti, read_nifti),
    (lambda data: True, _dicom),
)


def open_study(source: str | Path | bytes, name: str | None = None) -> Study:
    """Read a study from a path or bytes: a DICOM, PNG, JPEG or NIfTI (.nii, .nii.gz)
    file, a .zip of DICOM files, or (a path) a folder of DICOM files.

    The format is found from the content, not the extension. Anything that cannot be
    read raises `StudyError` with one line naming the file and the problem.
    """
    if isinstance(source, bytes):
        data, name = source, name or "upload"
    else:
        path = Path(source)
        name = name or str(source)
        if path.is_dir():
            with study_errors(name):
                return read_series(read_folder(path, name), name, open_other=open_study)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StudyError(f"{name}: no such file") from None
        except OSError as exc:
            raise StudyError(f"{name}: cannot read ({exc.strerror})") from None
    with study_errors(name):
        return _read_bytes(data, name)


def open_files(files: list[tuple[str, bytes]], name: str | None = None) -> Study:
    """Read several uploaded files as one study: one file as itself, several as a series."""
    if not files:
        raise StudyError(f"{name or 'upload'}: no files")
    if len(files) == 1:
        return open_study(files[0][1], name=files[0][0])
    name = name or f"{len(files)} files"
    with study_errors(name):
        check_count(len(files), name)
        return read_series(files, name, open_other=open_study)


def _read_bytes(data: bytes, name: str) -> Study:
    if not data:
        raise StudyError(f"{name}: the file is empty")
    for looks_like, read in READERS:
        if looks_like(data):
            return read(data, name)
    raise AssertionError("the last reader takes anything")  # pragma: no cover
