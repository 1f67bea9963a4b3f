"""Vanilla gradient saliency.

Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps", ICLR workshop 2014.
https://arxiv.org/abs/1312.6034
"""

from __future__ import annotations

from core.explain.maps import channel_magnitude
from core.explain.method import Attribution, Method
from core.models.outputs import with_predicted


class Saliency(Method):
    name = "saliency"
    title = "Saliency"
    paper = "https://arxiv.org/abs/1312.6034"

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        # Sec. 3.1: w = dS_c/dI at the image; M_ij = max_c |w_h(i,j,c)|
        gradients, scores = model.input_gradients(inputs, target)
        return Attribution(channel_magnitude(gradients),
                           with_predicted(target, scores, model.single))
