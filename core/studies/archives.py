"""Folders and .zip files of DICOM files, read into memory with limits.

Nothing is extracted to disk. A zip is refused as a whole, with one line naming the
entry, when it could be hostile: too many entries, a path-traversal or absolute name,
or more uncompressed data than a study can hold.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from core.studies.study import StudyError, one_line

# A thin-slice CT is ~1000 files; more than that is not one study.
MAX_FILES = 1000
# Uncompressed bytes read from one archive or folder (a 1000-slice 512x512 CT is ~0.5 GB).
MAX_BYTES = 2 * 1024**3

# Names that are never images: skipped silently in folders and zips.
SKIPPED_NAMES = ("DICOMDIR", ".DS_Store", "Thumbs.db", "desktop.ini")


def check_count(count: int, name: str) -> None:
    if count > MAX_FILES:
        raise StudyError(f"{name}: {count:,} files, more than the {MAX_FILES:,}-file limit "
                         "for one study")


def read_zip(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """The files of a zip as (name inside the zip, bytes), hostile archives refused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise StudyError(f"{name}: not a readable zip file ({one_line(exc)})") from None
    check_count(len(entries), name)
    for entry in entries:
        parts = PurePosixPath(entry.filename.replace("\\", "/")).parts
        if entry.filename.startswith(("/", "\\")) or ".." in parts or ":" in entry.filename:
            raise StudyError(f"{name}: unsafe path '{entry.filename}' in the zip "
                             "(absolute or leading outside it); the zip was not read")
    if sum(e.file_size for e in entries) > MAX_BYTES:
        raise StudyError(f"{name}: more than {MAX_BYTES // 1024**3} GB uncompressed")
    files, total = [], 0
    for entry in entries:
        if _skipped(entry.filename):
            continue
        try:
            with archive.open(entry) as handle:
                # The declared size can lie (zip bombs): never read more than allowed.
                content = handle.read(MAX_BYTES - total + 1)
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
            raise StudyError(f"{name}: cannot read '{entry.filename}' in the zip "
                             f"({one_line(exc)})") from None
        total += len(content)
        if total > MAX_BYTES:
            raise StudyError(f"{name}: more than {MAX_BYTES // 1024**3} GB uncompressed")
        files.append((f"{name}/{entry.filename}", content))
    if not files:
        raise StudyError(f"{name}: the zip holds no files")
    return files


def read_folder(path: Path, name: str) -> list[tuple[str, bytes]]:
    """The files under a folder (recursively, hidden files skipped) as (path, bytes)."""
    found = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts)
                   and not _skipped(p.name))
    check_count(len(found), name)
    if not found:
        raise StudyError(f"{name}: the folder holds no files")
    files, total = [], 0
    for file in found:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise StudyError(f"{file}: cannot read ({exc.strerror})") from None
        total += len(content)
        if total > MAX_BYTES:
            raise StudyError(f"{name}: more than {MAX_BYTES // 1024**3} GB of files")
        files.append((f"{name.rstrip('/')}/{file.relative_to(path)}", content))
    return files


def _skipped(filename: str) -> bool:
    base = PurePosixPath(filename.replace("\\", "/")).name
    return base in SKIPPED_NAMES or base.startswith("._") or filename.startswith("__MACOSX/")
