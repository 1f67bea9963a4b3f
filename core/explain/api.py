"""The explanation API: `explain` and `attribute` on a model and its input, and
`explain_input` for one study image of a classifier, at the study's resolution."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.explain import costs
from core.explain.backend.graph import resolve_layer, segmentation_layers
from core.explain.backend.regions import region_model
from core.explain.backend.scores import ScoreModel, as_score_model
from core.explain.errors import ExplainError
from core.explain.maps import FLAT_RANGE, dynamic_range, normalise, resize_maps
from core.explain.method import Attribution
from core.explain.methods.cam.base import equal_by_construction
from core.explain.registry import find_method
from core.explain.targets import RegionTarget, as_indices, as_regions
from core.models import Classifier, card, load
from core.models.inputs import SCALES
from core.progress import Progress


def attribute(model, x, method_name: str = "gradcam", target=None, layer: str | None = None,
              progress: Progress | None = None, **options) -> Attribution:
    """`explain`, with what the method reports beside its maps (`Attribution.info`: the
    layer, the targets, and e.g. Integrated Gradients' completeness error)."""
    m = find_method(method_name)
    scores = as_score_model(model)
    if getattr(scores, "segmentation", False) or _regions_asked(target):
        return _attribute_region(m, scores, x, target, layer, progress, options)
    why = m.refusal(scores)
    if why is not None:  # an attention method on a model without attention
        raise ExplainError(why)
    if m.gradients and not scores.gradients:
        raise ExplainError(f"{m.name} needs gradients, which this model does not give "
                           "(onnxruntime): use occlusion or rise, or a Keras model")
    if m.uses_layer and not isinstance(scores, ScoreModel):
        raise ExplainError(f"{m.name} reads a layer: it needs a Keras model")
    inputs = scores.inputs(x)
    chosen = m.resolve(options)
    # None: the predicted class, found by the method in its own pass where it can.
    target = as_indices(target, len(inputs[0]), scores.n_classes)
    path = resolve_layer(scores.model, layer) if m.uses_layer else None
    result = m.attribute(scores, inputs, target, path, progress, **chosen)
    _, height, width, _ = inputs[scores.image_input].shape
    maps = normalise(resize_maps(result.maps, height, width))
    info = {"method": m.name, "layer": path, "target": result.target.tolist(),
            "options": chosen, **result.info}
    return Attribution(maps, result.target, info)


def _regions_asked(target) -> bool:
    items = target if isinstance(target, list | tuple) else [target]
    return any(isinstance(t, RegionTarget) for t in items)


def _attribute_region(m, scores, x, target, layer, progress, options) -> Attribution:
    """`attribute` on a segmentation model: Seg-Grad-CAM's region target for every method
    that can take one (core.explain.backend.regions)."""
    if not getattr(scores, "segmentation", False):
        raise ExplainError("a region target needs a segmentation model (output N, h, w, "
                           "labels); this model outputs one score per class")
    if m.region_refusal is not None:
        raise ExplainError(f"{m.name} cannot explain a region of a segmentation: "
                           f"{m.region_refusal}")
    if m.gradients and not scores.gradients:
        raise ExplainError(f"{m.name} needs gradients, which this model does not give "
                           "(onnxruntime): use occlusion or rise, or a Keras model")
    regions = region_model(scores)
    inputs = scores.inputs(x)
    chosen = m.resolve(options)
    height, width, _ = scores.image_shape
    labels, masks = as_regions(target, len(inputs[0]), scores.n_classes, (height, width))
    # The automatic layer for a U-Net is the bottleneck (Vinogradova et al. 2020).
    path = None
    if m.uses_layer:
        path = (segmentation_layers(scores.model)[0] if layer is None
                else resolve_layer(scores.model, layer))
    result = m.attribute(regions, [*inputs, masks], labels, path, progress, **chosen)
    maps = normalise(resize_maps(result.maps, height, width))
    info = {"method": m.name, "layer": path, "target": result.target.tolist(),
            "region_pixels": [int(r.sum()) for r in masks], "options": chosen,
            **result.info}
    return Attribution(maps, result.target, info)


def explain(model, x, method: str = "gradcam", target=None, layer: str | None = None,
            progress: Progress | None = None, **options) -> np.ndarray:
    """Maps (N, h, w) float32 in [0, 1] at the model's input size.

    `model` is a Keras model (functional, Sequential or with a nested backbone; several
    inputs allowed, the image one is explained) or, for occlusion and RISE, an
    onnxruntime session or a `ForwardModel`. `x` is a batch already preprocessed for it
    (N, h, w, c), or a list of arrays for a model with several inputs. `target` is None
    (the predicted class) or one class index per image; `layer` a layer path or name, or
    None for the last spatial layer (found inside nested backbones too). `options` are
    the method's own (see `METHODS[name].options` for names, defaults and meaning).

    A segmentation model (output (N, h, w, labels) softmax or (N, h, w, 1) sigmoid) is
    explained for a `RegionTarget(label, region)` (Seg-Grad-CAM: the label's logits
    summed over the region; a bare label means the whole image), or one per image; the
    layer defaults to the bottleneck (`segmentation_layers(model)` lists the choices).
    Methods that cannot take a region raise ExplainError with their `region_refusal`.
    """
    return attribute(model, x, method, target, layer, progress, **options).maps


@dataclass(frozen=True)
class Explanation:
    """A map for one study image, at the study's resolution, and how it was made."""

    method: str
    label: str
    layer: str | None
    map: np.ndarray  # (rows, cols) float32 in [0, 1], at the study's resolution
    seconds: float
    target: int = 0  # the class index explained
    input_map: np.ndarray | None = None  # (h, w) at the model input, for the metrics
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True where nothing speaks for the class (e.g. ReLU left the whole map zero)."""
        return not bool(self.map.max() > 0)

    @property
    def dynamic_range(self) -> float:
        """The fraction of [0, peak] the map spans (core.explain.maps.dynamic_range)."""
        return dynamic_range(self.map)

    @property
    def flat(self) -> bool:
        """True where the map is too uniform to show anything: not empty, but 99% of it
        within FLAT_RANGE (a quarter) of its peak, so the overlay is one colour."""
        return not self.empty and self.dynamic_range < FLAT_RANGE

    @property
    def equal_by_construction(self) -> str | None:
        """A sentence where this map equals another method's by construction at this
        layer (HiRes-CAM = Grad-CAM, Layer-CAM = Grad-CAM++ after global average
        pooling), else None."""
        return equal_by_construction(self.method, self.info)

    @property
    def caption(self) -> str | None:
        """What the page says under the map about its shape, or None."""
        notes = []
        if self.flat:
            notes.append(f"Flat map: 99% of it lies within {FLAT_RANGE:.0%} of its peak "
                         f"(dynamic range {self.dynamic_range:.2f}), so the overlay shows "
                         "one colour and no region stands out.")
        if self.equal_by_construction:
            notes.append(self.equal_by_construction)
        return " ".join(notes) or None


def black(spec) -> float:
    """Black (0 in the 8-bit picture) in the model's input units: the natural baseline
    for perturbation methods and Integrated Gradients."""
    return float(SCALES[spec.scale][1](np.float32(0.0)))


def explain_input(classifier, model_input, method: str = "gradcam",
                  target: str | None = None, layer: str | None = None,
                  progress: Progress | None = None, **options) -> Explanation:
    """Explain a classifier's score for `target` (a label; None: predicted) on one input.

    Baselines default to black in the model's input units."""
    c = classifier.card
    m = find_method(method)
    if m.gradients and classifier.keras_model is None:
        raise ExplainError(
            f"{c.id} runs on onnxruntime, which gives no gradients: {method} needs a Keras "
            "model (use occlusion or rise)"
        )
    if target is not None and target not in c.labels:
        raise ExplainError(f"unknown label '{target}' for {c.id} (labels: {', '.join(c.labels)})")
    if "baseline" in m.options:
        options.setdefault("baseline", black(c.input_spec))
    x = model_input.batch
    index = None if target is None else [c.labels.index(target)]
    tracing_before = _tracing(classifier)
    start = time.perf_counter()
    result = attribute(classifier, x, method, index, layer, progress, **options)
    seconds = time.perf_counter() - start
    fingerprint = getattr(classifier, "fingerprint", None)
    if fingerprint is not None:  # what the next estimate for this method will say
        costs.record(fingerprint, method, seconds, result.info.get("options"),
                     tracing=_tracing(classifier) - tracing_before)
    rows, cols = model_input.source_shape
    study_map = normalise(resize_maps(result.maps, rows, cols))[0]
    index = result.info["target"][0]
    return Explanation(method=method, label=c.labels[index], layer=result.info["layer"],
                       map=study_map, seconds=seconds, target=index,
                       input_map=result.maps[0], info=result.info)


def _tracing(classifier) -> float:
    """How many tf.functions have been traced for the classifier's Keras model (kept on
    the model by core.models.runtime.keras.compiled): a run that adds one was cold."""
    from core.models.runtime.keras import tracing_seconds

    return tracing_seconds(getattr(classifier, "keras_model", None))


def explainable(model, method: str, runtime: str | None = None):
    """The classifier to explain `model` (a built-in id, or a loaded Classifier such as an
    uploaded one) with `method`: on the runtime asked for, else on Keras where the method
    needs gradients and the model has a Keras port. ExplainError, one line, where the
    method refuses the model (`Method.refusal`: an attention method on a model without
    attention), so the pages can leave such methods out and the CLI refuses them."""
    m = find_method(method)
    if isinstance(model, Classifier):
        if model.card.builtin:
            model = model.card.id
        elif runtime not in (None, model.runtime):
            raise ExplainError(f"{model.card.id} runs on {model.runtime} only")
        else:
            return _accepted(m, model)
    c = card(model)
    if runtime is None and m.gradients and "keras" in c.runtimes:
        runtime = "keras"
    return _accepted(m, load(c.id, runtime))


def _accepted(m, classifier):
    why = m.refusal(classifier, classifier.card.id)
    if why is not None:
        raise ExplainError(why)
    return classifier


def estimate_seconds(classifier, model_input, method: str,
                     options: dict[str, Any] | None = None) -> float | None:
    """How long `method` should take on `classifier` (a loaded Classifier) for this input,
    on the model it would run on (`explainable`): its last time there in this process,
    else the shipped multiple times a forward pass (core.explain.costs). None where the
    method has no cost or cannot run on the model."""
    try:
        runner = explainable(classifier, method)
    except ExplainError:
        return None
    forward = runner.forward_seconds(model_input.batch)
    return costs.expected_seconds(method, forward, options, runner.fingerprint)
