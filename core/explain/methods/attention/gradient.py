"""Gradient-weighted attention rollout.

Chefer, Gur and Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal
and Encoder-Decoder Transformers", ICCV 2021. https://arxiv.org/abs/2103.15679

Each block's attention A weighted by the gradient of the class score (the pre-softmax
logit) with respect to it, negative contributions dropped, averaged over heads (rule 5),
and accumulated through the blocks from R = I (rule 6); the class token's row of R over
the patch tokens is the map. It depends on the class explained, unlike plain rollout.
"""

from __future__ import annotations

import numpy as np

from core.explain.method import Attribution, image_of
from core.explain.methods.attention.base import (
    AttentionMethod,
    attention_gradients,
    class_row,
    grid_of,
)
from core.models.outputs import with_predicted


def gradient_rollout(attention: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """(..., T, T) relevance R from (..., layers, heads, T, T) attention and dS/dA."""
    attention = np.asarray(attention, np.float64)
    gradients = np.asarray(gradients, np.float64)
    tokens = attention.shape[-1]
    relevance = np.broadcast_to(np.eye(tokens), (*attention.shape[:-4], tokens, tokens)).copy()
    for layer in range(attention.shape[-4]):
        # Rule 5: A_bar = E_h[(grad A (.) A)^+]
        weighted = np.maximum(gradients[..., layer, :, :, :] * attention[..., layer, :, :, :],
                              0).mean(axis=-3)
        # Rule 6: R^{qq} = R^{qq} + A_bar . R^{qq}
        relevance = relevance + weighted @ relevance
    return relevance.astype(np.float32)


class AttentionGradient(AttentionMethod):
    name = "attention-gradient"
    title = "Gradient-weighted attention"
    paper = "https://arxiv.org/abs/2103.15679"

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        attention, gradients, logits = attention_gradients(model, image_of(model, inputs),
                                                           target)
        maps = class_row(gradient_rollout(attention, gradients), grid_of(model))
        return Attribution(maps, with_predicted(target, logits, False),
                           info={"blocks": int(attention.shape[1]),
                                 "heads": int(attention.shape[2])})
