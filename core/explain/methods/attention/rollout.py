"""Attention rollout.

Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
https://arxiv.org/abs/2005.00928

Each block's attention, averaged over heads, plus the identity (the residual connection),
rows renormalised to sum to 1, multiplied through the layers from the first block to the
last; the class token's row of the product, over the patch tokens, is the map. Since each
row of the head mean already sums to 1, adding the identity and renormalising equals the
paper's 0.5 A + 0.5 I. The map does not depend on the class: rollout reads attention only.
"""

from __future__ import annotations

import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.method import Attribution, image_of
from core.explain.methods.attention.base import (
    AttentionMethod,
    attention_maps,
    class_row,
    grid_of,
)


def rollout(attention: np.ndarray) -> np.ndarray:
    """(..., T, T) joint attention from (..., layers, heads, T, T) probabilities."""
    attention = np.asarray(attention, np.float64)
    tokens = attention.shape[-1]
    eye = np.eye(tokens)
    joint = np.broadcast_to(eye, (*attention.shape[:-4], tokens, tokens)).copy()
    for layer in range(attention.shape[-4]):
        # Sec. 3, rollout: A~ = mean_heads(A) + I, rows renormalised (= 0.5 A + 0.5 I) ...
        mixed = attention[..., layer, :, :, :].mean(axis=-3) + eye
        mixed /= mixed.sum(axis=-1, keepdims=True)
        # ... and A~(l_i) = A~(l_i) A~(l_{i-1}): the new layer on the left.
        joint = mixed @ joint
    return joint.astype(np.float32)


class AttentionRollout(AttentionMethod):
    name = "attention-rollout"
    title = "Attention rollout"
    paper = "https://arxiv.org/abs/2005.00928"

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        image = image_of(model, inputs)
        attention = attention_maps(model, image)
        maps = class_row(rollout(attention), grid_of(model))
        return Attribution(maps, known_targets(model, inputs, target),
                           info={"blocks": int(attention.shape[1]),
                                 "heads": int(attention.shape[2])})
