"""Labelled sets: images with their labels, read from the built-in samples, a folder,
a .zip or an uploaded folder, and matched to a model's labels.

A labelled set is the built-in samples of a model, a folder with one sub-folder per
label, or a .zip (or an uploaded folder) arranged the same way. The label of an image is
the name of the first folder it sits in below the set's root; images may be nested
deeper inside their label folder. A zip or an uploaded folder is usually wrapped in one
folder of its own ("brain/glioma/x.jpg"): such wrapping folders are stepped into while
they hold a single folder that itself holds folders, so "brain/glioma/x.jpg" and
"glioma/x.jpg" both give the label "glioma". A folder given as a path is the root as is.

Folder names are matched to the model's labels exactly, then ignoring case. A folder
that matches none of them is an error naming it and the model's labels: a model cannot
be scored on a class it cannot predict (every image of it would count as wrong and its
recall would measure nothing). With `only_known_labels=True` the images of such folders
are left out instead and listed among the skipped ones, so a model trained on part of
the classes can still be measured on the images it knows. A file that cannot be read is
skipped and listed with the reason; it never stops the evaluation.

Reading a set never imports TensorFlow: it is checked before a model is loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from core.models import ModelCard
from core.models.samples import samples
from core.studies import Study, StudyError, open_study
from core.studies.archives import (
    Entry,
    Limits,
    folder_files,
    size_text,
    upload_entries,
    zip_entries,
)

# An evaluation set is many studies of one image each, not one series: more files than
# core.studies.archives allows for a study, each checked on its own.
MAX_IMAGES = 5000
# Uncompressed bytes of a zip or uploaded folder held in memory (as for a study).
MAX_SET_BYTES = 2 * 1024**3
# One image file; a larger one is skipped (a 2-D image is far smaller than this).
MAX_IMAGE_BYTES = 256 * 1024**2


class EvaluationError(ValueError):
    """A labelled set that cannot be used, or does not fit the model. One line."""


# The archive reader's limits for a set: a file that cannot be read is skipped and
# listed, never the end of the evaluation.
SET_LIMITS = Limits(files=MAX_IMAGES, bytes=MAX_SET_BYTES, file_bytes=MAX_IMAGE_BYTES,
                    skip_unreadable=True, counted="image", purpose="for an evaluation set",
                    error=EvaluationError)


@dataclass(frozen=True)
class Skipped:
    """A file left out of the evaluation, and why (one line)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class LabelledImage:
    """One image of a set: where it is inside the set, and its label folder's name."""

    name: str  # e.g. "glioma/Te-gl_0010.jpg", relative to the set's root
    label: str  # the folder's name as written (matched to a model's labels later)
    path: Path | None = None  # a file on disk (folders, built-in samples)
    data: bytes | None = field(default=None, repr=False)  # read from a zip or an upload


@dataclass(frozen=True)
class LabelledSet:
    """Images with their labels, and the files that could not be placed in the set."""

    name: str
    images: tuple[LabelledImage, ...]
    skipped: tuple[Skipped, ...] = ()

    @cached_property
    def fingerprint(self) -> str:
        """The set's content (a job's input digest): each image's name and label, and its
        bytes (or, on disk, its path, size and modification time)."""
        h = hashlib.sha256(self.name.encode())
        for image in self.images:
            h.update(f"{image.name}\0{image.label}\0".encode())
            if image.data is not None:
                h.update(hashlib.sha256(image.data).digest())
            elif image.path is not None:
                stat = image.path.stat()
                h.update(f"{image.path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return h.hexdigest()

    @property
    def folders(self) -> tuple[str, ...]:
        """The label folders, as written, in first-seen order."""
        return tuple(dict.fromkeys(image.label for image in self.images))

    def open(self, image: LabelledImage) -> Study:
        """The image as a study (StudyError, one line, if it cannot be read)."""
        if image.data is not None:
            return open_study(image.data, name=image.name)
        if image.path.stat().st_size > MAX_IMAGE_BYTES:
            raise StudyError(f"{image.name}: larger than {size_text(MAX_IMAGE_BYTES)}")
        return open_study(image.path, name=image.name)


# -- reading sets -----------------------------------------------------------------------

def _root_depth(parts: Sequence[tuple[str, ...]]) -> int:
    """How many wrapping folders to step into: one folder holding one folder that holds
    folders ("brain/glioma/x.jpg") is a wrapper; one holding only files is the single
    label folder of a one-class set."""
    depth = 0
    while parts:
        if any(len(p) <= depth + 1 for p in parts):
            break  # a file sits at this level: this is the root
        if len({p[depth] for p in parts}) != 1:
            break  # several folders here: the label folders
        if not any(len(p) > depth + 2 for p in parts):
            break  # the only folder holds files only: it is a label
        depth += 1
    return depth


def _placed(entries: Iterable[tuple[tuple[str, ...], Any]], name: str, wrapped: bool,
            make: Callable[[str, str, Any], LabelledImage | Skipped]) -> LabelledSet:
    """Entries (path parts below the given root, what to read; junk already left out) as
    a set: each file in a label folder is an image (or, where `make` says so, a skipped
    file); files beside the label folders are skipped."""
    entries = list(entries)
    depth = _root_depth([parts for parts, _ in entries]) if wrapped else 0
    images, skipped = [], []
    for parts, what in entries:
        inner = parts[depth:]
        where = "/".join(inner)
        made = (Skipped(where, "not inside a label sub-folder") if len(inner) < 2
                else make(where, inner[0], what))
        (skipped if isinstance(made, Skipped) else images).append(made)
    if not images:
        first = f" ({skipped[0].name}: {skipped[0].reason})" if skipped else ""
        raise EvaluationError(f"{name}: no images in label sub-folders (expected one "
                              f"sub-folder per label, e.g. glioma/image.jpg){first}")
    return LabelledSet(name, tuple(images), tuple(skipped))


def from_samples(card: ModelCard) -> LabelledSet:
    """The model's built-in labelled samples (EvaluationError if it has none)."""
    found = samples(card)
    if not found:
        raise EvaluationError(f"{card.id} has no built-in samples; give a labelled folder "
                              "or .zip")
    return LabelledSet(f"the built-in samples of {card.id}", tuple(
        LabelledImage(name=s.name, label=s.label, path=s.path) for s in found))


def from_folder(path: str | Path, name: str | None = None) -> LabelledSet:
    """A folder on disk with one sub-folder per label (read lazily, image by image)."""
    root = Path(path)
    name = name or str(path)
    if not root.exists():
        raise EvaluationError(f"{name}: no such folder")
    if not root.is_dir():
        raise EvaluationError(f"{name}: not a folder")
    return _placed(folder_files(root, name, SET_LIMITS), name, wrapped=False,
                   make=lambda where, label, f: LabelledImage(where, label, path=f))


def from_files(files: Sequence[tuple[str, bytes]], name: str) -> LabelledSet:
    """Files with their relative paths ("brain/glioma/x.jpg"), as a browser uploads a
    folder: the first folders are stepped into while they only wrap the label folders."""
    entries = upload_entries(files, name, SET_LIMITS)
    return _placed(((e.parts, e) for e in entries), name, wrapped=True, make=_archived)


def from_zip(source: bytes | str | Path, name: str | None = None) -> LabelledSet:
    """A .zip with one folder per label (possibly inside one wrapping folder), read into
    memory by core.studies.archives with `SET_LIMITS`: hostile archives are refused as a
    whole, an entry that cannot be read is skipped and listed."""
    if isinstance(source, bytes):
        data, name = source, name or "upload.zip"
    else:
        name = name or str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise EvaluationError(f"{name}: no such file or folder") from None
        except OSError as exc:
            raise EvaluationError(f"{name}: cannot read ({exc.strerror})") from None
    entries = zip_entries(data, name, SET_LIMITS)
    return _placed(((e.parts, e) for e in entries), name, wrapped=True, make=_archived)


def _archived(where: str, label: str, entry: Entry) -> LabelledImage | Skipped:
    """An image read from a zip or an upload, or (an entry that could not be) why not."""
    if entry.data is None:
        return Skipped(where, entry.reason)
    return LabelledImage(where, label, data=entry.data)


def open_set(source: str | Path | bytes, name: str | None = None) -> LabelledSet:
    """A folder or a .zip (path or bytes) as a labelled set."""
    if isinstance(source, bytes):
        return from_zip(source, name)
    path = Path(source)
    if path.is_dir():
        return from_folder(path, name)
    if not path.exists():
        raise EvaluationError(f"{name or source}: no such file or folder")
    if path.is_file() and not _starts_like_zip(path):
        raise EvaluationError(f"{name or source}: not a folder or a .zip file (a labelled "
                              "set has one sub-folder per label)")
    return from_zip(path, name)


def _starts_like_zip(path: Path) -> bool:
    """A zip's local-file or empty-archive signature (a damaged zip still starts so, and
    is then reported as an unreadable zip rather than as not a zip)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return True  # let from_zip say why it cannot be read


# -- labels -----------------------------------------------------------------------------

def match_labels(card: ModelCard, labelled: LabelledSet,
                 only_known_labels: bool = False) -> dict[str, int]:
    """Each folder's index among the model's labels: exact name, else ignoring case.
    Folders matching none are an error, or (only_known_labels) left out of the result."""
    by_case = {}
    for index, label in enumerate(card.labels):
        by_case.setdefault(label.casefold(), index)
    found, unknown = {}, []
    for folder in labelled.folders:
        if folder in card.labels:
            found[folder] = card.labels.index(folder)
        elif folder.casefold() in by_case:
            found[folder] = by_case[folder.casefold()]
        else:
            unknown.append(folder)
    if unknown and not only_known_labels:
        raise EvaluationError(
            f"{labelled.name}: folder{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} {'are' if len(unknown) > 1 else 'is'} "
            f"not among {card.id}'s labels ({', '.join(card.labels)})")
    if not found:
        raise EvaluationError(f"{labelled.name}: none of its folders "
                              f"({', '.join(labelled.folders)}) is among {card.id}'s labels "
                              f"({', '.join(card.labels)})")
    return found


