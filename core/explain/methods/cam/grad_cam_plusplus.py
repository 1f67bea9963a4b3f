"""Grad-CAM++.

Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep Convolutional
Networks", WACV 2018. https://arxiv.org/abs/1710.11063
"""

from __future__ import annotations

import numpy as np

from core.explain.methods.cam.base import CAM


class GradCAMPlusPlus(CAM):
    name = "gradcam++"
    title = "Grad-CAM++"
    paper = "https://arxiv.org/abs/1710.11063"

    def weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        g2 = gradients**2
        g3 = g2 * gradients
        sum_a = activations.sum(axis=(1, 2), keepdims=True)
        # Eq. 19 with an exponential score, so higher derivatives are powers of the first:
        # alpha^kc_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3)
        denominator = 2 * g2 + sum_a * g3
        alpha = np.where(gradients != 0, g2 / np.where(denominator != 0, denominator, 1.0), 0.0)
        # As the authors' code (and tf-keras-vis) do: each channel's alphas normalised to
        # sum to 1 over the locations, which Eq. 19 leaves implicit.
        total = alpha.sum(axis=(1, 2), keepdims=True)
        alpha = alpha / np.where(total != 0, total, 1.0)
        # Eq. 10: w^c_k = sum_ij alpha^kc_ij ReLU(dY^c / dA^k_ij)
        return (alpha * np.maximum(gradients, 0)).sum(axis=(1, 2))
