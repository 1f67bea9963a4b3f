"""Guided Grad-CAM.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, Sec. 3.1. https://arxiv.org/abs/1610.02391

Inherits Guided Backprop's failure of the randomisation sanity check (Adebayo et al.
2018): a teaching point.
"""

from __future__ import annotations

from core.explain.maps import resize_maps
from core.explain.method import Attribution, Method, image_of
from core.explain.methods.cam.grad_cam import GradCAM
from core.explain.methods.gradient.guided_backprop import GuidedBackprop


class GuidedGradCAM(Method):
    name = "guided-gradcam"
    title = "Guided Grad-CAM"
    paper = "https://arxiv.org/abs/1610.02391"
    uses_layer = True

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        _, height, width, _ = image_of(model, inputs).shape
        cam = GradCAM().attribute(model, inputs, target, layer, None)
        guided = GuidedBackprop().attribute(model, inputs, cam.target, None, None).maps
        # Sec. 3.1: Guided Grad-CAM = Guided Backprop (.) upsampled L^c_Grad-CAM
        return Attribution(guided * resize_maps(cam.maps, height, width), cam.target)
