"""What every gradient-based explanation shares.

- Layers are named by path: "xception/block14_sepconv2_act" is a layer inside the nested
  backbone "xception". tf-keras-vis cannot reach such a layer ("Output ... is not
  connected to inputs"); here the outer graph is re-run once, symbolically, with the
  backbone swapped for a copy that also returns the layer's activations, which gives an
  ordinary connected model with two outputs: [activations, model outputs].
- The gradient of the target class score with respect to those activations is computed
  in one `tf.function`, traced once per model and layer and reused for every call.
- Scores are the model's pre-softmax outputs (logits) where the model gives them.
"""

from __future__ import annotations

import threading
import weakref

import cv2
import numpy as np


class ExplainError(ValueError):
    """An explanation that cannot be made as asked. One line."""


def _submodels(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def _rank(layer) -> int:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return 0


def spatial_layers(model, prefix: str = "") -> list[str]:
    """Paths of every layer with a spatial (N, h, w, c) output, nested ones included."""
    found = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if _submodels(layer):
            found.extend(spatial_layers(layer, prefix=f"{path}/"))
        elif _rank(layer) == 4 and layer.__class__.__name__ != "InputLayer":
            found.append(path)
    return found


def last_spatial_layer(model) -> str:
    """The last layer with a spatial output, searching inside nested backbones."""
    layers = spatial_layers(model)
    if not layers:
        raise ExplainError("the model has no layer with a spatial (h, w, channels) output")
    return layers[-1]


def resolve_layer(model, layer: str | None) -> str:
    """A layer path from a path, a bare layer name, or None (the last spatial layer)."""
    if layer is None:
        return last_spatial_layer(model)
    layers = spatial_layers(model)
    if layer in layers:
        return layer
    matches = [p for p in layers if p.rsplit("/", 1)[-1] == layer]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ExplainError(f"no spatial layer named '{layer}' (try {layers[-1]})")
    raise ExplainError(f"layer name '{layer}' is ambiguous: {', '.join(matches)}")


def feature_model(model, path: str):
    """A Keras model with the same inputs: [activations at `path`, *model outputs]."""
    import keras

    head, _, rest = path.partition("/")
    layer = model.get_layer(head)
    if not rest:
        return keras.Model(model.inputs, [layer.output, *model.outputs])

    inner = feature_model(layer, rest)
    captured = []

    def swap(operation):
        if operation is not layer:
            return operation

        def call(*args, **kwargs):
            activations, *outputs = inner(*args, **kwargs)
            captured.append(activations)
            return outputs[0] if len(outputs) == 1 else outputs

        return call

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    # Keras's own graph runner: every node of the outer model is applied in order, the
    # backbone replaced by `inner`. Run once, symbolically, to build the new graph.
    outputs = model._run_through_graph(
        inputs if isinstance(model.input, list) else inputs[0], operation_fn=swap
    )
    if not captured:
        raise ExplainError(f"layer '{head}' is not on the path from the inputs to the outputs")
    return keras.Model(inputs, [captured[0], *keras.tree.flatten(outputs)])


_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_compiling = threading.Lock()


def gradient_function(model, layer: str):
    """fn(x, target) -> (activations, d score[target] / d activations, outputs), compiled."""
    import tensorflow as tf

    with _compiling:
        per_model = _compiled.setdefault(model, {})
        if layer in per_model:
            return per_model[layer]
        features = feature_model(model, layer)
        shape = [None, *model.inputs[0].shape[1:]]

        @tf.function(
            input_signature=[tf.TensorSpec(shape, tf.float32), tf.TensorSpec([None], tf.int32)]
        )
        def gradients(x, target):
            with tf.GradientTape() as tape:
                activations, outputs = features([x], training=False)[:2]
                score = tf.gather(outputs, target, batch_dims=1)
            return activations, tape.gradient(score, activations), outputs

        per_model[layer] = gradients
        return gradients


def forward_function(model):
    """fn(x) -> model outputs, compiled once per model."""
    import tensorflow as tf

    with _compiling:
        per_model = _compiled.setdefault(model, {})
        if None not in per_model:
            shape = [None, *model.inputs[0].shape[1:]]
            as_list = isinstance(model.input, list)

            @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
            def forward(x):
                return model([x] if as_list else x, training=False)

            per_model[None] = forward
        return per_model[None]


def predicted_class(model, x: np.ndarray) -> np.ndarray:
    """The index of the highest output for each image of a batch."""
    outputs = forward_function(model)(x.astype(np.float32)).numpy()
    return outputs.argmax(axis=1).astype(np.int32)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum: [0, 1], zero where there is no positive evidence."""
    maps = np.maximum(maps, 0).astype(np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    peak[peak == 0] = 1.0
    return maps / peak[:, None, None]


def resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a batch of 2-D maps."""
    if maps.shape[1:] == (height, width):
        return maps.astype(np.float32)
    return np.stack(
        [cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
         for m in maps]
    )


class CAM:
    """Class activation map: a layer's activations A^k combined with the gradients of the
    class score dy^c/dA^k, then ReLU. Most methods weight whole channels (`weights`);
    element-wise ones (Layer-CAM, HiRes-CAM) override `combine`."""

    name: str

    def weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, K) channel weights from activations and gradients (N, h, w, K)."""
        raise NotImplementedError

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, h, w) before the ReLU: sum_k w^k_c A^k."""
        return np.einsum("nhwk,nk->nhw", activations, self.weights(activations, gradients))

    def __call__(self, model, x: np.ndarray, target: np.ndarray, layer: str) -> np.ndarray:
        activations, gradients, _ = gradient_function(model, layer)(
            x.astype(np.float32), target.astype(np.int32)
        )
        # L^c = ReLU(combination of A and dy^c/dA)
        return np.maximum(self.combine(activations.numpy(), gradients.numpy()), 0)
