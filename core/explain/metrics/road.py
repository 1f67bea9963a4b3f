"""ROAD: RemOve And Debias, the headline faithfulness measure, with fair random baselines.

Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML 2022. https://arxiv.org/abs/2202.00449

Removed pixels are not set to black (which drives the image off the model's training
distribution, and a scattered random order faster than any real map): each is imputed
from its neighbours by the authors' noisy linear imputation (Sec. 4, eq. 4), so what the
model loses is the information, not the look of a natural image. The curves are p(target)
with the p% most relevant pixels removed (MoRF) and with the p% least relevant removed
(LeRF); the combined score is (mean LeRF - mean MoRF) / 2: higher is better, 0 is what a
map with no information about the model gets on average.

Where this follows pytorch-grad-cam (`pytorch_grad_cam/metrics/road.py`, which takes the
imputer from the authors' github.com/tleemann/road_evaluation):
- the imputer: each removed pixel is the weighted mean of its 8 neighbours (1/6 direct,
  1/12 diagonal; weights beyond the border dropped), all removed pixels solved as one
  sparse linear system (scipy.sparse), channel by channel, plus Gaussian noise;
- `ROADCombined`'s sign convention, (LeRF - MoRF) / 2, averaged over percentiles.
Where it differs, and why:
- the score is p(target) (softmax), not the raw logit pytorch-grad-cam's
  `ClassifierOutputTarget` reads: probabilities are bounded and comparable across models;
- a percentile p removes p% of the pixels, by rank, in MoRF and LeRF alike (the x axis of
  the paper's figures). pytorch-grad-cam removes the pixels at or above the p-th
  percentile in MoRF, i.e. (100 - p)%: the same over its symmetric default percentiles,
  not over [10, 20, 50, 70, 90]. Ranks also make the fraction exact when a map has ties;
  ties keep raster order in both directions, so a constant map removes the same pixels in
  MoRF and LeRF and scores exactly 0;
- the noise is 0.01 x the image's standard deviation (pytorch-grad-cam: 0.01 absolute, on
  ImageNet-standardised tensors, i.e. about 0.01 standard deviations), since model-input
  units differ here (x/127.5 - 1, x/255, raw 0-255). One noise field per percentile is
  shared by every map (common random numbers: differences between maps are not noise);
- the baseline is not one number: random maps at the method's own resolution (noise on
  the CAM layer's grid, upsampled as the CAM is; smooth noise for pixel methods), over
  several seeds, and the map's inversion as a control. The verdict "better" or "worse"
  is given only when a bootstrap over the seeds puts the map's score outside the 95%
  interval of the random mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import splu

from core.explain.errors import ExplainError
from core.explain.method import target_probability
from core.progress import Progress, report

PERCENTILES = (10, 20, 50, 70, 90)  # pytorch-grad-cam's ROADCombined example
NOISE = 0.01  # the imputation noise, in standard deviations of the image
SEEDS = 8  # random maps for the baseline
BOOTSTRAP = 2000  # resamples of the seeds
LEVEL = 0.95
# Smooth noise for pixel methods: Gaussian-filtered, sigma 2% of the shorter side (3 px
# on a 150x150 input): blobs the size of the detail a gradient map shows once it is read.
SMOOTH_SIGMA = 0.02

# The authors' neighbour weights (imputations.py: neighbors_weights): (row, col, weight).
NEIGHBOURS = ((0, 1, 1 / 6), (0, -1, 1 / 6), (1, 0, 1 / 6), (-1, 0, 1 / 6),
              (1, 1, 1 / 12), (1, -1, 1 / 12), (-1, 1, 1 / 12), (-1, -1, 1 / 12))

VERDICTS = {
    "better": "▲ better than random",
    "worse": "▼ worse than random",
    "indistinguishable": "≈ not distinguishable from random",
}

CAM_MODULE = "core.explain.methods.cam"


# -- the imputer ------------------------------------------------------------------------------


def impute(image: np.ndarray, removed: np.ndarray, noise: np.ndarray | float = 0.0,
           ) -> np.ndarray:
    """Noisy linear imputation (Rong et al. 2022, eq. 4): every removed pixel becomes the
    weighted mean of its 8 neighbours, removed neighbours included, which makes one sparse
    linear system over all removed pixels, A v = b, solved once for every channel.

    `image` (h, w, c), `removed` (h, w) bool; `noise` is added to the imputed pixels (a
    field of image's shape, or a scalar). Kept pixels are returned unchanged."""
    height, width = removed.shape
    flat = removed.ravel()
    unknown = np.flatnonzero(flat)
    if unknown.size == 0:
        return image.copy()
    if unknown.size == flat.size:
        raise ExplainError("ROAD: cannot impute an image with every pixel removed")
    variable = np.full(flat.size, -1)
    variable[unknown] = np.arange(unknown.size)
    rows, cols = np.divmod(unknown, width)
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    weight_sum = np.zeros(unknown.size)
    b = np.zeros((unknown.size, image.shape[-1]))
    a_rows, a_cols, a_values = [], [], []
    for dr, dc, w in NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        weight_sum[inside] += w  # weights beyond the border are dropped
        where = np.flatnonzero(inside)
        neighbour = r[inside] * width + c[inside]
        also_removed = flat[neighbour]
        # Removed neighbours are unknowns (left-hand side); kept ones are known (right).
        a_rows.append(where[also_removed])
        a_cols.append(variable[neighbour[also_removed]])
        a_values.append(np.full(int(also_removed.sum()), w))
        # Each unknown appears once per direction: plain fancy indexing accumulates.
        b[where[~also_removed]] -= w * pixels[neighbour[~also_removed]]
    # Each equation: sum_j w_j v_j - (sum_j w_j) v_i = -(sum over kept neighbours w_j x_j).
    index = np.arange(unknown.size)
    a = sparse.csc_matrix(
        (np.concatenate([*a_values, -weight_sum]),
         (np.concatenate([*a_rows, index]), np.concatenate([*a_cols, index]))),
        shape=(unknown.size, unknown.size))
    solved = splu(a).solve(b)
    out = pixels.copy()
    out[unknown] = solved
    out = out.reshape(image.shape)
    if np.ndim(noise) == 0:
        out[removed] += float(noise)
    else:
        out[removed] += np.asarray(noise)[removed]
    return out.astype(np.float32)


# -- curves of one map --------------------------------------------------------------------------


@dataclass(frozen=True)
class Road:
    """ROAD of one map: p(target) with p% of the pixels imputed, most relevant first
    (MoRF, lower is better) and least relevant first (LeRF, higher is better)."""

    percentiles: list[int]
    morf: list[float]
    lerf: list[float]

    @property
    def combined(self) -> float:
        """ROADCombined: (mean LeRF - mean MoRF) / 2; higher is better."""
        return float((np.mean(self.lerf) - np.mean(self.morf)) / 2)

    def to_dict(self) -> dict[str, Any]:
        return {"percentiles": list(self.percentiles), "morf": list(self.morf),
                "lerf": list(self.lerf), "combined": self.combined}


def removal_masks(saliency: np.ndarray, percentiles) -> tuple[list[np.ndarray],
                                                                list[np.ndarray]]:
    """For each percentile p, the pixels MoRF removes (the p% highest) and those LeRF
    removes (the p% lowest), by rank; ties keep raster order both ways."""
    flat = saliency.ravel()
    most_first = np.argsort(-flat, kind="stable")
    least_first = np.argsort(flat, kind="stable")
    morf, lerf = [], []
    for p in percentiles:
        k = round(p / 100 * flat.size)
        for order, out in ((most_first, morf), (least_first, lerf)):
            mask = np.zeros(flat.size, bool)
            mask[order[:k]] = True
            out.append(mask.reshape(saliency.shape))
    return morf, lerf


def noise_fields(image: np.ndarray, percentiles, seed: int,
                 noise: float = NOISE) -> list[np.ndarray]:
    """One Gaussian field per percentile, shared by every map scored on this image."""
    rng = np.random.default_rng(seed)
    scale = noise * float(image.std())
    return [(scale * rng.standard_normal(image.shape)).astype(np.float32) for _ in percentiles]


def road_of(scores, inputs: list[np.ndarray], image: np.ndarray, saliency: np.ndarray,
            target: int, percentiles, fields: list[np.ndarray], batch: int = 32) -> Road:
    """MoRF and LeRF of one (h, w) map on one image: 2 x len(percentiles) imputations and
    one batch of forward passes."""
    morf_masks, lerf_masks = removal_masks(saliency, percentiles)
    images = [impute(image, m, f) for m, f in zip(morf_masks, fields, strict=True)]
    images += [impute(image, m, f) for m, f in zip(lerf_masks, fields, strict=True)]
    p = target_probability(scores, inputs, target, batch, images=np.stack(images))
    n = len(percentiles)
    return Road(list(percentiles), [float(v) for v in p[:n]], [float(v) for v in p[n:]])


# -- fair random maps ---------------------------------------------------------------------------


def resolution(method: str, layer_grid: tuple[int, int] | None = None,
               options: dict[str, Any] | None = None,
               shape: tuple[int, int] | None = None) -> dict[str, Any]:
    """The resolution random maps are drawn at for `method`: {"grid": [gh, gw]} (noise on
    a grid, upsampled bilinearly as the map is) or {"sigma": s} (pixel noise, Gaussian
    filtered with sigma s pixels). CAM methods: the layer's grid; occlusion: its patch
    positions; RISE: its mask cells; the others (pixel methods): smooth noise."""
    from core.explain.registry import find_method

    options = options or {}
    m = find_method(method)
    if type(m).__module__.startswith(CAM_MODULE) and layer_grid is not None:
        return {"grid": [int(layer_grid[0]), int(layer_grid[1])]}
    if m.name == "rise":
        cells = int(options.get("cells", m.options["cells"].default))
        return {"grid": [cells, cells]}
    if m.name == "occlusion" and shape is not None:
        patch = float(options.get("patch", m.options["patch"].default))
        stride = float(options.get("stride", m.options["stride"].default))
        size = max(1, round(patch * min(shape)))
        step = max(1, round(stride * size))
        return {"grid": [max(1, math.ceil(shape[0] / step)), max(1, math.ceil(shape[1] / step))]}
    side = min(shape) if shape is not None else 150
    return {"sigma": round(SMOOTH_SIGMA * side, 2)}


def layer_grid(model, path: str | None) -> tuple[int, int] | None:
    """The spatial size (h, w) of the layer at `path` ("xception/block14_sepconv2_act"),
    or None where there is no Keras layer to read."""
    if model is None or not path:
        return None
    try:
        layer = model
        for part in path.split("/"):
            layer = layer.get_layer(part)
        shape = layer.output.shape
        return int(shape[1]), int(shape[2])
    except (AttributeError, ValueError, TypeError, IndexError):
        return None


def random_map(rng: np.random.Generator, height: int, width: int,
               at: dict[str, Any] | None) -> np.ndarray:
    """One random map at the resolution `at` (see `resolution`; None: per-pixel)."""
    if at and "grid" in at:
        gh, gw = at["grid"]
        grid = rng.random((gh, gw), dtype=np.float32)
        return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
    noise = rng.random((height, width), dtype=np.float32)
    if at and at.get("sigma"):
        return cv2.GaussianBlur(noise, (0, 0), float(at["sigma"]))
    return noise


# -- the baseline and the verdict ---------------------------------------------------------------


def bootstrap_mean(values, resamples: int = BOOTSTRAP, level: float = LEVEL,
                   seed: int = 0) -> tuple[float, float, float]:
    """The mean of `values` and the percentile-bootstrap interval of that mean."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(min(low, mean)), float(max(high, mean))


def verdict(score: float, random_scores, constant: bool = False,
            resamples: int = BOOTSTRAP, level: float = LEVEL) -> str:
    """"better" or "worse" when the bootstrap interval of (score - random mean) over the
    seeds excludes 0, else "indistinguishable". A constant map orders nothing: it is
    indistinguishable by definition."""
    if constant:
        return "indistinguishable"
    _, low, high = bootstrap_mean(random_scores, resamples, level)
    # score - mean* lies in [score - high, score - low]: it excludes 0 when the score is
    # outside [low, high].
    if score > high:
        return "better"
    if score < low:
        return "worse"
    return "indistinguishable"


@dataclass(frozen=True)
class RoadReport:
    """ROAD of a map, of its inversion (1 - map), and of random maps over seeds."""

    map: Road
    inverted: Road
    random: list[Road]
    resolution: dict[str, Any]
    random_mean: float
    random_low: float
    random_high: float
    verdict: str
    seconds: float = field(default=0.0, compare=False)  # how long it took, not what it is
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def beats_inversion(self) -> bool:
        return self.map.combined > self.inverted.combined

    @property
    def words(self) -> str:
        return VERDICTS[self.verdict]

    def random_band(self, part: str) -> tuple[list[float], list[float]]:
        """The 2.5th and 97.5th percentiles over the seeds of the random maps' `part`
        ("morf" or "lerf") curve, point by point (min and max below 3 seeds)."""
        curves = np.array([getattr(r, part) for r in self.random])
        tail = (1 - LEVEL) / 2 * 100
        low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
        return [float(v) for v in low], [float(v) for v in high]

    @property
    def summary(self) -> str:
        return (f"ROAD {self.map.combined:+.3f} {self.words} (random "
                f"{self.random_mean:+.3f}, 95% {self.random_low:+.3f} to "
                f"{self.random_high:+.3f}; inverted map {self.inverted.combined:+.3f}; "
                "higher is better)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "road": {"morf": self.map.morf, "lerf": self.map.lerf,
                     "combined": self.map.combined, "percentiles": self.map.percentiles},
            "random": {"mean": self.random_mean, "low": self.random_low,
                       "high": self.random_high, "seeds": len(self.random),
                       "resolution": self.resolution},
            "inverted": {"road": {"morf": self.inverted.morf, "lerf": self.inverted.lerf,
                                  "combined": self.inverted.combined}, **self.extra},
            "verdict": self.verdict,
        }


def road_report(scores, inputs: list[np.ndarray], image: np.ndarray, saliency: np.ndarray,
                target: int, percentiles=PERCENTILES, seeds: int = SEEDS, seed: int = 0,
                at: dict[str, Any] | None = None, batch: int = 32,
                progress: Progress | None = None,
                random_maps: list[np.ndarray] | None = None) -> RoadReport:
    """ROAD of `saliency` (h, w), its inversion and `seeds` random maps at resolution `at`
    (or the `random_maps` given), with the verdict. `scores` is a ScoreModel or
    ForwardModel, `inputs` its batch of one."""
    import time

    percentiles = [int(p) for p in percentiles]
    if not percentiles or any(not 0 < p < 100 for p in percentiles):
        raise ExplainError("ROAD: percentiles must lie strictly between 0 and 100")
    if seeds < 1:
        raise ExplainError("ROAD: seeds must be at least 1")
    started = time.perf_counter()
    height, width = saliency.shape
    fields = noise_fields(image, percentiles, seed)
    if random_maps is None:
        rng = np.random.default_rng(seed)
        random_maps = [random_map(rng, height, width, at) for _ in range(seeds)]
    maps = [saliency, 1 - saliency, *random_maps]
    roads = []
    for i, one in enumerate(maps):
        roads.append(road_of(scores, inputs, image, one, target, percentiles, fields, batch))
        report(progress, (i + 1) / len(maps),
               "ROAD: the map" if i == 0 else "ROAD: its inversion" if i == 1 else
               f"ROAD: random map {i - 1} of {len(random_maps)}")
    mine, inverted, randoms = roads[0], roads[1], roads[2:]
    combined = [r.combined for r in randoms]
    mean, low, high = bootstrap_mean(combined)
    constant = bool(np.ptp(saliency) == 0)
    return RoadReport(map=mine, inverted=inverted, random=randoms, resolution=dict(at or {}),
                      random_mean=mean, random_low=low, random_high=high,
                      verdict=verdict(mine.combined, combined, constant),
                      seconds=time.perf_counter() - started)
