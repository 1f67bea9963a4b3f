"""Opening a study: the format is found from the content, not the extension, and the
bytes are handed to the first reader whose signature matches (`READERS`).

This is the only module that knows every reader; the readers know only `Study`, so
nothing imports in a circle. A series hands a file that is not DICOM back through
`open_study` (`read_series(..., open_other=open_study)`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.studies.archives import check_count, read_folder, read_zip
from core.studies.dicom import read_dicom, read_series
from core.studies.nifti import gunzip, is_gzip, is_nifti, read_nifti
from core.studies.pictures import read_picture
from core.studies.study import MAX_VOXELS, Study, StudyError

__all__ = ["READERS", "open_files", "open_study"]


def _zip(data: bytes, name: str) -> Study:
    return read_series(read_zip(data, name), name, open_other=open_study)


def _gzip(data: bytes, name: str) -> Study:
    """A .nii.gz or a gzipped DICOM: unpacked up to the largest study we hold, as
    float32, plus headers, then read as what it holds."""
    inner = gunzip(data, name, MAX_VOXELS * 4 + 2**20)
    if is_gzip(inner):
        raise StudyError(f"{name}: gzip inside gzip is not read")
    return _read_bytes(inner, name)


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
    (lambda data: True, read_dicom),
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
            return read_series(read_folder(path, name), name, open_other=open_study)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StudyError(f"{name}: no such file") from None
        except OSError as exc:
            raise StudyError(f"{name}: cannot read ({exc.strerror})") from None
    return _read_bytes(data, name)


def open_files(files: list[tuple[str, bytes]], name: str | None = None) -> Study:
    """Read several uploaded files as one study: one file as itself, several as a series."""
    if not files:
        raise StudyError(f"{name or 'upload'}: no files")
    if len(files) == 1:
        return open_study(files[0][1], name=files[0][0])
    name = name or f"{len(files)} files"
    check_count(len(files), name)
    return read_series(files, name, open_other=open_study)


def _read_bytes(data: bytes, name: str) -> Study:
    if not data:
        raise StudyError(f"{name}: the file is empty")
    for looks_like, read in READERS:
        if looks_like(data):
            return read(data, name)
    raise AssertionError("the last reader takes anything")  # pragma: no cover
