"""Faithfulness: does the map follow the model? ROAD (the headline, `road.py`) and
Petsiuk's deletion and insertion, against random maps at the method's own resolution.

Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018, Sec. 4.1. https://arxiv.org/abs/1806.07421

Deletion sets pixels to black, which takes the image off the model's distribution (a
scattered order faster than a real map): its AUCs stay available, the verdict is ROAD's.

Results are dataclasses of plain floats and lists, with `to_dict()` for the CLI's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from core.explain.backend.scores import as_score_model, known_targets
from core.explain.errors import ExplainError
from core.explain.method import one_input, target_probability
from core.explain.metrics.road import PERCENTILES, SEEDS, RoadReport, random_map, road_report
from core.models.outputs import PREDICTED
from core.progress import Progress, part, report

# -- deletion and insertion ----------------------------------------------------------------

# The insertion canvas: Petsiuk et al.'s evaluation code blurs with an 11x11 Gaussian
# kernel of sigma 5 (github.com/eclique/RISE, evaluation.py: klen = 11, ksig = 5).
BLUR_KERNEL = 11
BLUR_SIGMA = 5.0


@dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves of one map, and of random maps for comparison.

    `fractions` is the x axis of every curve (the fraction of pixels deleted or inserted,
    0 to 1); the curves are p(target) at each fraction. A faithful map has a lower
    deletion AUC and a higher insertion AUC than the random maps."""

    target: int
    fractions: list[float]
    deletion: list[float]
    insertion: list[float]
    random_deletion: list[float]  # the mean curve over the random maps
    random_insertion: list[float]
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    road: RoadReport | None = None  # the headline: ROAD, random maps, inversion, verdict
    inverted_deletion_auc: float | None = None
    inverted_insertion_auc: float | None = None

    @property
    def verdict(self) -> str | None:
        return None if self.road is None else self.road.verdict

    @property
    def summary(self) -> str:
        """One line: ROAD and its verdict first, then the deletion and insertion AUCs
        against random (no verdict of their own: see the module docstring)."""
        petsiuk = (f"Deletion AUC {self.deletion_auc:.3f} (random "
                   f"{self.random_deletion_auc:.3f}, lower is better) · Insertion AUC "
                   f"{self.insertion_auc:.3f} (random {self.random_insertion_auc:.3f}, "
                   "higher is better)")
        return petsiuk if self.road is None else f"{self.road.summary} · {petsiuk}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deletion_auc": self.deletion_auc,
            "insertion_auc": self.insertion_auc,
            "random_deletion_auc": self.random_deletion_auc,
            "random_insertion_auc": self.random_insertion_auc,
        }
        if self.road is not None:
            out.update(self.road.to_dict())
            out["inverted"].update({"deletion_auc": self.inverted_deletion_auc,
                                    "insertion_auc": self.inverted_insertion_auc})
        return out


# Fewer points and random maps for the app, where every map gets its measures: 16 steps
# and 2 random maps for deletion/insertion (2 x 2 x 15 x (2 + 1 inverted) + 3 = 183
# forward passes), ROAD over 4 seeds (10 x 6 = 60 imputations and forward passes).
INTERACTIVE = {"steps": 16, "random_maps": 2, "seeds": 4}


def faithfulness(model, x, saliency: np.ndarray, target: int | None = None, steps: int = 32,
                 baseline: float = 0.0, seed: int = 0, random_maps: int = 3,
                 progress: Progress | None = None, batch: int = 32,
                 random_cells: int | None = None, road: bool = True,
                 seeds: int = SEEDS, percentiles=PERCENTILES,
                 resolution: dict[str, Any] | None = None) -> Faithfulness:
    """Deletion and insertion (Petsiuk et al. 2018, Sec. 4.1) of `saliency` on one input.

    `model` is a Keras model, a Classifier, an onnxruntime session or a `ForwardModel`;
    `x` one preprocessed image (h, w, c), or a list of one input each for a model with
    several (the image one is perturbed, the others held). `saliency` is (h, w) at the
    model's input size. `target` is a class index (None: the predicted class).
    Deletion sets pixels to `baseline` (model-input units; callers pass black), most
    salient first; insertion puts them back, in the same order, onto a blurred copy of
    the image. Each curve has `steps` + 1 points; `random_maps` uniform-noise maps (seeded
    by `seed`) give the random baseline: independent per pixel by default, or drawn on a
    `random_cells` x `random_cells` grid and upsampled bilinearly, so that the random
    order removes blobs the size of a coarse map's cells rather than scattered pixels
    (which a CNN notices far sooner: see the measurements in the tests), or at
    `resolution` (`road.resolution`: the method's own grid, or smooth noise), which wins.

    With `road` (the default) the result also carries ROAD (`road.road_report`) over
    `seeds` random maps at `resolution` and `percentiles`, the verdict, and the deletion
    and insertion AUCs of the inverted map (1 - map)."""
    if steps < 2:
        raise ExplainError("faithfulness: steps must be at least 2")
    if random_cells is not None and random_cells < 1:
        raise ExplainError("faithfulness: random_cells must be at least 1")
    if random_maps < 1:
        raise ExplainError("faithfulness: random_maps must be at least 1")
    scores = as_score_model(model)
    inputs = one_input(scores, x)
    image = inputs[scores.image_input][0]
    height, width, _ = image.shape
    saliency = _one_map(saliency, (height, width), "saliency")
    if target is None:
        target = int(known_targets(scores, inputs, np.array([PREDICTED]))[0])
    if not 0 <= int(target) < scores.n_classes:
        raise ExplainError(
            f"target class out of range (the model has {scores.n_classes} classes)")
    target = int(target)

    pixels = height * width
    # Chunk k removes the first round(k * pixels / steps) pixels of the order: equal chunks.
    counts = np.round(np.arange(steps + 1) * pixels / steps).astype(int)
    fractions = counts / pixels
    deleted = np.full_like(image, baseline)
    blurred = _blur(image)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return target_probability(scores, inputs, target, batch, images=images)

    # The ends of every curve are the same three images whatever the map: the image
    # itself (deletion at 0, insertion at 1), all baseline (deletion at 1) and the blurred
    # canvas (insertion at 0). They are run once; each map adds only its inner points.
    full_p, deleted_p, blurred_p = probabilities(np.stack([image, deleted, blurred]))
    rng = np.random.default_rng(seed)
    if resolution is not None:
        # The first of ROAD's random maps (the same seed draws the same maps).
        noise = [random_map(rng, height, width, resolution) for _ in range(random_maps)]
    else:
        noise = [_noise(rng, height, width, random_cells) for _ in range(random_maps)]
    maps = [saliency, *noise] + ([1 - saliency] if road else [])
    curves = []
    for i, one in enumerate(maps):
        # Most salient first; ties keep raster order (stable sort) so results repeat.
        order = np.argsort(-one.ravel(), kind="stable")
        inner = {"deletion": [], "insertion": []}
        for first in range(1, steps, batch):
            ks = range(first, min(first + batch, steps))
            taken = np.zeros((len(ks), pixels), bool)
            for row, k in enumerate(ks):
                taken[row, order[:counts[k]]] = True
            taken = taken.reshape(len(ks), height, width, 1)
            # Deletion: the taken pixels set to the baseline; insertion: put back.
            inner["deletion"].append(probabilities(np.where(taken, deleted, image)))
            inner["insertion"].append(probabilities(np.where(taken, image, blurred)))
        deletion = np.concatenate([[full_p], *inner["deletion"], [deleted_p]])
        insertion = np.concatenate([[blurred_p], *inner["insertion"], [full_p]])
        curves.append((deletion, insertion))
        # Deletion and insertion are the cheaper half when ROAD follows.
        report(progress, (i + 1) / len(maps) * (0.4 if road else 1.0),
               "Deletion and insertion: the map" if i == 0 else
               f"Deletion and insertion: random map {i} of {random_maps}"
               if i <= random_maps else "Deletion and insertion: the inverted map")

    deletion, insertion = curves[0]
    random_deletion = np.mean([c[0] for c in curves[1:random_maps + 1]], axis=0)
    random_insertion = np.mean([c[1] for c in curves[1:random_maps + 1]], axis=0)
    result = Faithfulness(
        target=target,
        fractions=_floats(fractions),
        deletion=_floats(deletion),
        insertion=_floats(insertion),
        random_deletion=_floats(random_deletion),
        random_insertion=_floats(random_insertion),
        deletion_auc=_auc(fractions, deletion),
        insertion_auc=_auc(fractions, insertion),
        # The trapezoid is linear: the AUC of the mean curve is the mean of the AUCs.
        random_deletion_auc=_auc(fractions, random_deletion),
        random_insertion_auc=_auc(fractions, random_insertion),
    )
    if not road:
        return result
    rng = np.random.default_rng(seed)
    randoms = [random_map(rng, height, width, resolution) if resolution is not None
               else _noise(rng, height, width, random_cells) for _ in range(seeds)]
    headline = road_report(scores, inputs, image, saliency, target, percentiles, seeds, seed,
                           resolution, batch, part(progress, 0.4, 1.0), randoms)
    inverted = curves[-1]
    return replace(result, road=headline,
                   inverted_deletion_auc=_auc(fractions, inverted[0]),
                   inverted_insertion_auc=_auc(fractions, inverted[1]))


def _noise(rng: np.random.Generator, height: int, width: int,
           cells: int | None) -> np.ndarray:
    if cells is None:
        return rng.random((height, width), dtype=np.float32)
    grid = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


def _auc(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Area under p(target) over the fraction of pixels, by the trapezoid rule. The x
    axis spans [0, 1] and p lies in [0, 1], so the area does too (Petsiuk et al.'s code
    normalises by the number of steps the same way)."""
    return float(np.trapezoid(curve, fractions))


def _blur(image: np.ndarray) -> np.ndarray:
    # Channel by channel: cv2 filters at most 4 channels at once.
    return np.stack([cv2.GaussianBlur(image[..., c], (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
                     for c in range(image.shape[-1])], axis=-1).astype(np.float32)


def _one_map(saliency: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    """A (h, w) float map; a leading axis of 1 (an `explain` result) is dropped."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim == 3 and len(saliency) == 1:
        saliency = saliency[0]
    if saliency.shape != tuple(shape):
        raise ExplainError(f"{what} of shape {saliency.shape}, expected {tuple(shape)}")
    return np.nan_to_num(saliency)


def _floats(values) -> list[float]:
    return [float(v) for v in values]


