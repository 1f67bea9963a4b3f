"""What the class activation maps share: a layer's activations combined with the
gradients of the class score."""

from __future__ import annotations

import numpy as np

from core.explain.method import Attribution, Method
from core.models.outputs import with_predicted

# Pairs of methods that give the same map when the class score's gradient is the same at
# every location of the layer (a head of global average pooling and then only dense or
# per-channel operations: d y / d A^k_ij = 1/Z d y / d(GAP A^k) for every i, j).
# - HiRes-CAM sum_k g^k_ij A^k_ij = sum_k g^k A^k_ij = Grad-CAM's sum_k mean_ij(g^k) A^k.
# - Grad-CAM++: alpha^kc_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3) is then the same at every
#   location, so normalised to sum 1 it is 1/Z, and w_k = sum_ij ReLU(g^k) / Z = ReLU(g^k):
#   Layer-CAM's sum_k ReLU(g^k) A^k_ij. (Without that normalisation, Eq. 19 taken
#   literally, the two would differ by a factor per channel.)
SAME_WHEN_UNIFORM = {"gradcam": "HiRes-CAM", "hirescam": "Grad-CAM",
                     "gradcam++": "Layer-CAM", "layercam": "Grad-CAM++"}  # -> the other's title

# The gradient counts as uniform over the locations when no channel's gradient strays
# from its spatial mean by more than this fraction of the largest gradient (float32
# rounding of a GAP head measured at ~1e-7 of it).
UNIFORM_TOLERANCE = 1e-4


def uniform_gradients(gradients: np.ndarray) -> bool:
    """Whether dy/dA (N, h, w, K) is the same at every location of each channel (for
    every image): then the pairs in SAME_WHEN_UNIFORM give equal maps by construction."""
    scale = float(np.abs(gradients).max()) if gradients.size else 0.0
    if scale == 0.0:
        return True
    spread = np.abs(gradients - gradients.mean(axis=(1, 2), keepdims=True)).max()
    return bool(spread <= UNIFORM_TOLERANCE * scale)


def equal_by_construction(method: str, info: dict) -> str | None:
    """A sentence for the page where `method`'s map is, by construction, the same as
    another method's at this layer (from `info["uniform_gradients"]`), else None."""
    other = SAME_WHEN_UNIFORM.get(method)
    if other is None or not info.get("uniform_gradients"):
        return None
    return (f"Equal to {other} by construction here: the class "
            "score's gradient is the same at every location of this layer (global "
            "average pooling, then only dense layers), so the two formulas give one map.")


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
                           with_predicted(target, scores, model.single),
                           info={"uniform_gradients": uniform_gradients(gradients)})
