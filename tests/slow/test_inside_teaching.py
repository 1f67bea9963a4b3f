"""The teaching view's numbers on the real braintumor-xception: the first convolution
(xception/block1_conv1, 3x3, stride 2, inside the nested backbone) computed in numpy over
a patch of a real MRI equals the model's own output at those cells."""

from __future__ import annotations

import numpy as np

from core.inside.teaching import convolution_cell, first_layer_patch, softmax_steps


def test_the_first_layer_patch_is_the_real_first_layer(xception, glioma_input):
    found = first_layer_patch(xception.keras_model, glioma_input.inputs, size=9, channel=5)
    assert found.layer == "xception/block1_conv1" and found.stride == (2, 2)
    assert found.kernel.shape == (3, 3, 3) and found.expected.shape == (4, 4)
    np.testing.assert_allclose(found.computed(), found.expected, rtol=1e-4, atol=1e-4)
    cell = convolution_cell(found.patch, found.kernel, found.bias, 2, 4)
    # patch window (2, 4) is the layer's window (1, 2): it strides by 2
    assert abs(cell.output - found.expected[1, 2]) < 1e-4
    probabilities = xception.probabilities(glioma_input.batch)[0]
    logits = np.asarray(xception.keras_model(glioma_input.batch))[0]
    steps = softmax_steps(logits)
    # the model's outputs are logits (FIELD-NOTES): the softmax of them is its probabilities
    np.testing.assert_allclose(steps["probabilities"], probabilities, rtol=1e-4, atol=1e-6)
