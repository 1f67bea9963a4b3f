"""Which explanation method to believe for a model: ROAD per method over a labelled set.

Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
ICML 2022, https://arxiv.org/abs/2202.00449 (`core.explain.metrics.road`).

For every image of the set and every method: the map of the predicted class, its ROAD
combined score, its verdict against random maps at the method's own resolution (over
seeds), whether it beats its own inversion (a lower deletion AUC than 1 - map: ROAD
cannot tell, its inverted map's score being minus the map's), and the seconds the
method and the measures took. Per method: the mean ROAD combined with a
percentile-bootstrap 95% interval over the images, the verdict counts, how often the map
beats its inversion, the seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.evaluate.sets import EvaluationError, LabelledSet, Skipped
from core.explain import black
from core.explain.api import explain_input, explainable
from core.explain.errors import ExplainError
from core.explain.metrics.faithfulness import faithfulness
from core.explain.metrics.road import (
    PERCENTILES,
    SEEDS,
    bootstrap_mean,
    layer_grid,
    resolution,
)
from core.models import Classifier
from core.progress import Progress, report
from core.studies import StudyError, one_line

# Deletion steps for the inversion control (Petsiuk's deletion, the map against 1 - map).
INVERSION_STEPS = 16
# The Evaluate page's defaults: a labelled set times several methods is long work.
INTERACTIVE = {"seeds": 4, "percentiles": (10, 50, 90)}


@dataclass(frozen=True)
class MethodTrust:
    """One method over the set: per image, its ROAD combined score, verdict, whether it
    beat its inversion, and the seconds of the map and of the measure."""

    method: str
    images: tuple[str, ...]
    combined: tuple[float, ...]
    verdicts: tuple[str, ...]
    beats_inversion: tuple[bool, ...]
    method_seconds: tuple[float, ...]
    road_seconds: tuple[float, ...]
    errors: tuple[Skipped, ...] = ()

    @property
    def n(self) -> int:
        return len(self.combined)

    @property
    def interval(self) -> tuple[float, float, float]:
        """Mean ROAD combined and its bootstrap 95% interval over the images."""
        if not self.combined:
            return float("nan"), float("nan"), float("nan")
        return bootstrap_mean(self.combined)

    def count(self, verdict: str) -> int:
        return sum(v == verdict for v in self.verdicts)

    def row(self) -> dict[str, Any]:
        mean, low, high = self.interval
        method_s = float(np.mean(self.method_seconds)) if self.n else None
        road_s = float(np.mean(self.road_seconds)) if self.n else None
        return {
            "method": self.method, "n": self.n, "road_combined": mean,
            "road_low": low, "road_high": high,
            "better": self.count("better"), "indistinguishable": self.count("indistinguishable"),
            "worse": self.count("worse"), "beats_inversion": int(sum(self.beats_inversion)),
            "method_seconds": method_s, "road_seconds": road_s,
            "road_multiple": (road_s / method_s) if method_s else None,
        }


@dataclass
class Trust:
    """Every method asked for, on one model and set (`table()`: one row per method)."""

    model: str
    set_name: str
    methods: dict[str, MethodTrust]
    seeds: int
    percentiles: tuple[int, ...]
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        return [m.row() for m in self.methods.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "set": self.set_name, "seeds": self.seeds,
                "percentiles": list(self.percentiles), "seconds": round(self.seconds, 3),
                "methods": self.table(),
                "skipped": [s.to_dict() for s in self.skipped],
                "errors": {m: [e.to_dict() for e in t.errors]
                           for m, t in self.methods.items() if t.errors}}


def trust(classifier: Classifier, labelled: LabelledSet, methods: Sequence[str],
          progress: Progress | None = None, seeds: int = SEEDS,
          percentiles: Sequence[int] = PERCENTILES, limit: int | None = None,
          options: dict[str, dict[str, Any]] | None = None) -> Trust:
    """ROAD of each method's map of the predicted class on every image of `labelled`
    (the first `limit` only, if given). A method that fails on an image is listed with
    the reason; the others go on."""
    if not methods:
        raise EvaluationError("trust: name at least one method")
    card = classifier.card
    started = time.perf_counter()
    explainers = {}
    for method in methods:
        try:
            explainers[method] = explainable(classifier, method)
        except ExplainError as exc:
            raise EvaluationError(f"{method}: {one_line(exc)}") from None
    images = list(labelled.images)[:limit] if limit else list(labelled.images)
    rows: dict[str, dict[str, list]] = {m: {k: [] for k in (
        "images", "combined", "verdicts", "beats", "method_s", "road_s", "errors")}
        for m in methods}
    skipped = list(labelled.skipped)
    steps = len(images) * len(methods)
    for i, image in enumerate(images):
        try:
            study = labelled.open(image)
            model_input = card.prepare(study, frame=study.default_index())
        except (StudyError, ValueError) as exc:
            skipped.append(Skipped(image.name, one_line(exc)))
            continue
        for j, method in enumerate(methods):
            report(progress, (i * len(methods) + j) / steps,
                   f"{method} on {image.name} ({i + 1} of {len(images)})")
            explainer = explainers[method]
            out = rows[method]
            try:
                explanation = explain_input(explainer, model_input, method,
                                            **(options or {}).get(method, {}))
                saliency = explanation.input_map
                at = resolution(method, layer_grid(explainer.keras_model, explanation.layer),
                                explanation.info.get("options"), saliency.shape)
                # ROAD, and deletion of the map against its inversion: with ROAD's shared
                # noise the inverted map's score is minus the map's (its MoRF is the map's
                # LeRF), so the independent control is Petsiuk's deletion.
                measured = faithfulness(explainer, model_input.inputs, saliency,
                                        explanation.target,
                                        steps=INVERSION_STEPS, baseline=black(card.input_spec),
                                        random_maps=1, seeds=seeds, percentiles=percentiles,
                                        resolution=at)
                road = measured.road
            except ExplainError as exc:
                out["errors"].append(Skipped(image.name, one_line(exc)))
                continue
            out["images"].append(image.name)
            out["combined"].append(road.map.combined)
            out["verdicts"].append(road.verdict)
            out["beats"].append(measured.deletion_auc < measured.inverted_deletion_auc)
            out["method_s"].append(explanation.seconds)
            out["road_s"].append(road.seconds)
    report(progress, 1.0, f"{card.id}: {len(images)} images, {len(methods)} methods")
    results = {m: MethodTrust(m, tuple(r["images"]), tuple(r["combined"]), tuple(r["verdicts"]),
                              tuple(r["beats"]), tuple(r["method_s"]), tuple(r["road_s"]),
                              tuple(r["errors"]))
               for m, r in rows.items()}
    if not any(t.n for t in results.values()):
        first = next((e for t in results.values() for e in t.errors), None)
        why = f" ({first.name}: {first.reason})" if first else ""
        raise EvaluationError(f"{labelled.name}: no image could be explained{why}")
    return Trust(card.id, labelled.name, results, seeds, tuple(int(p) for p in percentiles),
                 time.perf_counter() - started, skipped)
