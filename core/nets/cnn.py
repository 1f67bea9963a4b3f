"""A small convolutional classifier in the LeNet/AlexNet line (LeCun et al. 1998,
http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf; the Keras "Simple MNIST convnet"
example, https://keras.io/examples/vision/mnist_convnet/): `blocks` Conv-ReLU-MaxPool
blocks whose filters double at each block, then Flatten, one hidden Dense layer, Dropout,
and the class scores.

Layer names are stable: `block{i}_conv` (the convolution with its ReLU: the last one,
`block{blocks}_conv`, is the layer to explain with Grad-CAM), `block{i}_pool`, `flatten`,
`dense`, `dropout`, `logits`, `probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.options import Option

ABOUT = (
    "A convolutional network slides small learned filters over the image, so the same "
    "edge or texture detector works wherever the pattern appears; pooling then halves "
    "the image, so deeper blocks see larger regions. It is the workhorse of medical image "
    "classification and the base of most other networks here. Watch the gap between "
    "training and validation accuracy: a network this size can memorise a few hundred "
    "images, and Grad-CAM on its last convolution shows where it looked."
)

OPTIONS: dict[str, Option] = {
    "blocks": Option(3, "Conv-ReLU-pool blocks (each halves the image)", int, 1, 5),
    "filters": Option(16, "filters of the first block (doubled each block)", int, 4, 128),
    "dense": Option(64, "units of the hidden dense layer", int, 8, 512),
    "dropout": Option(0.25, "dropout before the last layer", float, 0.0, 0.8),
}


def cam_layer(blocks: int = 3) -> str:
    """The Grad-CAM layer of a `cnn` with `blocks` blocks: its last conv activation."""
    return f"block{blocks}_conv"


def cnn(input_shape: tuple[int, int, int], classes: int, *, front: Sequence[Any] = (),
        blocks: int = 3, filters: int = 16, dense: int = 64, dropout: float = 0.25) -> Any:
    """A Conv-ReLU-Pool classifier: block i has `filters` x 2^(i-1) 3x3 filters and halves
    the image, so the input must be at least 2^blocks pixels a side. `front` layers
    (preprocessing, augmentation) act on the input first."""
    import keras
    from keras import layers

    height, width = input_shape[0], input_shape[1]
    if min(height, width) < 2**blocks:
        raise ValueError(f"input {height}x{width} is too small for {blocks} blocks "
                         f"(each halves it: at least {2**blocks} pixels a side)")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in front:
        x = layer(x)
    for i in range(1, blocks + 1):
        x = layers.Conv2D(filters * 2 ** (i - 1), 3, padding="same", activation="relu",
                          name=f"block{i}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name="cnn")
