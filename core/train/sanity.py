"""The data-randomisation test: does the map change when the model learnt nothing?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018, Sec. 4 (data randomisation), https://arxiv.org/abs/1810.03292. The same
architecture is trained with the same config and seed on the same images with their
labels shuffled (a model that can only memorise), and each method's maps of the two
models are set side by side with their Spearman rank correlation. A method whose maps
stay alike fails: it shows the image (edges, intensity), not what the model learnt.

The verdict reads the median rho over the held-out images with the rule of the cascading
check (`core.explain.metrics.sanity.PASS_BELOW`): pass below it, fail at or above it,
inconclusive when most maps are flat or empty (no order to compare).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.explain.api import attribute
from core.explain.maps import is_flat
from core.explain.metrics.agreement import spearman
from core.explain.metrics.sanity import PASS_BELOW
from core.progress import Progress, part, report
from core.train.data import TrainingData
from core.train.fit import Trained, TrainingError, train

IMAGES = 8  # held-out images compared (each is two maps)
RULE = (f"pass when the median Spearman rho between the maps of the model trained on true "
        f"labels and of the same architecture trained on shuffled labels is below "
        f"{PASS_BELOW}; fail when it is not; inconclusive when most maps are flat or empty")


@dataclass(frozen=True, eq=False)
class DataRandomisation:
    """Maps of the same held-out images by the trained model and by its shuffled-label
    twin, their rank correlation per image, and the verdict."""

    method: str
    images: np.ndarray = field(repr=False)  # (n, h, w, c) model inputs
    labels: np.ndarray  # (n,) the true labels (each map explains its image's true label)
    trained_maps: np.ndarray = field(repr=False)  # (n, h, w) in [0, 1]
    twin_maps: np.ndarray = field(repr=False)
    spearman: np.ndarray  # (n,) NaN where a map is flat or empty
    trained_test: dict[str, Any]
    twin_test: dict[str, Any]
    twin_id: str

    @property
    def median(self) -> float:
        valid = self.spearman[np.isfinite(self.spearman)]
        return float(np.median(valid)) if len(valid) else float("nan")

    @property
    def verdict(self) -> str:
        valid = np.isfinite(self.spearman)
        if valid.sum() < max(1, len(self.spearman) / 2):
            return "inconclusive"
        return "pass" if self.median < PASS_BELOW else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "verdict": self.verdict,
                "median_spearman": None if not np.isfinite(self.median) else
                round(self.median, 4),
                "spearman": [None if not np.isfinite(v) else round(float(v), 4)
                             for v in self.spearman],
                "trained_test": self.trained_test, "twin_test": self.twin_test,
                "twin": self.twin_id, "rule": RULE}


def from_card(classifier: Any) -> Trained | None:
    """A model trained in MedLens on a built-in task, loaded again from its files (the
    Zoo's upload with its card, `--model-file`): what its data-randomisation test needs,
    remade from its card (the config, the task at its size, the same seeded split). None
    for any other model, or one trained on the user's own set (not kept)."""
    from core.train.config import TrainingConfig
    from core.train.data import task
    from core.train.fit import split_of

    card = classifier.card
    raw = card.source.get("config")
    if card.origin != "trained in MedLens" or not isinstance(raw, dict):
        return None
    try:
        config = TrainingConfig.from_dict(raw)
        if config.builtin_task is None or classifier.keras_model is None:
            return None
        data = task(config.builtin_task).make(config.size)
    except (KeyError, TypeError, ValueError):
        return None
    if data.kind != "images" or data.x.shape[1:] != tuple(card.input_shape):
        return None
    parts = split_of(data, config.seed)
    return Trained(config, data.describe(), parts, classifier.keras_model, card,
                   classifier.path, {}, dict(card.evaluation.get("held_out", {})), 0.0, 0,
                   None, False, classifier, [], data.x[parts.test],
                   np.asarray(data.y)[parts.test])


def spread(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` indices taken in turn from each label (in order within a label), so
    the maps compared cover every class the held-out images have."""
    queues = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    out: list[int] = []
    while len(out) < count and any(queues):
        for queue in queues:
            if queue and len(out) < count:
                out.append(int(queue.pop(0)))
    return np.array(out, dtype=int)


def shuffled_twin(trained: Trained, data: TrainingData | None = None,
                  progress: Progress | None = None) -> Trained:
    """The same config and seed trained on shuffled labels (`data`: the user's set the
    model was trained on; None for a built-in task)."""
    if trained.config.arch == "dcgan" or trained.data.get("kind") in ("unlabelled", "masks",
                                                                       "volumes"):
        raise TrainingError(f"{trained.config.arch}: the data-randomisation test is for "
                            "image classifiers")
    return train(trained.config.shuffled(), data, progress=progress)


def data_randomisation(trained: Trained, method: str, twin: Trained | None = None,
                       data: TrainingData | None = None, images: int = IMAGES,
                       layer: str | None = None, progress: Progress | None = None,
                       **options: Any) -> DataRandomisation:
    """Train the shuffled-label twin (unless given) and compare `method`'s maps of both
    models on up to `images` held-out images, each for its true label."""
    if trained.test_images is None or not len(trained.test_images):
        raise TrainingError(f"{trained.card.id}: no held-out images to compare maps on")
    if twin is None:
        twin = shuffled_twin(trained, data, part(progress, 0.0, 0.85))
    chosen = spread(np.asarray(trained.test_labels, dtype=int), images)
    x = trained.test_images[chosen]
    y = np.asarray(trained.test_labels, dtype=int)[chosen]
    maps = []
    for i, model in enumerate((trained.model, twin.model)):
        report(progress, 0.85 + 0.07 * i, f"{method} maps of the "
               f"{'trained model' if i == 0 else 'shuffled-label twin'}")
        maps.append(attribute(model, x, method, target=y, layer=layer, **options).maps)
    rho = np.array([np.nan if is_flat(a) or is_flat(b) or not a.any() or not b.any()
                    else spearman(a, b) for a, b in zip(*maps, strict=True)])
    report(progress, 1.0, "done")
    return DataRandomisation(method, x, y, maps[0], maps[1], rho, trained.test,
                             twin.test, twin.card.id)
