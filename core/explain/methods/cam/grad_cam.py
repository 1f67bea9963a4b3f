"""Grad-CAM.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017. https://arxiv.org/abs/1610.02391
"""

from __future__ import annotations

import numpy as np

from core.explain.methods.cam.base import CAM


class GradCAM(CAM):
    name = "gradcam"
    title = "Grad-CAM"
    paper = "https://arxiv.org/abs/1610.02391"

    def weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        # Eq. 1: alpha^c_k = 1/Z sum_i sum_j dy^c / dA^k_ij (global-average-pooled gradients)
        return gradients.mean(axis=(1, 2))
