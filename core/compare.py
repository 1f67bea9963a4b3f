"""Several models on one study, side by side: what each saw, said and looked at, and how
far their maps agree.

Agreement between two maps is measured at the study's resolution (each
`Explanation.map` is already resized there, whatever the model's input size was): the
IoU of their top-20% regions and Spearman's rank correlation
(`core.explain.metrics.agreement`).

Maps made for different classes (each model explaining its own prediction) can be
compared, but then measure where the models look, not whether they agree on one class:
`Pair.sentence` says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from core.explain.api import explain_input, explainable
from core.explain.errors import ExplainError
from core.explain.metrics.agreement import agreement
from core.explain.registry import find_method
from core.models import Classifier, ModelCard, ModelError, Prediction, card, load
from core.models.domain import DomainCheck
from core.models.domain import check as domain_check
from core.models.domain import warning as domain_warning
from core.models.inputs import ModelInput
from core.progress import Progress, part, report
from core.studies import Study

MIN_MODELS, MAX_MODELS = 2, 4


class CompareError(ExplainError):
    """A comparison that cannot be made as asked. One line."""


# -- which labels can be compared ---------------------------------------------------------

@dataclass(frozen=True)
class SharedLabels:
    """The labels every model has (in the first model's order), and that said in words."""

    labels: tuple[str, ...]
    note: str


def shared_labels(cards: Sequence[ModelCard]) -> SharedLabels:
    """The labels every model in `cards` has; a model with other labels as well is
    compared on the shared ones only, and the note says which models differ how."""
    if not cards:
        return SharedLabels((), "No models.")
    common = [label for label in cards[0].labels
              if all(label in c.labels for c in cards[1:])]
    if not common:
        listed = "; ".join(f"{c.id} ({', '.join(c.labels)})" for c in cards)
        return SharedLabels((), f"No label is shared by all these models: {listed}. "
                                "Answers are compared only between models that share "
                                "their labels; a model without the chosen target explains "
                                "its own prediction.")
    shared = ", ".join(common)
    extra = [f"{c.id} also has {', '.join(x for x in c.labels if x not in common)}"
             for c in cards if len(c.labels) > len(common)]
    if not extra:
        return SharedLabels(tuple(common), f"All models have the same labels: {shared}.")
    return SharedLabels(tuple(common), f"Compared on the labels all models share: {shared}; "
                                       + "; ".join(extra) + ".")


# -- one model, and the comparison --------------------------------------------------------

@dataclass(frozen=True)
class ModelResult:
    """What one model saw, said and looked at on the study."""

    card: ModelCard
    runtime: str  # what the prediction ran on
    explained_on: str | None  # what the map was made on (the VGG16's Keras port...)
    model_input: ModelInput
    prediction: Prediction
    explanation: Any | None  # core.explain.Explanation; None where it could not be made
    forward_seconds: float
    parameters: int
    file_bytes: int
    notes: tuple[str, ...] = ()
    domain: DomainCheck | None = None  # whether the study is within the model's domain
    warning: str | None = None  # the feature and modality checks' warning, if any

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def confidence(self) -> float:
        return self.prediction.probabilities[self.prediction.label]

    def to_dict(self) -> dict[str, Any]:
        e = self.explanation
        return {
            "id": self.id,
            "label": self.prediction.label,
            "probabilities": self.prediction.probabilities,
            "seconds": {"forward": round(self.forward_seconds, 4),
                        "explanation": None if e is None else round(e.seconds, 4)},
            "explained": None if e is None else e.label,
            "runtime": self.runtime,
            "explained_on": self.explained_on,
            "parameters": self.parameters,
            "file_bytes": self.file_bytes,
            "notes": list(self.notes),
            **({"domain": self.domain.to_dict()} if self.domain is not None else {}),
            **({"warning": self.warning} if self.warning else {}),
        }


@dataclass(frozen=True)
class Pair:
    """Two models: how far their maps agree, and what they say, in a sentence."""

    a: str
    b: str
    iou_top20: float | None  # None where either map could not be made
    spearman: float | None
    constant: tuple[str, ...]  # the ids whose map is constant (0.0 is then no measure)
    sentence: str

    def to_dict(self, named: bool = True) -> dict[str, Any]:
        out = {"iou_top20": self.iou_top20, "spearman": self.spearman,
               "constant": list(self.constant)}
        return {"a": self.a, "b": self.b, **out} if named else out


@dataclass(frozen=True)
class Comparison:
    method: str
    target: str | None
    models: tuple[ModelResult, ...]
    pairs: tuple[Pair, ...]
    labels: SharedLabels
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON: "agreement" is one object for two models, else one per pair."""
        agreement: Any = (self.pairs[0].to_dict(named=False) if len(self.pairs) == 1
                          else [p.to_dict() for p in self.pairs])
        return {
            "method": self.method,
            "target": self.target,
            "models": [m.to_dict() for m in self.models],
            "agreement": agreement,
            "labels": {"shared": list(self.labels.labels), "note": self.labels.note},
            "sentences": [p.sentence for p in self.pairs],
            "notes": list(self.notes),
        }


def _percent(p: float) -> str:
    """Whole percents, but never 100% or 0% for what is not certain (0.997 is 99.7%)."""
    text = f"{p:.0%}"
    if text not in ("100%", "0%") or p in (0.0, 1.0):
        return text
    finer = f"{p:.1%}"
    return finer if finer not in ("100.0%", "0.0%") else (">99.9%" if p > 0.5 else "<0.1%")


def verdict(a: ModelResult, b: ModelResult) -> str:
    """A plain sentence: do the two models say the same? Two answers are compared only
    where both labels belong to both models."""
    shared = shared_labels([a.card, b.card]).labels
    la, lb = a.prediction.label, b.prediction.label
    pa, pb = _percent(a.confidence), _percent(b.confidence)
    if la == lb:
        sentence = f"{a.id} and {b.id} both say {la} ({pa} and {pb})."
    elif la in shared and lb in shared:
        sentence = f"{a.id} says {la} ({pa}), {b.id} says {lb} ({pb})."
    else:
        sentence = (f"{a.id} says {la} ({pa}), {b.id} says {lb} ({pb}); they do not "
                    "share these labels, so their answers cannot be compared.")
    ea, eb = a.explanation, b.explanation
    if ea is not None and eb is not None and ea.label != eb.label:
        sentence += (f" Their maps explain different classes ({ea.label}, {eb.label}): "
                     "the agreement says where each looks, not whether they agree.")
    return sentence


def pair(a: ModelResult, b: ModelResult) -> Pair:
    """The agreement of two models' maps and the sentence on their answers."""
    if a.explanation is None or b.explanation is None:
        return Pair(a.id, b.id, None, None, (), verdict(a, b))
    measured = agreement(a.explanation.map, b.explanation.map)
    flagged = tuple(m.id for m, flag in zip((a, b), measured["constant"], strict=True)
                    if flag)
    return Pair(a.id, b.id, measured["iou_top20"], measured["spearman"], flagged,
                verdict(a, b))


def examine(classifier: Classifier, study: Study, method: str, target: str | None = None,
            frame: int | None = None, plane: str | None = None,
            metadata: dict[str, Any] | None = None,
            progress: Progress | None = None, **options: Any) -> ModelResult:
    """One model on one study image: its input, prediction, map and costs.

    `target` is a label to explain; one the model does not have is noted, and the model
    explains its predicted class instead. For gradient methods the map is made on the
    Keras port where the model has one (`core.explain.explainable`). A method the model
    cannot be explained with leaves the map None and says why in `notes`. `options` are
    the method's own (e.g. patch=0.25 for occlusion)."""
    c = classifier.card
    index = study.default_index(plane) if frame is None else frame
    # Metadata goes only to a model that takes it; the others would refuse it.
    model_input = c.prepare(study, frame=index, plane=plane,
                            metadata=metadata if c.metadata is not None else None)
    report(progress, 0.05, f"{c.id}: predicting")
    prediction = classifier.predict(model_input)
    forward = classifier.forward_seconds(model_input.batch)
    checked = domain_check(classifier, model_input)
    notes: list[str] = []
    if target is not None and target not in c.labels:
        notes.append(f"{c.id} has no label '{target}': its map explains its predicted "
                     f"class ({prediction.label}).")
        target = None
    explanation, explained_on = None, None
    try:
        report(progress, 0.1, f"{c.id}: getting the model to explain with")
        explainer = explainable(classifier, method)
        explained_on = explainer.runtime
        explanation = explain_input(explainer, model_input, method, target,
                                    progress=part(progress, 0.1, 1.0, f"{c.id}: "), **options)
    except (ExplainError, ModelError) as error:
        notes.append(f"{c.id}: no {method} map ({error}).")
    report(progress, 1.0, f"{c.id}: done")
    return ModelResult(card=c, runtime=classifier.runtime, explained_on=explained_on,
                       model_input=model_input, prediction=prediction,
                       explanation=explanation, forward_seconds=forward,
                       parameters=classifier.parameters, file_bytes=classifier.file_bytes,
                       notes=tuple(notes), domain=checked,
                       warning=domain_warning(c, study, checked))


def combine(results: Sequence[ModelResult], method: str,
            target: str | None = None) -> Comparison:
    """The comparison of models already examined on the same study image: every pair's
    agreement and sentence, and which labels were compared."""
    check_count(len(results))
    ids = [r.id for r in results]
    if len(set(ids)) != len(ids):
        raise CompareError(f"a model is chosen twice ({', '.join(ids)})")
    labels = shared_labels([r.card for r in results])
    pairs = tuple(pair(a, b) for a, b in combinations(results, 2))
    notes = tuple(n for r in results for n in r.notes)
    if target is not None and all(target not in r.card.labels for r in results):
        raise CompareError(f"target '{target}' is not a label of any chosen model")
    return Comparison(method=method, target=target, models=tuple(results), pairs=pairs,
                      labels=labels, notes=notes)


def check_count(count: int) -> None:
    if not MIN_MODELS <= count <= MAX_MODELS:
        raise CompareError(f"compare {MIN_MODELS} to {MAX_MODELS} models (got {count})")


def compare(classifiers: Sequence[Classifier | str], study: Study, method: str,
            target: str | None = None, frame: int | None = None, plane: str | None = None,
            metadata: dict[str, Any] | None = None,
            progress: Progress | None = None, **options: Any) -> Comparison:
    """2 to 4 models (loaded classifiers, or built-in ids) on one image of `study`, side by
    side (see `examine` for each model and `combine` for the pairs). `frame` None is the
    study's default image in `plane`; `metadata` goes to the models that take it;
    `options` to the method."""
    check_count(len(classifiers))
    find_method(method).resolve(dict(options))  # bad method or options: before loading
    if target is not None:
        cards = [c.card if isinstance(c, Classifier) else card(c) for c in classifiers]
        if all(target not in c.labels for c in cards):
            raise CompareError(f"target '{target}' is not a label of any chosen model")
    results = []
    share = 1.0 / len(classifiers)
    for i, chosen in enumerate(classifiers):
        step = part(progress, i * share, (i + 1) * share)
        if isinstance(chosen, str):
            report(step, 0.0, f"{chosen}: loading")
            started = time.perf_counter()
            chosen = load(chosen)
            report(step, 0.0, f"{chosen.card.id}: loaded in "
                              f"{time.perf_counter() - started:.1f} s")
        results.append(examine(chosen, study, method, target, frame, plane, metadata,
                               progress=step, **options))
    return combine(results, method, target)
