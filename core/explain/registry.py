"""Every explanation method by name: the one list the API, the CLI, the pages and the
cost estimates read. Importing it loads no TensorFlow."""

from __future__ import annotations

from core.explain.errors import ExplainError
from core.explain.method import Method
from core.explain.methods.attention.gradient import AttentionGradient
from core.explain.methods.attention.rollout import AttentionRollout
from core.explain.methods.cam.grad_cam import GradCAM
from core.explain.methods.cam.grad_cam_plusplus import GradCAMPlusPlus
from core.explain.methods.cam.hires_cam import HiResCAM
from core.explain.methods.cam.layer_cam import LayerCAM
from core.explain.methods.cam.score_cam import ScoreCAM
from core.explain.methods.gradient.guided_backprop import GuidedBackprop
from core.explain.methods.gradient.guided_grad_cam import GuidedGradCAM
from core.explain.methods.gradient.integrated_gradients import IntegratedGradients
from core.explain.methods.gradient.saliency import Saliency
from core.explain.methods.gradient.smoothgrad import SmoothGrad
from core.explain.methods.perturbation.occlusion import Occlusion
from core.explain.methods.perturbation.rise import RISE

METHODS: dict[str, Method] = {
    m.name: m for m in (
        GradCAM(), GradCAMPlusPlus(), LayerCAM(), HiResCAM(), ScoreCAM(), Saliency(),
        SmoothGrad(), IntegratedGradients(), GuidedBackprop(), GuidedGradCAM(), Occlusion(),
        RISE(), AttentionRollout(), AttentionGradient(),
    )
}
METHOD_TITLES = {name: m.title for name, m in METHODS.items()}


def find_method(name: str) -> Method:
    if name not in METHODS:
        raise ExplainError(f"unknown method '{name}' (known: {', '.join(METHODS)})")
    return METHODS[name]


