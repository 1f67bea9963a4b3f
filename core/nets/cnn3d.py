"""A 3-D convolutional network: convolutions that slide through height, width AND slices,
so a pattern spread over neighbouring slices is one feature.

After the 3-D CNNs for CT and MRI volumes, e.g. Zunair et al. 2020, "Uniformizing
Techniques to Process CT scans with 3D CNNs for Tuberculosis Prediction"
(https://arxiv.org/abs/2007.13224), whose network is the Keras example "3D image
classification from CT scans" (https://keras.io/examples/vision/3D_image_classification/):
Conv3D-ReLU-MaxPool3D blocks, global average pooling, dropout, a dense head.

Layer names are stable: `block{i}_conv` (the conv and its ReLU: the last one is the
Grad-CAM layer), `block{i}_pool`, `pool`, `dropout`, `logits`, `probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.options import Option

ABOUT = (
    "A 3-D CNN slides its filters through the slices as well as across each slice, so it "
    "sees a volume the way it was scanned rather than one picture at a time. The field "
    "uses it for CT and MRI where shape in depth matters (nodules, haemorrhages, "
    "atrophy). It has many more weights per filter than a 2-D network and needs more "
    "memory, so it is kept small here. Watch for overfitting: volumes are few, and each "
    "one counts once."
)

OPTIONS: dict[str, Option] = {
    "blocks": Option(3, "Conv3D-ReLU-pool blocks", int, 1, 5),
    "filters": Option(8, "filters of the first block (doubled each block)", int, 2, 64),
    "dropout": Option(0.25, "dropout before the last layer", float, 0.0, 0.8),
}


def cnn3d(input_shape: tuple[int, int, int, int], classes: int, *,
          front: Sequence[Any] = (), blocks: int = 3, filters: int = 8,
          dropout: float = 0.25, name: str = "cnn3d") -> Any:
    """Conv3D-ReLU-MaxPool3D blocks over `input_shape` (slices, h, w, 1) volumes, global
    average pooling, dropout and a softmax over `classes` >= 2. `front` layers act on the
    input first."""
    import keras
    from keras import layers

    if classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, not {classes}")
    if min(input_shape[:3]) < 2:
        raise ValueError(f"volume {'x'.join(map(str, input_shape[:3]))} is too small "
                         f"for 3-D convolutions")

    inputs = keras.Input(input_shape, name="volume")
    x = inputs
    for layer in front:
        x = layer(x)
    for i in range(1, blocks + 1):
        x = layers.Conv3D(filters * 2 ** (i - 1), 3, padding="same", activation="relu",
                          name=f"block{i}_conv")(x)
        # "same" padding: a volume of few slices is halved down to 1, never below.
        x = layers.MaxPooling3D(2, padding="same", name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling3D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)
