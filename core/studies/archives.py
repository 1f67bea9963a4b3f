"""Zips, folders and uploaded folders, read into memory with limits: the one reader for
a study (a DICOM series) and for a labelled set (images in label folders).

Nothing is extracted to disk. Every name is checked before anything is read: an
absolute or escaping one refuses the whole archive, naming the entry. Junk (hidden
files, macOS forks, thumbnail caches, DICOMDIR) is left out. The number of files and the
bytes are capped: the declared sizes first, then what is actually read, entry by entry,
never more than is left (a zip bomb's declared sizes lie). `Limits` says how much one
use allows and what an entry that cannot be read does:

- a study (`STUDY`): 1000 files, 2 GB; such an entry refuses the whole zip or folder;
- a labelled set (`core.evaluate.sets`): 5000 images, 2 GB, 256 MB per image; such an
  entry, or a larger one, is kept with the reason and no bytes, and listed as skipped.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.studies.study import (
    MEMORY_SETTING,
    StudyError,
    byte_budget,
    one_line,
    printable,
    shorten,
)

# A thin-slice CT is ~1000 files; more than that is not one study.
MAX_FILES = 1000
# Uncompressed bytes read from one archive or folder (a 1000-slice 512x512 CT is ~0.5 GB).
MAX_BYTES = 2 * 1024**3

# Names that are never images: left out of folders, zips and uploads.
SKIPPED_NAMES = ("DICOMDIR", ".DS_Store", "Thumbs.db", "desktop.ini")


@dataclass(frozen=True)
class Limits:
    """How much one zip, folder or upload may hold, and what a bad entry does."""

    files: int
    bytes: int  # uncompressed, all files together
    file_bytes: int | None = None  # one file; None: only what is left of `bytes`
    # True: an entry that cannot be read, or is over `file_bytes`, comes back with the
    # reason instead of bytes. False: it refuses the whole archive.
    skip_unreadable: bool = False
    counted: str = "file"  # what the count limit names: "the 1,000-file limit"
    purpose: str = "for one study"
    error: type[Exception] = StudyError


STUDY = Limits(files=MAX_FILES, bytes=MAX_BYTES)
# What reading a zip member raises on damaged data: a bad CRC or header (BadZipFile), a
# damaged deflate stream (zlib.error), a member cut short (EOFError), an encrypted or
# unsupported one (RuntimeError, NotImplementedError).
MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
                 NotImplementedError)


def _error(limits: Limits, text: str) -> Exception:
    """The limits' error, one printable line: names come from the archive."""
    return limits.error(shorten(printable(text)))


def _study_bytes(limits: Limits) -> int:
    """The bytes a study's archive may hold: its limit and its share of the memory budget
    (a labelled set holds many small studies, each checked when it is opened)."""
    return min(limits.bytes, byte_budget()) if limits.error is StudyError else limits.bytes


@dataclass(frozen=True)
class Entry:
    """One file of a zip, folder or upload: its name there, its path parts, and its bytes
    (None where it was skipped: `reason` says why)."""

    name: str
    parts: tuple[str, ...]
    data: bytes | None
    reason: str = ""


def size_text(count: int) -> str:
    """Bytes in words: '2 GB', '256 MB', '10 bytes'."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2)):
        if count >= size:
            return f"{count // size} {unit}"
    return f"{count:,} bytes"


def check_count(count: int, name: str, limits: Limits = STUDY) -> None:
    if count > limits.files:
        raise _error(limits, f"{name}: {count:,} files, more than the {limits.files:,}-"
                           f"{limits.counted} limit {limits.purpose}")


# A Windows drive ("c:/x", "C:x"): absolute there, whatever follows.
_DRIVE = re.compile(r"[A-Za-z]:")


def safe_parts(filename: str, name: str, where: str, limits: Limits = STUDY) -> tuple[str, ...]:
    """A member's path parts; an absolute or escaping name refuses the whole archive. A
    colon elsewhere ("scan 12:30.dcm", as macOS names files) is only a character: entries
    are read in memory, never written out by their names."""
    parts = PurePosixPath(filename.replace("\\", "/")).parts
    if (filename.startswith(("/", "\\")) or ".." in parts or _DRIVE.match(filename)
            or not parts):
        raise _error(limits, f"{name}: unsafe path '{filename}' in {where} (absolute or "
                     "leading outside it); nothing was read")
    return parts


def junk(parts: tuple[str, ...]) -> bool:
    """Files no one means as images: hidden ones, macOS forks, thumbnail caches."""
    return (any(p.startswith(".") for p in parts) or parts[0] == "__MACOSX"
            or parts[-1] in SKIPPED_NAMES)


class _Reading:
    """The bytes read so far from one zip, folder or upload, against its limits."""

    def __init__(self, name: str, limits: Limits, held: str) -> None:
        self.name, self.limits, self.held, self.total = name, limits, held, 0
        self.most = _study_bytes(limits)

    def read(self, entry: str, parts: tuple[str, ...], open_entry: Callable[[], BinaryIO],
             failure: str, errors: tuple[type[Exception], ...]) -> Entry:
        left = self.most - self.total
        cap = left if self.limits.file_bytes is None else min(self.limits.file_bytes, left)
        try:
            with open_entry() as handle:
                # Never more than is allowed, whatever size the entry declares.
                content = handle.read(cap + 1)
        except errors as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
            return self.unread(entry, parts, f"{failure} ({detail})")
        return self.take(entry, parts, content)

    def take(self, entry: str, parts: tuple[str, ...], content: bytes) -> Entry:
        self.total += len(content)
        if self.total > self.most:
            raise _error(self.limits, f"{self.name}: more than {_bytes_limit(self.limits)} "
                         f"{self.held}")
        if self.limits.file_bytes is not None and len(content) > self.limits.file_bytes:
            return self.unread(entry, parts, f"larger than {size_text(self.limits.file_bytes)}")
        return Entry(entry, parts, content)

    def unread(self, entry: str, parts: tuple[str, ...], reason: str) -> Entry:
        if not self.limits.skip_unreadable:
            raise _error(self.limits, f"{self.name}: '{entry}': {reason}")
        return Entry(entry, parts, None, one_line(reason, 200))


def _bytes_limit(limits: Limits) -> str:
    """The byte limit in words, naming the memory setting where that is what limits."""
    most = _study_bytes(limits)
    if most < limits.bytes:
        return f"{most / 1024**2:,.0f} MB (a study's share of {MEMORY_SETTING})"
    return size_text(most)


def zip_entries(data: bytes, name: str, limits: Limits = STUDY) -> list[Entry]:
    """The files of a zip (junk left out), hostile archives refused as a whole."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError) as exc:
        raise _error(limits, f"{name}: not a readable zip file ({one_line(exc)})") from None
    check_count(len(members), name, limits)
    # Every name, and the sizes the central directory declares, before anything is read.
    parts = [safe_parts(m.filename, name, "the zip", limits) for m in members]
    if sum(m.file_size for m in members) > _study_bytes(limits):
        raise _error(limits, f"{name}: more than {_bytes_limit(limits)} uncompressed")
    reading = _Reading(name, limits, "uncompressed")
    return [reading.read(m.filename, inner, lambda m=m: archive.open(m), "cannot decompress",
                         MEMBER_ERRORS)
            for m, inner in zip(members, parts, strict=True) if not junk(inner)]


def upload_entries(files: Sequence[tuple[str, bytes]], name: str,
                   limits: Limits = STUDY) -> list[Entry]:
    """Uploaded files with their relative paths ("brain/glioma/x.jpg", as a browser
    uploads a folder), checked as a zip's entries are (junk left out)."""
    check_count(len(files), name, limits)
    if sum(len(data) for _, data in files) > _study_bytes(limits):
        raise _error(limits, f"{name}: more than {_bytes_limit(limits)} of files")
    parts = [safe_parts(relative, name, "the upload", limits) for relative, _ in files]
    reading = _Reading(name, limits, "of files")
    return [reading.take(relative, inner, data)
            for (relative, data), inner in zip(files, parts, strict=True) if not junk(inner)]


def folder_files(path: Path, name: str,
                 limits: Limits = STUDY) -> list[tuple[tuple[str, ...], Path]]:
    """(path parts below the folder, path) of the files under it, recursively, junk left
    out, sorted; counted while the tree is walked, so a huge tree stops early."""
    found = []
    for file in path.rglob("*"):
        parts = file.relative_to(path).parts
        if file.is_file() and not junk(parts):
            found.append((parts, file))
            check_count(len(found), name, limits)
    return sorted(found)


def read_zip(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """A study's zip: its files as (zip name/name inside it, bytes)."""
    files = [(f"{name}/{e.name}", e.data) for e in zip_entries(data, name, STUDY)]
    if not files:
        raise StudyError(f"{name}: the zip holds no files")
    return files


def read_folder(path: Path, name: str) -> list[tuple[str, bytes]]:
    """A study's folder: its files as (folder/relative path, bytes)."""
    found = folder_files(path, name, STUDY)
    if not found:
        raise StudyError(f"{name}: the folder holds no files")
    # The sizes on disk, before a file is read.
    if sum(file.stat().st_size for _, file in found) > _study_bytes(STUDY):
        raise _error(STUDY, f"{name}: more than {_bytes_limit(STUDY)} of files")
    reading = _Reading(name, STUDY, "of files")
    entries = [reading.read("/".join(parts), parts, lambda file=file: file.open("rb"),
                            "cannot read", (OSError,))
               for parts, file in found]
    return [(f"{name.rstrip('/')}/{e.name}", e.data) for e in entries]
