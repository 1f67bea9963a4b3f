"""Guided Backpropagation.

Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
Convolutional Net", ICLR workshop 2015. https://arxiv.org/abs/1412.6806

Kept because it fails the model-randomisation sanity check (Adebayo et al. 2018): its
maps barely change when the model's weights are randomised, so they show edges of the
image more than the model's reasons. A teaching point, not a tool to trust.
"""

from __future__ import annotations

from core.explain.maps import channel_magnitude
from core.explain.method import Attribution, Method
from core.models.outputs import with_predicted


class GuidedBackprop(Method):
    name = "guided-backprop"
    title = "Guided Backprop"
    paper = "https://arxiv.org/abs/1412.6806"

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        # Fig. 1: at every ReLU, R_i = (f_i > 0) * (R_{i+1} > 0) * R_{i+1}
        gradients, scores = model.input_gradients(inputs, target, guided=True)
        return Attribution(channel_magnitude(gradients),
                           with_predicted(target, scores, model.single))
