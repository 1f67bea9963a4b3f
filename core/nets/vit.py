"""Vision Transformer (Dosovitskiy et al. 2021, https://arxiv.org/abs/2010.11929; the
Keras example https://keras.io/examples/vision/image_classification_with_vision_transformer/,
with the paper's class token in place of the example's Flatten head): the image cut into
patch x patch squares, each embedded linearly (a Conv2D with stride `patch`, `patches`),
a learned class token prepended and a learned position embedding added (Eq. 1), `depth`
pre-norm encoder blocks (Eq. 2-3: z' = MSA(LN(z)) + z; z = MLP(LN(z')) + z'), a final
LayerNorm, and the class token's output to the class scores (Eq. 4).

Layer names: `patches`, `tokens`, `class_token`, `position`, `block{i}_norm1`,
`block{i}_attention`, `block{i}_add1`, `block{i}_norm2`, `block{i}_mlp1`,
`block{i}_mlp_dropout1`, `block{i}_mlp2`, `block{i}_mlp_dropout2`, `block{i}_add2`,
`norm`, `class_output`, `logits`, `probabilities`. Attention is built with flash
attention off, so each block's attention scores can be read back (`attention_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.options import Option

ABOUT = (
    "A Vision Transformer cuts the image into square patches, turns each into a vector "
    "and lets every patch attend to every other one, so distant regions can inform each "
    "other from the first layer. A learned class token gathers what the patches say and "
    "decides the class. The field uses transformers more and more, mostly pre-trained on "
    "large sets: trained from scratch on a small set they learn slower than a CNN. Watch "
    "the attention maps: they show where the class token looked, which is not always "
    "where the evidence is."
)

OPTIONS: dict[str, Option] = {
    "patch": Option(8, "patch side in pixels (the image side must be a multiple)", int,
                    choices=(2, 4, 8, 16)),
    "dim": Option(64, "length of each token's vector (a multiple of heads)", int, 16, 256),
    "depth": Option(4, "encoder blocks", int, 1, 12),
    "heads": Option(4, "attention heads per block", int, choices=(1, 2, 4, 8)),
    "mlp": Option(128, "hidden units of each block's MLP", int, 16, 512),
    "dropout": Option(0.1, "dropout in attention and MLPs", float, 0.0, 0.5),
}


def vit(input_shape: tuple[int, int, int], classes: int, *, front: Sequence[Any] = (),
        patch: int = 8, dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128,
        dropout: float = 0.1) -> Any:
    """A ViT classifier. Height and width must be multiples of `patch`; `dim` a multiple
    of `heads` (each head attends in dim / heads dimensions)."""
    import keras
    from keras import layers

    from core.nets.blocks import ClassToken, PositionEmbedding, Token

    height, width = input_shape[0], input_shape[1]
    if height % patch or width % patch:
        raise ValueError(f"input {height}x{width} is not a multiple of the patch size {patch}")
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    rows, cols = height // patch, width // patch

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in front:
        x = layer(x)
    x = layers.Conv2D(dim, patch, strides=patch, name="patches")(x)
    x = layers.Reshape((rows * cols, dim), name="tokens")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position")(x)
    for i in range(1, depth + 1):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout,
                                      flash_attention=False, name=f"block{i}_attention")(h, h)
        x = layers.Add(name=f"block{i}_add1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        h = layers.Dense(mlp, activation="gelu", name=f"block{i}_mlp1")(h)
        h = layers.Dropout(dropout, name=f"block{i}_mlp_dropout1")(h)
        h = layers.Dense(dim, name=f"block{i}_mlp2")(h)
        h = layers.Dropout(dropout, name=f"block{i}_mlp_dropout2")(h)
        x = layers.Add(name=f"block{i}_add2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    x = Token(0, name="class_output")(x)
    logits = layers.Dense(classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name="vit")


def depth_of(model: Any) -> int:
    """How many encoder blocks a `vit` model has."""
    i = 0
    while any(layer.name == f"block{i + 1}_attention" for layer in model.layers):
        i += 1
    return i


def patch_grid(model: Any) -> tuple[int, int]:
    """(rows, cols) of patches: token 1 + r * cols + c is the patch at row r, column c."""
    _, rows, cols, _ = model.get_layer("patches").output.shape
    return int(rows), int(cols)


def attention_scores(model: Any, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """Each block's attention probabilities, (N, heads, T, T) float32 (T = 1 + patches,
    token 0 the class token; row q: how query token q spreads its attention, summing to
    1), at inference (no dropout). Each block's attention layer is re-run on its own
    input with `return_attention_scores=True`."""
    import keras

    depth = depth_of(model)
    if not depth:
        raise ValueError(f"model '{model.name}' has no ViT attention blocks")
    inputs = keras.Model(model.input, [model.get_layer(f"block{i}_norm1").output
                                        for i in range(1, depth + 1)])
    attentions = [model.get_layer(f"block{i}_attention") for i in range(1, depth + 1)]
    x = np.asarray(x, dtype="float32")
    found: list[list[np.ndarray]] = [[] for _ in range(depth)]
    for start in range(0, len(x), batch):
        hidden = inputs(x[start:start + batch], training=False)
        hidden = hidden if isinstance(hidden, (list, tuple)) else [hidden]
        for i, (h, attention) in enumerate(zip(hidden, attentions, strict=True)):
            _, scores = attention(h, h, return_attention_scores=True, training=False)
            found[i].append(keras.ops.convert_to_numpy(scores).astype("float32"))
    return [np.concatenate(parts) for parts in found]
