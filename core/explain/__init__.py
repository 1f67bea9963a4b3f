"""Explanations: which parts of the image drove the model's score for a class.

`explain(model, x, method, target, layer)` is the one entry point; each method lives in
its own module, and what they share lives in `core.explain.base`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from core.explain.base import (
    CAM,
    ExplainError,
    last_spatial_layer,
    normalise,
    predicted_class,
    resize_maps,
    resolve_layer,
    spatial_layers,
)
from core.explain.grad_cam import GradCAM
from core.explain.grad_cam_plusplus import GradCAMPlusPlus
from core.explain.hires_cam import HiResCAM
from core.explain.layer_cam import LayerCAM

METHODS: dict[str, CAM] = {
    m.name: m for m in (GradCAM(), GradCAMPlusPlus(), LayerCAM(), HiResCAM())
}
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "layercam": "Layer-CAM",
                 "hirescam": "HiRes-CAM"}

__all__ = [
    "METHODS", "METHOD_TITLES", "ExplainError", "Explanation", "explain", "explain_input",
    "last_spatial_layer", "spatial_layers",
]


def explain(model, x: np.ndarray, method: str = "gradcam", target=None,
            layer: str | None = None) -> np.ndarray:
    """Maps (N, h, w) float32 in [0, 1] at the model's input size.

    `x` is a batch already preprocessed for `model`; `target` is None (the predicted
    class) or one class index per image; `layer` a layer path or name, or None for the
    last spatial layer (found inside nested backbones too).
    """
    if method not in METHODS:
        raise ExplainError(f"unknown method '{method}' (known: {', '.join(METHODS)})")
    x = np.asarray(x, dtype=np.float32)
    if target is None:
        target = predicted_class(model, x)
    target = np.broadcast_to(np.asarray(target, dtype=np.int32), (len(x),))
    n_classes = int(model.outputs[0].shape[-1])
    if target.min() < 0 or target.max() >= n_classes:
        raise ExplainError(f"target class out of range (the model has {n_classes} outputs)")
    maps = METHODS[method](model, x, target, resolve_layer(model, layer))
    return normalise(resize_maps(maps, x.shape[1], x.shape[2]))


@dataclass(frozen=True)
class Explanation:
    """A map for one study image, at the study's resolution, and how it was made."""

    method: str
    label: str
    layer: str
    map: np.ndarray  # (rows, cols) float32 in [0, 1]
    seconds: float

    @property
    def empty(self) -> bool:
        """True where nothing at the layer speaks for the class (ReLU left all zero)."""
        return not bool(self.map.max() > 0)


def explain_input(classifier, model_input, method: str = "gradcam",
                  target: str | None = None, layer: str | None = None) -> Explanation:
    """Explain a classifier's score for `target` (a label; None: predicted) on one input."""
    c = classifier.card
    if classifier.keras_model is None:
        raise ExplainError(
            f"{c.id} runs on onnxruntime, which gives no gradients: "
            f"{method} needs a Keras model"
        )
    if target is not None and target not in c.labels:
        raise ExplainError(f"unknown label '{target}' for {c.id} (labels: {', '.join(c.labels)})")
    model = classifier.keras_model
    path = resolve_layer(model, layer)
    x = model_input.array[None]
    start = time.perf_counter()
    index = predicted_class(model, x) if target is None else np.array([c.labels.index(target)])
    maps = explain(model, x, method, target=index, layer=path)
    seconds = time.perf_counter() - start
    rows, cols = model_input.source_shape
    study_map = normalise(resize_maps(maps, rows, cols))[0]
    return Explanation(method=method, label=c.labels[int(index[0])], layer=path,
                       map=study_map, seconds=seconds)
