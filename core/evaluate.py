"""How well a model does on a labelled set: accuracy, per-class scores, the confusion
matrix, one-vs-rest ROC curves and calibration, in numpy.

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

import io
import math
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from core.archive import SKIPPED_NAMES
from core.models import Classifier, ModelCard, ModelError
from core.study import Study, StudyError, one_line, open_study

# An evaluation set is many studies of one image each, not one series: more files than
# core.archive allows for a study, each checked on its own.
MAX_IMAGES = 5000
# Uncompressed bytes of a zip or uploaded folder held in memory (as core.archive).
MAX_SET_BYTES = 2 * 1024**3
# One image file; a larger one is skipped (a 2-D image is far smaller than this).
MAX_IMAGE_BYTES = 256 * 1024**2
# Reliability diagram: equal-width confidence bins, as Guo et al. 2017.
BINS = 10
# Images per forward pass: large enough to amortise the call, small enough for any model.
BATCH = 16

Progress = Callable[[float, str], None]


class EvaluationError(ValueError):
    """A labelled set that cannot be used, or does not fit the model. One line."""


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

    @property
    def folders(self) -> tuple[str, ...]:
        """The label folders, as written, in first-seen order."""
        return tuple(dict.fromkeys(image.label for image in self.images))

    def open(self, image: LabelledImage) -> Study:
        """The image as a study (StudyError, one line, if it cannot be read)."""
        if image.data is not None:
            return open_study(image.data, name=image.name)
        if image.path.stat().st_size > MAX_IMAGE_BYTES:
            raise StudyError(f"{image.name}: larger than {MAX_IMAGE_BYTES // 1024**2} MB")
        return open_study(image.path, name=image.name)


# -- reading sets -----------------------------------------------------------------------

def _junk(parts: tuple[str, ...]) -> bool:
    """Files no one means as images: hidden ones, macOS forks, thumbnail caches."""
    return (any(p.startswith(".") for p in parts) or parts[0] == "__MACOSX"
            or parts[-1] in SKIPPED_NAMES or parts[-1].startswith("._"))


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
    """Entries (path parts below the given root, what to read) as a set: each file in a
    label folder is an image (or, where `make` says so, a skipped file); files beside
    the label folders are skipped."""
    entries = [(parts, what) for parts, what in entries if not _junk(parts)]
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


def _check_count(count: int, name: str) -> None:
    if count > MAX_IMAGES:
        raise EvaluationError(f"{name}: {count:,} files, more than the {MAX_IMAGES:,}-image "
                              "limit for an evaluation set")


def from_samples(card: ModelCard) -> LabelledSet:
    """The model's built-in labelled samples (EvaluationError if it has none)."""
    from core.samples import samples

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
    files = []
    for found in root.rglob("*"):
        if found.is_file():
            files.append(found)
            _check_count(len(files), name)  # stops early under a huge tree
    files.sort()
    return _placed(((f.relative_to(root).parts, f) for f in files), name, wrapped=False,
                   make=lambda where, label, f: LabelledImage(where, label, path=f))


def from_files(files: Sequence[tuple[str, bytes]], name: str) -> LabelledSet:
    """Files with their relative paths ("brain/glioma/x.jpg"), as a browser uploads a
    folder: the first folders are stepped into while they only wrap the label folders."""
    _check_count(len(files), name)
    if sum(len(data) for _, data in files) > MAX_SET_BYTES:
        raise EvaluationError(f"{name}: more than {MAX_SET_BYTES // 1024**3} GB")
    entries = []
    for relative, data in files:
        parts = _safe_parts(relative, name)
        entries.append((parts, data))
    return _placed(entries, name, wrapped=True,
                   make=lambda where, label, data: LabelledImage(where, label, data=data))


def from_zip(source: bytes | str | Path, name: str | None = None) -> LabelledSet:
    """A .zip with one folder per label (possibly inside one wrapping folder), read into
    memory with core.archive's limits: hostile archives are refused as a whole."""
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
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise EvaluationError(f"{name}: not a readable zip file ({one_line(exc)})") from None
    _check_count(len(entries), name)
    parts = [_safe_parts(e.filename, name) for e in entries]  # every name, before reading
    if sum(e.file_size for e in entries) > MAX_SET_BYTES:
        raise EvaluationError(f"{name}: more than {MAX_SET_BYTES // 1024**3} GB uncompressed")
    files: list[tuple[tuple[str, ...], bytes | str]] = []
    total = 0
    for entry, inner in zip(entries, parts, strict=True):
        if _junk(inner):
            continue
        try:
            with archive.open(entry) as handle:
                # The declared size can lie (zip bombs): never read more than allowed.
                content = handle.read(min(MAX_IMAGE_BYTES, MAX_SET_BYTES - total) + 1)
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
            # One entry that cannot be decompressed (encrypted, corrupt) is skipped.
            files.append((inner, f"cannot decompress ({one_line(exc)})"))
            continue
        total += len(content)
        if total > MAX_SET_BYTES:
            raise EvaluationError(f"{name}: more than {MAX_SET_BYTES // 1024**3} GB "
                                  "uncompressed")
        if len(content) > MAX_IMAGE_BYTES:
            files.append((inner, f"larger than {MAX_IMAGE_BYTES // 1024**2} MB"))
            continue
        files.append((inner, content))
    return _placed(files, name, wrapped=True, make=_zip_image)


def _zip_image(where: str, label: str, content: bytes | str) -> LabelledImage | Skipped:
    # A string stands for an entry that could not be read: the reason why.
    if isinstance(content, str):
        return Skipped(where, content)
    return LabelledImage(where, label, data=content)


def _safe_parts(filename: str, name: str) -> tuple[str, ...]:
    """A member's path parts; absolute or escaping names refuse the whole archive."""
    parts = PurePosixPath(filename.replace("\\", "/")).parts
    if filename.startswith(("/", "\\")) or ".." in parts or ":" in filename or not parts:
        raise EvaluationError(f"{name}: unsafe path '{filename}' (absolute or leading "
                              "outside it); nothing was read")
    return parts


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


# -- metrics ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassScores:
    """One class's scores; None where the score is not defined (0/0)."""

    label: str
    precision: float | None  # None: the model never predicted the class
    recall: float | None  # None: no image of the class in the set
    f1: float | None  # None: the class is neither in the set nor predicted
    support: int

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support}


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts: rows the true class, columns the predicted one."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def class_scores(matrix: np.ndarray, labels: Sequence[str]) -> list[ClassScores]:
    """Precision, recall, F1 and support of each class from a confusion matrix.

    F1 is 2TP / (2TP + FP + FN): the harmonic mean of precision and recall where both
    exist, 0 for a class in the set that is never predicted (or predicted but absent),
    undefined only for a class neither present nor predicted (as scikit-learn's
    zero_division=0 over the labels that occur)."""
    out = []
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        predicted = int(matrix[:, i].sum())
        support = int(matrix[i].sum())
        fp, fn = predicted - tp, support - tp
        out.append(ClassScores(
            label=label,
            precision=tp / predicted if predicted else None,
            recall=tp / support if support else None,
            f1=2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None,
            support=support))
    return out


def _roc_counts(positive: np.ndarray, scores: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, thresholds) at each distinct score, highest
    first, from (0, 0): counts, so the area can be summed exactly."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    # The last index of each run of equal scores: the curve steps there, so tied scores
    # move both counts at once (a positive-negative tie counts one half in the area).
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(positive)[last]
    fps = (last + 1) - tps
    return np.r_[0, fps], np.r_[0, tps], np.r_[np.inf, scores[last]]


def roc_curve(positive: np.ndarray, scores: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds): one point per distinct
    score, highest first, from (0, 0); NaN rates where the set has no negatives or no
    positives."""
    fps, tps, thresholds = _roc_counts(positive, scores)
    n, p = fps[-1], tps[-1]
    return (fps / n if n else np.full(fps.size, np.nan),
            tps / p if p else np.full(tps.size, np.nan), thresholds)


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids); None without positives or negatives."""
    fps, tps, _ = _roc_counts(positive, scores)
    n, p = int(fps[-1]), int(tps[-1])
    if not n or not p:
        return None
    # Trapezoids on the integer counts, divided once: a perfect ranking gives exactly 1.0
    # (summing float rates gives 0.9999999999999999).
    twice = int(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])))
    return twice / (2 * p * n)


@dataclass(frozen=True)
class Reliability:
    """Top-class confidence in equal-width bins (Guo et al. 2017): each bin's mean
    confidence and accuracy (None when empty) and its count."""

    edges: tuple[float, ...]
    confidence: tuple[float | None, ...]
    accuracy: tuple[float | None, ...]
    count: tuple[int, ...]

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of |B|/n * |accuracy - confidence|."""
        n = sum(self.count)
        return float(sum(c / n * abs(a - f) for c, a, f in
                         zip(self.count, self.accuracy, self.confidence, strict=True) if c))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    """Bins ((m-1)/M, m/M] of the top class's probability (the first closed at 0)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # searchsorted on the edges themselves: conf * bins would put 0.3 in (0.3, 0.4].
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    mean_conf, mean_acc, count = [], [], []
    for b in range(bins):
        inside = index == b
        count.append(int(inside.sum()))
        mean_conf.append(float(confidence[inside].mean()) if inside.any() else None)
        mean_acc.append(float(correct[inside].mean()) if inside.any() else None)
    return Reliability(tuple(round(float(e), 12) for e in edges), tuple(mean_conf),
                       tuple(mean_acc),
                       tuple(count))


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


# -- evaluation -------------------------------------------------------------------------

@dataclass
class Evaluation:
    """A model's predictions on every evaluated image, and the measures made from them."""

    model: str
    labels: tuple[str, ...]
    images: tuple[LabelledImage, ...]  # evaluated, in the order of the rows below
    true: np.ndarray  # (n,) index of each image's label among `labels`
    probabilities: np.ndarray  # (n, classes), as the model gave them
    skipped: tuple[Skipped, ...] = ()
    set_name: str = ""
    seconds: float = 0.0
    labelled_set: LabelledSet | None = field(default=None, repr=False)
    metadata: dict[str, Any] | None = None  # the answers every image was given

    @property
    def n(self) -> int:
        return len(self.images)

    @cached_property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.probabilities, axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.true

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @cached_property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.true, self.predicted, len(self.labels))

    @cached_property
    def per_class(self) -> list[ClassScores]:
        return class_scores(self.confusion, self.labels)

    @property
    def macro_f1(self) -> float | None:
        """Mean F1 over the classes in the set or predicted (as scikit-learn's macro)."""
        return _mean(s.f1 for s in self.per_class)

    @cached_property
    def roc(self) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """One-vs-rest ROC curve (fpr, tpr) of each class; None where the set has no
        image of the class, or only images of it."""
        out: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        for i, label in enumerate(self.labels):
            positive = self.true == i
            if positive.all() or not positive.any():
                out[label] = None
            else:
                fpr, tpr, _ = roc_curve(positive, self.probabilities[:, i])
                out[label] = (fpr, tpr)
        return out

    @cached_property
    def roc_auc(self) -> dict[str, float | None]:
        return {label: roc_auc(self.true == i, self.probabilities[:, i])
                for i, label in enumerate(self.labels)}

    @property
    def macro_auc(self) -> float | None:
        """Mean one-vs-rest AUC over the classes where it is defined."""
        return _mean(self.roc_auc.values())

    @cached_property
    def calibration(self) -> Reliability:
        return reliability(self.probabilities.max(axis=1), self.correct)

    @property
    def ece(self) -> float:
        return self.calibration.ece

    @property
    def notes(self) -> list[str]:
        """What could not be measured, in words."""
        out = []
        for label, auc in self.roc_auc.items():
            if auc is None:
                support = int((self.true == self.labels.index(label)).sum())
                why = "no image of it" if support == 0 else "no image of another class"
                out.append(f"ROC AUC of '{label}' not defined: the set has {why}")
        return out

    def cell(self, true_label: str, predicted_label: str) -> list[int]:
        """The rows (images) of one confusion-matrix cell."""
        t, p = self.labels.index(true_label), self.labels.index(predicted_label)
        return [int(i) for i in np.flatnonzero((self.true == t) & (self.predicted == p))]

    def cells(self) -> list[tuple[str, str, int]]:
        """Non-empty cells (true, predicted, count): the errors first, then the correct."""
        found = [(self.labels[t], self.labels[p], int(self.confusion[t, p]))
                 for t in range(len(self.labels)) for p in range(len(self.labels))
                 if self.confusion[t, p]]
        return sorted(found, key=lambda c: c[0] == c[1])  # stable: row-major within

    def to_dict(self) -> dict[str, Any]:
        """What `medlens evaluate --json` prints."""
        return {
            "model": self.model,
            "n": self.n,
            "accuracy": self.accuracy,
            "per_class": {s.label: s.to_dict() for s in self.per_class},
            "confusion_matrix": self.confusion.tolist(),
            "labels": list(self.labels),
            "roc_auc": dict(self.roc_auc),
            "ece": self.ece,
            "macro_f1": self.macro_f1,
            "skipped": [s.to_dict() for s in self.skipped],
        }

    def summary_row(self) -> dict[str, Any]:
        return {"model": self.model, "n": self.n, "accuracy": self.accuracy,
                "macro_f1": self.macro_f1, "macro_auc": self.macro_auc, "ece": self.ece}


def check_metadata(card: ModelCard, metadata: dict[str, Any] | None) -> None:
    """Metadata answers that fit the model: EvaluationError otherwise, so that one model
    that does not fit is reported while the others run (see `compare`)."""
    try:
        card.check_metadata(metadata)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from None


def _reason(exc: BaseException, name: str) -> str:
    """The problem without the file name the message starts with (it is listed beside)."""
    text = one_line(exc)
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


def evaluate(classifier: Classifier, labelled: LabelledSet, progress: Progress | None = None,
             metadata: dict[str, Any] | None = None,
             only_known_labels: bool = False) -> Evaluation:
    """Run the model on every image of the set, in batches, and measure it.

    Each image is prepared as the model's card says (the middle slice of a volume, the
    first frame of a cine, as `medlens predict` does); `metadata` (one set of answers for
    every image) goes to a model with a metadata input. Unreadable images are skipped and
    listed; a set with none left is an error."""
    card = classifier.card
    check_metadata(card, metadata)
    indices = match_labels(card, labelled, only_known_labels)
    started = time.perf_counter()
    skipped = list(labelled.skipped)
    kept_images: list[LabelledImage] = []
    true: list[int] = []
    rows: list[np.ndarray] = []
    pending: list[tuple[LabelledImage, Any]] = []
    total = len(labelled.images)

    def flush() -> None:
        if not pending:
            return
        inputs = [model_input for _, model_input in pending]
        if inputs[0].metadata is None:
            batch: Any = np.stack([m.array for m in inputs])
        else:
            batch = [np.stack([m.array for m in inputs]), np.stack([m.metadata for m in inputs])]
        rows.append(classifier.probabilities(batch))
        for image, _ in pending:
            kept_images.append(image)
            true.append(indices[image.label])
        pending.clear()

    for done, image in enumerate(labelled.images, start=1):
        if image.label not in indices:
            skipped.append(Skipped(image.name, f"label folder '{image.label}' is not among "
                                               f"{card.id}'s labels"))
            continue
        try:
            study = labelled.open(image)
            pending.append((image, card.prepare(study, frame=study.default_index(),
                                                metadata=metadata)))
        except (StudyError, ValueError) as exc:  # one bad file never stops the others
            skipped.append(Skipped(image.name, _reason(exc, image.name)))
            continue
        if len(pending) == BATCH:
            flush()
        if progress is not None and (done % BATCH == 0 or done == total):
            progress(done / total, f"{card.id}: {done} of {total} images")
    flush()
    if not kept_images:
        first = f" ({skipped[0].name}: {skipped[0].reason})" if skipped else ""
        raise EvaluationError(f"{labelled.name}: no image could be evaluated{first}")
    if progress is not None:
        progress(1.0, f"{card.id}: {len(kept_images)} images")
    return Evaluation(model=card.id, labels=tuple(card.labels), images=tuple(kept_images),
                      true=np.asarray(true, dtype=np.int64),
                      probabilities=np.concatenate(rows).astype(np.float64),
                      skipped=tuple(skipped), set_name=labelled.name,
                      seconds=time.perf_counter() - started, labelled_set=labelled,
                      metadata=metadata)


def explain_row(classifier: Classifier, evaluation: Evaluation, row: int,
                method: str = "gradcam") -> tuple[np.ndarray, Any]:
    """(the 8-bit picture, an Explanation of the predicted class) for one evaluated image,
    prepared exactly as it was evaluated. `classifier` is the model to explain with (the
    VGG16's Keras port for gradient methods: core.explain.explainable)."""
    from core.explain import explain_input

    if evaluation.labelled_set is None:
        raise EvaluationError(f"{evaluation.model}: the evaluated images are not kept")
    study = evaluation.labelled_set.open(evaluation.images[row])
    frame = study.default_index()
    model_input = classifier.card.prepare(study, frame=frame, metadata=evaluation.metadata)
    return study.display(frame), explain_input(classifier, model_input, method)


@dataclass
class Comparison:
    """Several models on the same set: each one's evaluation, or why it could not run."""

    set_name: str
    evaluations: dict[str, Evaluation]
    errors: dict[str, str]

    def table(self) -> list[dict[str, Any]]:
        """One row per model: model, n, accuracy, macro F1, macro AUC, ECE (None where a
        model could not be evaluated; its error is in `errors`)."""
        rows = [e.summary_row() for e in self.evaluations.values()]
        rows += [{"model": m, "n": 0, "accuracy": None, "macro_f1": None,
                  "macro_auc": None, "ece": None} for m in self.errors]
        return rows


def compare(classifiers: Sequence[Classifier], labelled: LabelledSet,
            progress: Progress | None = None,
            metadata: Mapping[str, dict[str, Any] | None] | None = None,
            only_known_labels: bool = False) -> Comparison:
    """Every model on the same set. A model whose labels do not fit the set (or whose
    metadata does not fit it) is reported in `errors` and the others still run."""
    evaluations: dict[str, Evaluation] = {}
    errors: dict[str, str] = {}
    count = len(classifiers)
    for k, classifier in enumerate(classifiers):
        model = classifier.card.id

        def step(done: float, text: str, k: int = k) -> None:
            if progress is not None:
                progress((k + done) / count, text)

        try:
            evaluations[model] = evaluate(classifier, labelled, step,
                                          (metadata or {}).get(model), only_known_labels)
        except EvaluationError as exc:
            errors[model] = str(exc)
    return Comparison(labelled.name, evaluations, errors)


# -- text -------------------------------------------------------------------------------

def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def summary(evaluation: Evaluation) -> str:
    """A readable table for the terminal: headline figures, per class, confusion matrix."""
    e = evaluation
    width = max(12, *(len(label) + 2 for label in e.labels))
    lines = [
        f"{e.model} on {e.n} images ({e.set_name})",
        f"accuracy {_number(e.accuracy)} ({int(e.correct.sum())}/{e.n})  macro F1 "
        f"{_number(e.macro_f1)}  macro AUC {_number(e.macro_auc)}  ECE {_number(e.ece)}",
        "",
        f"{'label':{width}}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}{'AUC':>8}",
    ]
    for s in e.per_class:
        lines.append(f"{s.label:{width}}{_number(s.precision):>10}{_number(s.recall):>8}"
                     f"{_number(s.f1):>8}{s.support:>9}{_number(e.roc_auc[s.label]):>8}")
    lines += ["", "confusion matrix (rows true, columns predicted):",
              " " * width + "".join(f"{label:>{width}}" for label in e.labels)]
    for label, row in zip(e.labels, e.confusion, strict=True):
        lines.append(f"{label:{width}}" + "".join(f"{int(v):>{width}}" for v in row))
    lines += [f"note: {note}" for note in e.notes]
    lines += [f"skipped {s.name}: {s.reason}" for s in e.skipped]
    return "\n".join(lines)
