"""Cascading model-parameter randomisation (the sanity check): does the map change when
the model does?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018, Sec. 3 and Fig. 2. https://arxiv.org/abs/1810.03292
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from core.explain.api import explain
from core.explain.backend.graph import resolve_layer
from core.explain.backend.scores import ScoreModel, as_score_model, known_targets
from core.explain.errors import ExplainError
from core.explain.maps import FLAT_RANGE, is_flat
from core.explain.method import one_input
from core.explain.metrics.agreement import spearman
from core.explain.registry import find_method
from core.models.outputs import PREDICTED
from core.progress import Progress, part, report

# -- cascading model-parameter randomisation -------------------------------------------------

# Which variable of a layer each initializer made, by the variable's own name.
_INITIALIZERS = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),  # Dense/Conv; DepthwiseConv
    "depthwise_kernel": ("depthwise_initializer",),  # SeparableConv
    "pointwise_kernel": ("pointwise_initializer",),
    "bias": ("bias_initializer",),
}

# The verdict (Adebayo et al. 2018 give curves, not a rule; this is MedLens's rule):
# read at the first step that has randomised the head and the last layer of the backbone
# with a spatial output (the one whose features the map is made of, for the CAMs), the
# map must have moved away from the trained model's: Spearman rho below PASS_BELOW.
# 0.5, because methods that pass in the paper (Fig. 2: gradients, Grad-CAM) fall to
# about 0-0.3 once the top layers are random, while Guided Backprop, which fails, stays
# above 0.9 (here: 0.97-0.99 through block9, measured below); 0.5 lies between, and a
# map with rho >= 0.5 still shares most of its pixel order with the trained model's.
# A flat or empty map at that step has no order to compare: the verdict is then
# "inconclusive", never a pass on a meaningless rho.
PASS_BELOW = 0.5
RULE = (f"pass when the Spearman rho between the trained model's map and the map after "
        f"randomising the head and the last spatial layer of the backbone is below "
        f"{PASS_BELOW}; fail when it is not; inconclusive when either map is flat (99% of "
        f"it within {FLAT_RANGE:.0%} of its peak) or empty")


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
    flat: list[bool] = field(default_factory=list)  # near-uniform, not empty (maps.is_flat)
    decisive: int = 0  # the step the verdict is read at (see RULE)

    @property
    def verdict(self) -> str:
        """"pass", "fail", or "inconclusive: ..." with the reason, by RULE."""
        if not bool(self.original.max() > 0):
            return "inconclusive: the trained model's map is empty"
        if is_flat(self.original):
            return "inconclusive: the trained model's map is flat"
        i = self.decisive
        if self.empty[i]:
            return "inconclusive: the randomised maps are empty"
        if self.flat[i]:
            return "inconclusive: the randomised maps are flat"
        return "pass" if self.spearman[i] < PASS_BELOW else "fail"

    @property
    def passed(self) -> bool | None:
        """True (pass), False (fail) or None (inconclusive)."""
        return {"pass": True, "fail": False}.get(self.verdict)

    @property
    def summary(self) -> str:
        """One line: the verdict, the rho it was read from, and how many maps were flat
        or empty (their rho means nothing)."""
        i, verdict = self.decisive, self.verdict
        head = verdict[0].upper() + verdict[1:]
        if self.passed is not None:
            line = (f"{head}: after randomising down to {self.layers[i]}, ρ = "
                    f"{self.spearman[i]:.2f} ({'below' if self.passed else 'not below'} "
                    f"{PASS_BELOW}).")
        else:
            line = f"{head} (at {self.layers[i]}): no ρ is read from it."
        empty, flat = sum(self.empty), sum(self.flat)
        if empty or flat:
            line += (f" Of {len(self.maps)} randomised maps, {flat} are flat and {empty} "
                     "empty: their ρ is not a measure of change.")
        return line

    def to_dict(self) -> dict[str, object]:
        return {"layers": list(self.layers), "spearman": list(self.spearman),
                "flat": list(self.flat), "empty": list(self.empty),
                "verdict": self.verdict, "rule": RULE,
                "decided_at": self.layers[self.decisive]}


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
    start = time.perf_counter()
    original_model = _keras_model(model)
    m = find_method(method)
    scores = as_score_model(original_model)
    inputs = one_input(scores, x)
    if target is None:
        target = int(known_targets(scores, inputs, np.array([PREDICTED]))[0])
    path = resolve_layer(original_model, layer) if m.uses_layer else None
    if max_steps is not None and max_steps < 1:
        raise ExplainError("sanity check: max_steps must be at least 1")

    # Copying and the first map (tracing the copy's functions) take seconds to minutes
    # with no report of their own: each gets its report before it starts, and each map
    # reports inside itself where its method does (RISE, SmoothGrad...).
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

    maps_to_make = len(groups) + 1

    def saliency(k: int, what: str) -> np.ndarray:
        text = f"Sanity check: map {k + 1} of {maps_to_make} ({what})"
        report(progress, k / maps_to_make, text)
        inner = part(progress, k / maps_to_make, (k + 1) / maps_to_make, text + ": ")
        return explain(copy_scores, inputs, method, [target], path, inner, **options)[0]

    original = saliency(0, "the trained model")
    rng = np.random.default_rng(seed)
    spatial = _first_spatial(top_down)
    names, correlations, maps, decisive = [], [], [], None
    for step, group in enumerate(groups):
        for index in group:
            _randomise(top_down[index][1], rng)
        maps.append(saliency(step + 1, f"randomised down to {top_down[group[-1]][0]}"))
        names.append(top_down[group[-1]][0])
        correlations.append(spearman(original, maps[-1]))
        if decisive is None and group[-1] >= spatial:
            decisive = step
        report(progress, (step + 2) / maps_to_make,
               f"Sanity check: randomised {group[-1] + 1} of {len(top_down)} layers "
               f"(down to {names[-1]})")
    empty = [not bool(m.max() > 0) for m in maps]
    return SanityCheck(method=method, target=int(target), layers=names,
                       spearman=correlations, maps=maps, original=original, empty=empty,
                       seconds=time.perf_counter() - start,
                       flat=[not e and is_flat(m) for e, m in zip(empty, maps, strict=True)],
                       decisive=len(groups) - 1 if decisive is None else decisive)


def _first_spatial(top_down: list[tuple[str, object]]) -> int:
    """The index (top first) of the first layer with a spatial (4-D) output: the last
    convolution of the backbone; the last index if there is none."""
    for i, (_, layer) in enumerate(top_down):
        try:
            if len(layer.output.shape) == 4:
                return i
        except (AttributeError, ValueError):  # a layer never called: no output
            continue
    return len(top_down) - 1


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


