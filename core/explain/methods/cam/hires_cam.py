"""HiRes-CAM.

Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks", 2020. https://arxiv.org/abs/2011.08891
"""

from __future__ import annotations

import numpy as np

from core.explain.methods.cam.base import CAM


class HiResCAM(CAM):
    name = "hirescam"
    title = "HiRes-CAM"
    paper = "https://arxiv.org/abs/2011.08891"

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        # Eq. 4: A^c_HiRes = sum_k dy^c/dA^k (.) A^k, the element-wise product instead of
        # Grad-CAM's averaged gradient; for a head of global average pooling and a dense
        # layer it is exactly the score's contribution of each location.
        return (gradients * activations).sum(axis=-1)
