"""Layer-CAM.

Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
IEEE TIP 2021. https://ieeexplore.ieee.org/document/9462463
"""

from __future__ import annotations

import numpy as np

from core.explain.methods.cam.base import CAM


class LayerCAM(CAM):
    name = "layercam"
    title = "Layer-CAM"
    paper = "https://ieeexplore.ieee.org/document/9462463"

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        # Eq. 5-6: w^kc_ij = ReLU(g^kc_ij); M^c = ReLU(sum_k w^kc_ij A^k_ij), element-wise, so
        # shallow layers keep their fine detail instead of one weight per channel.
        return (np.maximum(gradients, 0) * activations).sum(axis=-1)
