"""A model's attention, for the Inside page: a ViT's attention per block and head, its
rollout (Abnar & Zuidema 2020) and gradient-weighted rollout (Chefer et al. 2021), each
head's mean attention distance (Dosovitskiy et al. 2021), and a slice-attention model's
weight per slice.

Rollout and gradient rollout are the very code the Explain methods `attention-rollout`
and `attention-gradient` run (core.explain.methods.attention): one implementation.
Everything takes one input (no batch axis) and a loaded Keras model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.explain.errors import ExplainError
from core.explain.methods.attention.base import (
    attention_gradients,
    class_row,
    grid_of,
    keras_of,
    vit_refusal,
)
from core.explain.methods.attention.base import (
    attention_maps as _attention_maps,
)
from core.explain.methods.attention.gradient import gradient_rollout as _gradient_rollout
from core.explain.methods.attention.rollout import rollout as _rollout


def attention_kind(model: Any) -> str | None:
    """"vit" for a ViT laid out as core.nets.vit builds it, "slices" for a slice-attention
    recurrent model (core.nets.recurrent), None for any other model."""
    from core.nets.recurrent import ATTENTION

    keras_model = keras_of(model)
    if keras_model is None:
        return None
    if vit_refusal(keras_model) is None:
        return "vit"
    if any(layer.name == ATTENTION for layer in keras_model.layers):
        return "slices"
    return None


def has_attention(model: Any) -> str | None:
    """None where the model's attention can be shown (a ViT or a slice-attention model);
    else the one-line reason."""
    if attention_kind(model) is not None:
        return None
    return vit_refusal(model)


def _one(x: np.ndarray, rank: int) -> np.ndarray:
    """One input with a batch axis of 1 (an unbatched input, or a batch of one)."""
    x = np.asarray(x, np.float32)
    if x.ndim == rank:
        x = x[None]
    if x.ndim != rank + 1 or len(x) != 1:
        raise ExplainError(f"one input at a time (an array of rank {rank}), "
                           f"not shape {x.shape}")
    return x


def attention_maps(model: Any, x: np.ndarray) -> np.ndarray:
    """(layers, heads, T, T) float32: each block's attention probabilities for one image
    (token 0 the class token; row q sums to 1)."""
    return _attention_maps(model, _one(x, 3))[0]


def _grid(attention: np.ndarray, grid: tuple[int, int] | None) -> tuple[int, int]:
    if grid is not None:
        return int(grid[0]), int(grid[1])
    patches = attention.shape[-1] - 1
    side = int(round(patches ** 0.5))
    if side * side != patches:
        raise ValueError(f"{patches} patches are not a square grid: give grid=(rows, cols)")
    return side, side


def token_map(attention: np.ndarray, layer: int, head: int | None = None, token: int = 0,
              grid: tuple[int, int] | None = None) -> np.ndarray:
    """(rows, cols): where token `token` (0: the class token; 1 + r * cols + c: a patch)
    looks in block `layer` (0-based), for one head or the mean over heads (None), over the
    patch tokens. `grid` defaults to a square one."""
    rows, cols = _grid(attention, grid)
    weights = attention[layer]
    weights = weights.mean(axis=0) if head is None else weights[head]
    return weights[token, 1:].reshape(rows, cols).astype(np.float32)


def rollout(attention: np.ndarray, grid: tuple[int, int] | None = None) -> np.ndarray:
    """(rows, cols): the class token's attention rollout (Abnar & Zuidema 2020) from one
    image's (layers, heads, T, T) attention."""
    return class_row(_rollout(attention), _grid(attention, grid))


def gradient_rollout(model: Any, x: np.ndarray, target: int | None = None) -> np.ndarray:
    """(rows, cols): the class token's gradient-weighted attention rollout (Chefer et al.
    2021, rules 5-6) for class `target` (None: the predicted class) on one image."""
    attention, gradients, _ = attention_gradients(
        model, _one(x, 3), np.array([-1 if target is None else int(target)], np.int32))
    return class_row(_gradient_rollout(attention[0], gradients[0]), grid_of(model))


def mean_distance(model_or_grid: Any, attention: np.ndarray, patch_px: float) -> np.ndarray:
    """(layers, heads) px: each head's mean attention distance (Dosovitskiy et al. 2021,
    https://arxiv.org/abs/2010.11929, Fig. 7): for each query patch, the distance between
    the centres of the query and key patches weighted by the query's attention, averaged
    over the query patches. The class token is left out as query and key, and each query's
    weights over the patches are renormalised to sum to 1 (so a head that sends most of
    its attention to the class token is not read as looking near); the paper weighs
    pixels, MedLens patches, `patch_px` pixels apart."""
    if isinstance(model_or_grid, tuple | list):
        rows, cols = int(model_or_grid[0]), int(model_or_grid[1])
    else:
        rows, cols = grid_of(model_or_grid)
    r, c = np.divmod(np.arange(rows * cols), cols)
    distance = np.hypot(r[:, None] - r[None], c[:, None] - c[None]) * float(patch_px)
    weights = np.asarray(attention, np.float64)[..., 1:, 1:]
    total = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    return (weights * distance).sum(axis=-1).mean(axis=-1).astype(np.float32)


def slice_attention(model: Any, volume: np.ndarray) -> np.ndarray:
    """(slices,): a slice-attention model's weight on each slice of one volume (slices, h,
    w, channels), summing to 1 (core.nets.recurrent.slice_weights); ExplainError for a
    model without slice attention."""
    from core.nets.recurrent import slice_weights

    if attention_kind(model) != "slices":
        name = getattr(keras_of(model), "name", "this model")
        raise ExplainError(f"model '{name}' has no slice attention: the weight of each "
                           "slice needs a slice-attention model (recurrent, Train page)")
    return slice_weights(keras_of(model), _one(volume, 4))[0]
