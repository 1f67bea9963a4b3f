"""Running models on a labelled set: one model (`evaluate` -> `Evaluation`), several on
the same set (`evaluate_models` -> `Scoreboard`), and one evaluated image explained as it
was evaluated (`explain_row`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from core.evaluate.metrics import (
    ClassScores,
    Reliability,
    _mean,
    class_scores,
    confusion_matrix,
    reliability,
    roc_auc,
    roc_curve,
)
from core.evaluate.sets import (
    EvaluationError,
    LabelledImage,
    LabelledSet,
    Skipped,
    match_labels,
)
from core.explain.api import explain_input
from core.models import Classifier, ModelCard, ModelError
from core.models.domain import DomainCheck, check_batch
from core.models.outputs import predicted_class
from core.progress import Progress, part, report
from core.studies import StudyError, one_line

# Images per forward pass: large enough to amortise the call, small enough for any model.
BATCH = 16


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
    domain: tuple[DomainCheck, ...] = ()  # each image's domain check, in row order

    @property
    def n(self) -> int:
        return len(self.images)

    @cached_property
    def predicted(self) -> np.ndarray:
        return predicted_class(self.probabilities)

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
            "domain": self.domain_summary(),
        }

    @property
    def outside_domain(self) -> list[str]:
        """The images the domain check flags (core.models.domain), by name."""
        return [image.name for image, c in zip(self.images, self.domain, strict=True)
                if c.in_domain is False]

    def domain_summary(self) -> dict[str, Any]:
        """How many images the domain check flags, which, and by what method; or why
        it cannot be checked."""
        if not self.domain:
            return {"checked": 0, "outside": [], "method": None}
        first = self.domain[0]
        if first.in_domain is None:
            return {"checked": 0, "outside": [], "method": first.method,
                    "reason": first.reason}
        return {"checked": len(self.domain), "outside": self.outside_domain,
                "method": first.method, "threshold": first.threshold}

    def domain_caption(self) -> str:
        """The domain check in one quiet line, when it flags nothing."""
        summary = self.domain_summary()
        if summary.get("reason"):
            return f"Domain not checked: {summary['reason']}."
        return (f"Domain check: all {summary['checked']} images look like the images "
                f"{self.model} was trained on ({summary['method']}).")

    def domain_note(self) -> str | None:
        """One line for the page when any image looks outside the model's domain."""
        outside = self.outside_domain
        if not outside:
            return None
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5
                                          else "")
        return (f"{len(outside)} of {self.n} images look unlike the images {self.model} was "
                f"trained on (domain check): {shown}. Its scores on them measure it outside "
                "what it learnt.")

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
    checks: list[DomainCheck] = []
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
        checks.extend(check_batch(classifier, batch))
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
        if done % BATCH == 0 or done == total:
            report(progress, done / total, f"{card.id}: {done} of {total} images")
    flush()
    if not kept_images:
        first = f" ({skipped[0].name}: {skipped[0].reason})" if skipped else ""
        raise EvaluationError(f"{labelled.name}: no image could be evaluated{first}")
    report(progress, 1.0, f"{card.id}: {len(kept_images)} images")
    return Evaluation(model=card.id, labels=tuple(card.labels), images=tuple(kept_images),
                      true=np.asarray(true, dtype=np.int64),
                      probabilities=np.concatenate(rows).astype(np.float64),
                      skipped=tuple(skipped), set_name=labelled.name,
                      seconds=time.perf_counter() - started, labelled_set=labelled,
                      metadata=metadata, domain=tuple(checks))


def explain_row(classifier: Classifier, evaluation: Evaluation, row: int,
                method: str = "gradcam") -> tuple[np.ndarray, Any]:
    """(the 8-bit picture, an Explanation of the predicted class) for one evaluated image,
    prepared exactly as it was evaluated. `classifier` is the model to explain with (the
    VGG16's Keras port for gradient methods: core.explain.explainable)."""
    if evaluation.labelled_set is None:
        raise EvaluationError(f"{evaluation.model}: the evaluated images are not kept")
    study = evaluation.labelled_set.open(evaluation.images[row])
    frame = study.default_index()
    model_input = classifier.card.prepare(study, frame=frame, metadata=evaluation.metadata)
    return study.display(frame), explain_input(classifier, model_input, method)


@dataclass
class Scoreboard:
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


def evaluate_models(classifiers: Sequence[Classifier], labelled: LabelledSet,
                    progress: Progress | None = None,
                    metadata: Mapping[str, dict[str, Any] | None] | None = None,
                    only_known_labels: bool = False) -> Scoreboard:
    """Every model on the same set. A model whose labels do not fit the set (or whose
    metadata does not fit it) is reported in `errors` and the others still run."""
    evaluations: dict[str, Evaluation] = {}
    errors: dict[str, str] = {}
    count = len(classifiers)
    for k, classifier in enumerate(classifiers):
        model = classifier.card.id
        try:
            evaluations[model] = evaluate(classifier, labelled,
                                          part(progress, k / count, (k + 1) / count),
                                          (metadata or {}).get(model), only_known_labels)
        except EvaluationError as exc:
            errors[model] = str(exc)
    return Scoreboard(labelled.name, evaluations, errors)


