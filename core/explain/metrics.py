"""Evidence whether to trust a map: does it follow the model, and does it find the lesion?

- Deletion and insertion (faithfulness): Petsiuk, Das and Saenko, "RISE: Randomized Input
  Sampling for Explanation of Black-box Models", BMVC 2018, Sec. 4.1.
  https://arxiv.org/abs/1806.07421
- Cascading model-parameter randomisation (sanity check): Adebayo, Gilmer, Muelly,
  Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3 and
  Fig. 2. https://arxiv.org/abs/1810.03292
- Pointing game and IoU (localisation): Zhang, Bargal, Lin, Brandt, Shen and Sclaroff,
  "Top-down Neural Attention by Excitation Backprop", ECCV 2016 / IJCV 2018, Sec. 5.1.
  https://arxiv.org/abs/1608.00507

Every result is a dataclass of plain floats and lists (the sanity check adds its maps as
arrays), with `to_dict()` for the CLI's JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.explain.base import (
    ExplainError,
    ForwardModel,
    Progress,
    ScoreModel,
    as_score_model,
    predicted,
    report,
    resolve_layer,
    with_image,
)

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

    @property
    def summary(self) -> str:
        """One line: both AUCs against random, each marked ✓ where the map beats it."""
        deletion = "✓" if self.deletion_auc < self.random_deletion_auc else "✗"
        insertion = "✓" if self.insertion_auc > self.random_insertion_auc else "✗"
        return (f"Deletion AUC {self.deletion_auc:.3f} {deletion} (random "
                f"{self.random_deletion_auc:.3f}, lower is better) · Insertion AUC "
                f"{self.insertion_auc:.3f} {insertion} (random {self.random_insertion_auc:.3f}, "
                "higher is better)")

    def to_dict(self) -> dict[str, float]:
        return {
            "deletion_auc": self.deletion_auc,
            "insertion_auc": self.insertion_auc,
            "random_deletion_auc": self.random_deletion_auc,
            "random_insertion_auc": self.random_insertion_auc,
        }


# Fewer points and random maps for the app, where every map gets its AUCs: 16 steps and
# 2 random maps are 2 x 2 x 15 + 3 = 63 forward passes, against 195 for the defaults.
INTERACTIVE = {"steps": 16, "random_maps": 2}


def faithfulness(model, x, saliency: np.ndarray, target: int | None = None, steps: int = 32,
                 baseline: float = 0.0, seed: int = 0, random_maps: int = 3,
                 progress: Progress | None = None, batch: int = 32,
                 random_cells: int | None = None) -> Faithfulness:
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
    (which a CNN notices far sooner: see the measurements in the tests)."""
    if steps < 2:
        raise ExplainError("faithfulness: steps must be at least 2")
    if random_cells is not None and random_cells < 1:
        raise ExplainError("faithfulness: random_cells must be at least 1")
    if random_maps < 1:
        raise ExplainError("faithfulness: random_maps must be at least 1")
    scores = as_score_model(model)
    inputs = _one_input(scores, x)
    image = inputs[scores.image_input][0]
    height, width, _ = image.shape
    saliency = _one_map(saliency, (height, width), "saliency")
    if target is None:
        target = int(predicted(scores, inputs)[0])
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
        return scores.probabilities(with_image(scores, inputs, images), batch)[:, target]

    # The ends of every curve are the same three images whatever the map: the image
    # itself (deletion at 0, insertion at 1), all baseline (deletion at 1) and the blurred
    # canvas (insertion at 0). They are run once; each map adds only its inner points.
    full_p, deleted_p, blurred_p = probabilities(np.stack([image, deleted, blurred]))
    rng = np.random.default_rng(seed)
    maps = [saliency] + [_noise(rng, height, width, random_cells) for _ in range(random_maps)]
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
        report(progress, (i + 1) / len(maps),
               "Deletion and insertion: the map" if i == 0 else
               f"Deletion and insertion: random map {i} of {random_maps}")

    deletion, insertion = curves[0]
    random_deletion = np.mean([c[0] for c in curves[1:]], axis=0)
    random_insertion = np.mean([c[1] for c in curves[1:]], axis=0)
    return Faithfulness(
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


def _one_input(scores: ScoreModel | ForwardModel, x) -> list[np.ndarray]:
    """The model's inputs, a batch of one, from one image or a list of one input each (a
    leading batch axis of 1 is accepted too)."""
    arrays = list(x) if isinstance(x, list | tuple) else [x]
    if isinstance(scores, ScoreModel):
        shapes = [tuple(shape) for shape, _ in scores.specs]
    else:
        shapes = [tuple(scores.image_shape)]
    if len(arrays) != len(shapes):
        raise ExplainError(f"the model takes {len(shapes)} inputs, {len(arrays)} given")
    batch = []
    for array, shape in zip(arrays, shapes, strict=True):
        array = np.asarray(array, dtype=np.float32)
        batch.append(array[None] if array.ndim == len(shape) else array)
    inputs = scores.inputs(batch)
    if len(inputs[0]) != 1:
        raise ExplainError(f"one input at a time, {len(inputs[0])} given")
    return inputs


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


# -- cascading model-parameter randomisation -------------------------------------------------

# Which variable of a layer each initializer made, by the variable's own name.
_INITIALIZERS = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),  # Dense/Conv; DepthwiseConv
    "depthwise_kernel": ("depthwise_initializer",),  # SeparableConv
    "pointwise_kernel": ("pointwise_initializer",),
    "bias": ("bias_initializer",),
}


@dataclass(frozen=True, eq=False)
class SanityCheck:
    """Maps of one input as a copy of the model is randomised, layer by layer, from the
    output down (Adebayo et al. 2018, Sec. 3, cascading randomisation).

    `layers[i]` is the deepest layer randomised by step i: after it, every layer above it
    is random too. `spearman[i]` is the rank correlation between `original` and
    `maps[i]`; `empty[i]` says the map had no positive value at all (its rho is 0). A map
    that explains the model falls towards 0; one that stays high shows the image more
    than the model (the paper's finding for Guided Backprop)."""

    method: str
    target: int
    layers: list[str]
    spearman: list[float]
    maps: list[np.ndarray] = field(repr=False)  # (h, w) float32 in [0, 1], one per step
    original: np.ndarray = field(repr=False)
    empty: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        """One line: where the correlation ended, and how many maps were empty."""
        empty = sum(self.empty)
        line = (f"After randomising down to {self.layers[-1]}: ρ = {self.spearman[-1]:.2f} "
                f"(lowest {min(self.spearman):.2f}).")
        if empty:
            line += (f" {empty} of {len(self.maps)} randomised maps are empty: nothing "
                     "spoke for the class any more, and their ρ is shown as 0.")
        return line

    def to_dict(self) -> dict[str, list]:
        return {"layers": list(self.layers), "spearman": list(self.spearman)}


# Measured on braintumor-xception, Te-gl_0010.jpg (glioma, p = 0.89), seed 0, the full
# cascade of 42 layers: dense_1, dense, then the backbone from block14_sepconv2 down to
# block1_conv1 (the 1x1 shortcut convolutions conv2d_3..conv2d in between).
# - Grad-CAM (block14_sepconv2_act, 5 x 5): rho = 0 at every step. The randomised head
#   scores glioma below zero, so ReLU leaves every map empty. Other seeds: 1 gives -0.31
#   after the head, then empty maps; 3 and 4 give empty maps throughout; 2 and 5 give
#   non-empty maps whose rho climbs back to 0.79 and 0.85 once the backbone is random.
#   With the backbone randomised, Xception's identity shortcuts and the trained
#   BatchNormalization still carry the image's layout to a coarse 5 x 5 map. 12 s for
#   the 42 maps (6-9 s with TensorFlow already warm), copy and tracing included.
# - Guided Backprop: rho = 1.000 after the head (it ignores the class), 0.97-0.99 through
#   block9, 0.92-0.97 through block6, 0.76 at block5, 0.50 at block4_sepconv2, then
#   0.18-0.33 through the entry flow: it keeps the image's edges until the first
#   convolutions are random (Adebayo et al.'s finding). 15 s.
# If BatchNormalization is reset as well (gamma 1, beta 0, mean 0, variance 1), the fully
# random end points over seeds 0-5 are -0.27 to 0.62 for Grad-CAM (none empty) and 0.17
# to 0.22 for Guided Backprop.

def sanity_check(model, x, method: str, target: int | None = None, layer: str | None = None,
                 progress: Progress | None = None, seed: int = 0, max_steps: int | None = None,
                 **options) -> SanityCheck:
    """Cascading randomisation (Adebayo et al. 2018, Sec. 3): the map of `method` for one
    input (`x` as for `faithfulness`) after each layer with weights is re-initialised,
    from the output down, cumulatively, on a copy of `model` (a Keras model, or a
    Classifier that has one; the model itself is never changed).

    `target` (None: the original model's predicted class) and `layer` (a layer path or
    name, None: the last spatial one) are fixed once, on the original model, so every map
    explains the same class at the same layer. `max_steps` limits the maps computed (for
    the app): the layers are split into that many contiguous groups, top first, and one
    map is made after each group; the last step still randomises down to the first layer.
    `options` are the method's own."""
    from core.explain import explain, find_method

    start = time.perf_counter()
    original_model = _keras_model(model)
    m = find_method(method)
    scores = as_score_model(original_model)
    inputs = _one_input(scores, x)
    if target is None:
        target = int(predicted(scores, inputs)[0])
    path = resolve_layer(original_model, layer) if m.uses_layer else None
    if max_steps is not None and max_steps < 1:
        raise ExplainError("sanity check: max_steps must be at least 1")

    report(progress, 0.0, "Sanity check: copying the model")
    copy = _copy(original_model)
    randomisable = _weighted_layers(copy)
    if not randomisable:
        raise ExplainError("sanity check: the model has no layer with weights to randomise")
    top_down = randomisable[::-1]
    steps = len(top_down) if max_steps is None else min(max_steps, len(top_down))
    groups = [list(g) for g in np.array_split(np.arange(len(top_down)), steps)]
    # A ScoreModel of its own, not `as_score_model(copy)`: that cache would keep the copy
    # alive for the whole process. Its functions are traced once, on the first map, and
    # read the variables' current values on every call, so re-assigning the weights in
    # place needs no retrace.
    copy_scores = ScoreModel(copy)

    def saliency() -> np.ndarray:
        return explain(copy_scores, inputs, method, [target], path, **options)[0]

    original = saliency()
    rng = np.random.default_rng(seed)
    names, correlations, maps = [], [], []
    for step, group in enumerate(groups):
        for index in group:
            _randomise(top_down[index][1], rng)
        maps.append(saliency())
        names.append(top_down[group[-1]][0])
        correlations.append(spearman(original, maps[-1]))
        report(progress, (step + 1) / len(groups),
               f"Sanity check: randomised {group[-1] + 1} of {len(top_down)} layers "
               f"(down to {names[-1]})")
    return SanityCheck(method=method, target=int(target), layers=names,
                       spearman=correlations, maps=maps, original=original,
                       empty=[not bool(m.max() > 0) for m in maps],
                       seconds=time.perf_counter() - start)


def _keras_model(model):
    import keras

    if hasattr(model, "card") and hasattr(model, "keras_model"):  # a core.models.Classifier
        if model.keras_model is None:
            raise ExplainError(f"{model.card.id} runs on onnxruntime: the sanity check "
                               "randomises weights, it needs a Keras model")
        model = model.keras_model
    if not isinstance(model, keras.Model):
        raise ExplainError("the sanity check randomises weights: it needs a Keras model, "
                           f"not {type(model).__name__}")
    return model


def _copy(model):
    """A copy with its own variables and the same weights; nested models (a backbone
    used as a layer) are copied too, and the layer names kept."""
    import keras

    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception as exc:
        raise ExplainError(f"cannot copy model '{model.name}' ({exc})") from None
    if {id(v) for v in copy.weights} & {id(v) for v in model.weights}:
        raise ExplainError(f"the copy of model '{model.name}' shares weights with it")
    return copy


def _weighted_layers(model, prefix: str = "") -> list[tuple[str, object]]:
    """(path, layer) of every layer with a kernel (Dense, Conv, SeparableConv,
    DepthwiseConv), inputs first, nested models included, with the "outer/inner" paths
    of `spatial_layers`. BatchNormalization is left as trained: it has no kernel, and
    what is tested is whether the map follows the learned filters. It is not neutral:
    its trained shift and statistics survive in every randomised block (the measurements
    above sanity_check)."""
    found = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            found.extend(_weighted_layers(layer, prefix=f"{path}/"))
        elif any(hasattr(layer, k) for k in ("kernel", "depthwise_kernel")) and layer.weights:
            found.append((path, layer))
    return found


def _randomise(layer, rng: np.random.Generator) -> None:
    """Re-initialise a layer's kernels and bias in place: each from the initializer the
    layer was built with, seeded from `rng`, or (where there is none) a normal with the
    trained weights' standard deviation."""
    for variable in layer.weights:
        name = variable.path.rsplit("/", 1)[-1]
        seed = int(rng.integers(2**31 - 1))
        initializer = next((getattr(layer, a) for a in _INITIALIZERS.get(name, ())
                            if getattr(layer, a, None) is not None), None)
        shape = tuple(variable.shape)
        if initializer is not None:
            config = initializer.get_config()
            if "seed" in config:
                initializer = type(initializer).from_config({**config, "seed": seed})
            values = np.asarray(initializer(shape, dtype=variable.dtype))
        else:
            trained = np.asarray(variable.numpy())
            values = np.random.default_rng(seed).normal(0.0, trained.std(), shape)
        variable.assign(values.astype(variable.dtype))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks, ties given their mean rank.
    A constant map (e.g. all zero after the ReLU) has no order, so it correlates with
    nothing: 0, not NaN, which reads right on the curve (the map no longer agrees)."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties averaged (scipy.stats.rankdata's 'average')."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2  # mean of the ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


# -- localisation --------------------------------------------------------------------------

# Zhang et al. (Sec. 5.1) count a hit within 15 pixels of an annotated object, to allow
# for imprecise annotations.
POINTING_TOLERANCE = 15.0


@dataclass(frozen=True)
class Localisation:
    """Does the map find the region? `pointing_hit`: its maximum lies in the region (with
    `tolerance` pixels of slack); `iou`: intersection over union of the map thresholded
    at `threshold` of its maximum and the region."""

    pointing_hit: bool
    iou: float
    threshold: float
    tolerance: float = POINTING_TOLERANCE

    def to_dict(self) -> dict[str, float | bool]:
        return {"pointing_hit": self.pointing_hit, "iou": self.iou,
                "threshold": self.threshold, "tolerance": self.tolerance}


def localisation(saliency: np.ndarray, mask: np.ndarray | None = None,
                 box: tuple[int, int, int, int] | None = None, threshold: float = 0.5,
                 tolerance: float = POINTING_TOLERANCE) -> Localisation:
    """The pointing game and IoU of a map (h, w) against a region: a boolean `mask`
    (h, w) or a `box` (top, left, bottom, right) in the map's pixels, bottom and right
    excluded (as in slicing). Distances are in the map's pixels: scale `tolerance` with
    the map (15 px is the paper's, on images of a few hundred pixels)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim == 3 and len(saliency) == 1:
        saliency = saliency[0]
    if saliency.ndim != 2:
        raise ExplainError(f"saliency of shape {saliency.shape}, expected (h, w)")
    region = _region(saliency.shape, mask, box)
    if not 0 < threshold <= 1:
        raise ExplainError("threshold must be in (0, 1]")
    if tolerance < 0:
        raise ExplainError("tolerance must be at least 0")
    saliency = np.nan_to_num(saliency)
    peak = saliency.max()

    # Pointing game: the maximum point (the first in raster order where several pixels
    # share it, as np.argmax gives), a hit if it lies within `tolerance` of the region.
    # An empty map (no positive value) points at nothing: a miss.
    outside = (~region).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    hit = bool(peak > 0 and distance.flat[np.argmax(saliency)] <= tolerance)

    # IoU of {map >= threshold * max} and the region; an empty map (max 0) selects nothing.
    selected = saliency >= threshold * peak if peak > 0 else np.zeros_like(region)
    union = np.logical_or(selected, region).sum()
    iou = float(np.logical_and(selected, region).sum() / union)
    return Localisation(pointing_hit=hit, iou=iou, threshold=float(threshold),
                        tolerance=float(tolerance))


def _region(shape: tuple[int, int], mask, box) -> np.ndarray:
    if (mask is None) == (box is None):
        raise ExplainError("give a mask or a box (one of them)")
    if mask is not None:
        region = np.asarray(mask).astype(bool)
        if region.shape != tuple(shape):
            raise ExplainError(f"mask of shape {region.shape}, the map is {tuple(shape)}")
    else:
        top, left, bottom, right = (int(v) for v in box)
        if not (0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]):
            raise ExplainError(f"box {tuple(box)} is not inside the map "
                               f"({shape[0]} x {shape[1]}) as (top, left, bottom, right)")
        region = np.zeros(shape, bool)
        region[top:bottom, left:right] = True
    if not region.any():
        raise ExplainError("the mask is empty")
    return region
