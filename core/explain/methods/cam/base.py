"""What the class activation maps share: a layer's activations combined with the
gradients of the class score."""

from __future__ import annotations

import numpy as np

from core.explain.method import Attribution, Method
from core.models.outputs import with_predicted


class CAM(Method):
    """Class activation map: a layer's activations A^k combined with the gradients of the
    class score dy^c/dA^k, then ReLU. Most methods weight whole channels (`weights`);
    element-wise ones (Layer-CAM, HiRes-CAM) override `combine`."""

    uses_layer = True

    def weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, K) channel weights from activations and gradients (N, h, w, K)."""
        raise NotImplementedError

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, h, w) before the ReLU: sum_k w^k_c A^k."""
        return np.einsum("nhwk,nk->nhw", activations, self.weights(activations, gradients))

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        activations, gradients, scores = model.layer_gradients(inputs, target, layer)
        # L^c = ReLU(combination of A and dy^c/dA)
        return Attribution(np.maximum(self.combine(activations, gradients), 0),
                           with_predicted(target, scores, model.single))
