"""The explanation API: `explain` and `attribute` on a model and its input, and
`explain_input` for one study image of a classifier, at the study's resolution."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.explain.backend.graph import resolve_layer
from core.explain.backend.scores import ScoreModel, as_score_model
from core.explain.errors import ExplainError
from core.explain.maps import normalise, resize_maps
from core.explain.method import Attribution
from core.explain.registry import find_method
from core.explain.targets import as_indices
from core.models import Classifier, card, load
from core.models.inputs import SCALES
from core.progress import Progress


def attribute(model, x, method_name: str = "gradcam", target=None, layer: str | None = None,
              progress: Progress | None = None, **options) -> Attribution:
    """`explain`, with what the method reports beside its maps (`Attribution.info`: the
    layer, the targets, and e.g. Integrated Gradients' completeness error)."""
    m = find_method(method_name)
    scores = as_score_model(model)
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
    start = time.perf_counter()
    result = attribute(classifier, x, method, index, layer, progress, **options)
    seconds = time.perf_counter() - start
    rows, cols = model_input.source_shape
    study_map = normalise(resize_maps(result.maps, rows, cols))[0]
    index = result.info["target"][0]
    return Explanation(method=method, label=c.labels[index], layer=result.info["layer"],
                       map=study_map, seconds=seconds, target=index,
                       input_map=result.maps[0], info=result.info)


def explainable(model, method: str, runtime: str | None = None):
    """The classifier to explain `model` (a built-in id, or a loaded Classifier such as an
    uploaded one) with `method`: on the runtime asked for, else on Keras where the method
    needs gradients and the model has a Keras port."""
    if isinstance(model, Classifier):
        if model.card.builtin:
            model = model.card.id
        elif runtime not in (None, model.runtime):
            raise ExplainError(f"{model.card.id} runs on {model.runtime} only")
        else:
            return model
    c = card(model)
    if runtime is None and find_method(method).gradients and "keras" in c.runtimes:
        runtime = "keras"
    return load(c.id, runtime)

