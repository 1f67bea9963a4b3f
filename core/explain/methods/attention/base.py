"""Attention in a MedLens Vision Transformer (core.nets.vit), read for the attention
methods and for the Inside page (core.inside.attention calls these: one implementation).

- `vit_refusal(model)`: why a model cannot be explained by its attention (None: it can).
  Only a ViT laid out as `core.nets.vit` builds it is read: its blocks are re-run layer
  by layer, by name, so another transformer's layout is refused rather than guessed.
- `attention_maps(model, x)`: each block's attention probabilities (N, layers, heads, T, T)
  at inference, from the same block-by-block pass (compiled once per model).
- `attention_gradients(model, x, target)`: the same probabilities and d(class score)/dA of
  the very same forward pass, which re-runs the ViT block by block inside one GradientTape,
  calling each MultiHeadAttention with `return_attention_scores=True`. The class score is
  the pre-softmax logit (the `logits` layer: the final softmax is stepped over, as
  core.explain.backend.scores does for every model). At inference Keras applies no
  dropout to the probabilities, so the tensor returned is the one that weighs the values,
  and its gradient is the one Chefer et al. use.
- `class_row(joint, grid)`: the class token's row over the patch tokens as a (rows, cols)
  map (token 1 + r * cols + c is the patch at row r, column c).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.explain.errors import ExplainError
from core.explain.method import Method

# What a ViT must hold besides its blocks (core.nets.vit's names).
_VIT_LAYERS = ("patches", "position", "norm", "class_output", "logits")
_BLOCK_LAYERS = ("norm1", "attention", "add1", "norm2", "mlp1", "mlp_dropout1", "mlp2",
                 "mlp_dropout2", "add2")

REGION_REFUSAL = ("attention maps follow a ViT's class token, and a segmentation model "
                  "has none")


def keras_of(model: Any) -> Any:
    """The Keras model inside a Classifier or a ScoreModel (the model itself otherwise;
    None for a model known only by its forward pass: onnxruntime)."""
    from core.explain.backend.scores import ForwardModel, ScoreModel
    from core.models import Classifier

    if isinstance(model, Classifier):
        return model.keras_model
    if isinstance(model, ScoreModel):
        return model.model
    if isinstance(model, ForwardModel) or not hasattr(model, "layers"):
        return None
    return model


def _names(model: Any) -> set[str]:
    return {layer.name for layer in getattr(model, "layers", ())}


def _has_multi_head_attention(model: Any) -> bool:
    for layer in getattr(model, "layers", ()):
        if layer.__class__.__name__ == "MultiHeadAttention" or _has_multi_head_attention(layer):
            return True
    return False


def vit_refusal(model: Any, name: str | None = None) -> str | None:
    """None where `model` is a ViT laid out as core.nets.vit builds it (its attention can
    be read and differentiated); else the one-line refusal, naming the model `name` (or
    its Keras name)."""
    from core.nets.vit import depth_of

    keras_model = keras_of(model)
    name = name or getattr(keras_model, "name", None) or "this model"
    if keras_model is None:
        return (f"model '{name}' runs without Keras (onnxruntime): attention methods "
                "need a Keras ViT (MultiHeadAttention) to read its attention")
    if not _has_multi_head_attention(keras_model):
        return (f"model '{name}' has no attention layers: attention methods need a ViT "
                "(MultiHeadAttention), such as one trained on the Train page")
    depth = depth_of(keras_model)
    names = _names(keras_model)
    wanted = list(_VIT_LAYERS) + [f"block{i}_{part}" for i in range(1, depth + 1)
                                  for part in _BLOCK_LAYERS]
    missing = [w for w in wanted if w not in names]
    if not depth or missing or len(keras_model.inputs) != 1:
        return (f"model '{name}' has attention layers but not the layout of a MedLens ViT "
                f"(core.nets.vit: layers block1_attention, ..., class_output, logits"
                f"{'; missing ' + missing[0] if missing else ''}): its attention is not read")
    return None


def check_vit(model: Any, name: str | None = None) -> Any:
    """The Keras ViT inside `model`; ExplainError with the refusal otherwise."""
    why = vit_refusal(model, name)
    if why is not None:
        raise ExplainError(why)
    return keras_of(model)


def attention_maps(model: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, layers, heads, T, T) float32: each block's attention probabilities at inference
    (row q: where query token q looks, summing to 1; token 0 the class token), from the
    block-by-block pass compiled once per model (tests/unit/test_attention.py checks them
    against core.nets.vit.attention_scores)."""
    import tensorflow as tf

    from core.models.runtime.keras import compiled

    vit = check_vit(model)

    def build():
        fn = block_by_block(vit)

        @tf.function(input_signature=[_image_spec(vit)])
        def maps(x):
            return tf.stack(fn(x)[0], axis=1)

        return maps

    fn = compiled(vit, "attention-maps", build)
    x = np.asarray(x, np.float32)
    return np.concatenate([fn(tf.constant(x[start:start + batch])).numpy()
                           for start in range(0, len(x), batch)])


def _image_spec(vit: Any):
    import tensorflow as tf

    return tf.TensorSpec([None, *vit.inputs[0].shape[1:]], tf.float32)


def attention_gradients(model: Any, x: np.ndarray, target: np.ndarray,
                        batch: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(attention A, dS/dA, logits) for each image: A and dS/dA (N, layers, heads, T, T),
    logits (N, classes), all from one forward pass per batch, re-run block by block. S is
    the target class's logit (a negative target: the predicted class)."""
    import tensorflow as tf

    from core.explain.targets import class_score
    from core.models.runtime.keras import compiled

    vit = check_vit(model)

    def build():
        fn = block_by_block(vit)

        @tf.function(input_signature=[_image_spec(vit), tf.TensorSpec([None], tf.int32)])
        def gradients(x, target):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                attentions, logits = fn(x, tape)
                score = class_score(logits, target, False)
            grads = tape.gradient(score, attentions)
            return tf.stack(attentions, axis=1), tf.stack(grads, axis=1), logits

        return gradients

    fn = compiled(vit, "attention-gradients", build)
    x = np.asarray(x, np.float32)
    target = np.asarray(target, np.int32)
    found: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(x), batch):
        out = fn(tf.constant(x[start:start + batch]), tf.constant(target[start:start + batch]))
        for part, tensor in zip(found, out, strict=True):
            part.append(tensor.numpy())
    return tuple(np.concatenate(part) for part in found)  # type: ignore[return-value]


def block_by_block(vit: Any):
    """fn(x, tape) -> ([A per block], logits): the ViT's forward pass at inference, run
    layer by layer from its own layers (core.nets.vit's names), each attention layer
    called with `return_attention_scores=True`; the tokens entering block 1 are watched
    on `tape`, so every A is recorded (tests/unit/test_attention.py checks the logits
    against the model's own)."""
    import keras

    from core.nets.vit import depth_of

    embed = keras.Model(vit.inputs[0], vit.get_layer("position").output)
    blocks = [{part: vit.get_layer(f"block{i}_{part}") for part in _BLOCK_LAYERS}
              for i in range(1, depth_of(vit) + 1)]
    norm, token, logits = (vit.get_layer(n) for n in ("norm", "class_output", "logits"))

    def forward(x, tape=None):
        z = embed(x, training=False)
        if tape is not None:
            tape.watch(z)
        attentions = []
        for b in blocks:
            h = b["norm1"](z)
            h, a = b["attention"](h, h, return_attention_scores=True, training=False)
            attentions.append(a)
            z = b["add1"]([z, h])
            h = b["mlp2"](b["mlp_dropout1"](b["mlp1"](b["norm2"](z)), training=False))
            z = b["add2"]([z, b["mlp_dropout2"](h, training=False)])
        # `logits` is the Dense before the `probabilities` softmax: the class scores.
        return attentions, logits(token(norm(z)))

    return forward


def class_row(joint: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(..., rows, cols): the class token's row (token 0) of (..., T, T) over the patch
    tokens 1..T-1, laid out on the patch grid."""
    rows, cols = grid
    return joint[..., 0, 1:].reshape(*joint.shape[:-2], rows, cols)


def grid_of(model: Any) -> tuple[int, int]:
    from core.nets.vit import patch_grid

    return patch_grid(keras_of(model))


class AttentionMethod(Method):
    """A method that reads a ViT's attention: refused, in one line, for any other model."""

    uses_layer = False
    gradients = True
    region_refusal = REGION_REFUSAL

    def refusal(self, model: Any, name: str | None = None) -> str | None:
        return vit_refusal(model, name)
