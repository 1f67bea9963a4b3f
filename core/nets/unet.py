"""U-Net (Ronneberger, Fischer and Brox 2015, https://arxiv.org/abs/1505.04597): an
encoder of conv-conv-pool blocks, a bottleneck, and a decoder that upsamples and
concatenates the encoder's features at the same scale (the skip connections), ending in
a 1x1 convolution with a softmax over labels (or a sigmoid for one label).

Layer names are stable (`enc1_conv2`, `bottleneck_conv2`, `dec1_conv2`, `logits`,
`probabilities`), so explanations and the Segment page can offer them by name: the
bottleneck and the decoder layers for Seg-Grad-CAM (Vinogradova et al. 2020 found the
bottleneck most telling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.options import Option

BOTTLENECK = "bottleneck_conv2"

ABOUT = (
    "A U-Net labels every pixel: an encoder shrinks the image to learn what is there, a "
    "decoder grows it back to say where, and skip connections hand the fine detail of "
    "each scale across. It is the standard network for segmenting organs, tissue and "
    "lesions. It is scored by overlap (Dice) with the drawn masks, which are themselves "
    "someone's drawing. Watch small structures: a model can score well by getting the "
    "large regions right and missing the small ones."
)

OPTIONS: dict[str, Option] = {
    "filters": Option(16, "filters of the first level (doubled each level)", int, 4, 64),
    "depth": Option(3, "levels down (the image side must be a multiple of 2^depth)", int,
                    1, 5),
    "dropout": Option(0.0, "dropout at the bottleneck", float, 0.0, 0.5),
    "batch_norm": Option(True, "batch normalisation after each convolution", bool),
}


def unet(input_shape: tuple[int, int, int], labels: int, filters: int = 16, depth: int = 3,
         dropout: float = 0.0, name: str = "unet", batch_norm: bool = True, *,
         front: Sequence[Any] = ()) -> Any:
    """A 2-D U-Net: `depth` conv-conv-pool blocks of `filters` x 2^level channels, a
    bottleneck, `depth` upsample-concatenate-conv-conv blocks, and a 1x1 head: softmax
    over `labels` channels (labels >= 2; label 0 is background), or one sigmoid unit for
    `labels == 1`. Height and width must be multiples of 2^depth. `batch_norm=False`
    leaves out the batch normalisation (a model trained for a few steps on a handful of
    slices: its running statistics would not have settled). `front` layers
    (preprocessing, intensity augmentation) act on the input first."""
    import keras
    from keras import layers

    height, width, _ = input_shape
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"input {height}x{width} is not a multiple of {2**depth} "
                         f"(a U-Net of depth {depth} halves it {depth} times)")

    def block(x: Any, channels: int, prefix: str) -> Any:
        for i in (1, 2):
            x = layers.Conv2D(channels, 3, padding="same", use_bias=not batch_norm,
                              name=f"{prefix}_conv{i}_linear")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{prefix}_bn{i}")(x)
            x = layers.Activation("relu", name=f"{prefix}_conv{i}")(x)
        return x

    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for layer in front:
        x = layer(x)
    for level in range(1, depth + 1):
        x = block(x, filters * 2 ** (level - 1), f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = block(x, filters * 2**depth, "bottleneck")
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in range(depth, 0, -1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level - 1]])
        x = block(x, filters * 2 ** (level - 1), f"dec{level}")
    logits = layers.Conv2D(labels, 1, name="logits")(x)
    head = "sigmoid" if labels == 1 else "softmax"
    outputs = layers.Activation(head, name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)
