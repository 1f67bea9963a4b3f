"""core.inside.teaching: the numpy convolution, pooling and softmax shown on the Inside
page agree with Keras' own layers, and with a real model's first layer."""

from __future__ import annotations

import numpy as np
import pytest

from core.inside.teaching import (
    convolution_cell,
    convolve,
    first_layer_patch,
    max_pool,
    pool_cell,
    softmax_steps,
)


def keras_conv(patch: np.ndarray, kernel: np.ndarray, bias: float) -> np.ndarray:
    import keras

    layer = keras.layers.Conv2D(1, kernel.shape[:2], padding="valid")
    layer.build((None, *patch.shape))
    layer.set_weights([kernel[..., None].astype(np.float32), np.array([bias], np.float32)])
    return np.asarray(layer(patch[None].astype(np.float32)))[0, ..., 0]


@pytest.mark.parametrize("channels, k", [(1, 3), (3, 3), (2, 5)])
def test_convolve_and_each_cell_equal_keras_conv2d(channels, k):
    rng = np.random.default_rng(channels * 10 + k)
    patch = rng.normal(size=(9, 8, channels))
    kernel = rng.normal(size=(k, k, channels))
    ours = convolve(patch, kernel, 0.3)
    theirs = keras_conv(patch, kernel, 0.3)
    assert ours.shape == theirs.shape == (9 - k + 1, 8 - k + 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    cell = convolution_cell(patch, kernel, 0.3, 2, 1)
    assert cell.window.shape == cell.products.shape == (k, k, channels)
    assert cell.output == pytest.approx(theirs[2, 1], abs=1e-5)
    assert cell.total == pytest.approx(cell.products.sum()) == pytest.approx(cell.output - 0.3)
    assert cell.relu == max(cell.output, 0.0)


def test_a_grey_patch_takes_a_2d_kernel():
    rng = np.random.default_rng(1)
    patch, kernel = rng.normal(size=(6, 6)), rng.normal(size=(3, 3))
    np.testing.assert_allclose(convolve(patch, kernel),
                               keras_conv(patch[..., None], kernel[..., None], 0.0), atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        convolution_cell(patch, kernel, 0.0, 4, 0)


def test_max_pool_and_its_cells_equal_keras_max_pooling():
    import keras

    x = np.random.default_rng(2).normal(size=(7, 9, 2)).astype(np.float32)
    theirs = np.asarray(keras.layers.MaxPooling2D(2, padding="valid")(x[None]))[0]
    ours = max_pool(x)
    assert ours.shape == theirs.shape == (3, 4, 2)
    np.testing.assert_allclose(ours, theirs)
    cell = pool_cell(x[..., 1], 1, 2)
    assert cell.output == pytest.approx(theirs[1, 2, 1])
    r, c = cell.argmax
    assert cell.window[r, c] == cell.output == x[2 + r, 4 + c, 1]
    strided = np.asarray(keras.layers.MaxPooling2D(3, strides=2)(x[None]))[0]
    np.testing.assert_allclose(max_pool(x, 3, 2), strided)


def test_softmax_steps_sum_to_one_and_equal_numpy():
    logits = np.array([2.0, -1.0, 0.5, 30.0])
    steps = softmax_steps(logits)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(steps["probabilities"], expected)
    assert steps["probabilities"].sum() == pytest.approx(1.0)
    assert steps["shifted"].max() == 0.0
    assert steps["total"] == pytest.approx(steps["exp"].sum())
    import keras

    np.testing.assert_allclose(steps["probabilities"],
                               np.asarray(keras.activations.softmax(logits[None]))[0],
                               rtol=1e-6)


@pytest.mark.parametrize("padding, strides, activation", [
    ("valid", 1, "relu"), ("same", 2, "linear"), ("valid", 2, "linear")])
def test_first_layer_patch_matches_the_real_first_layer(padding, strides, activation):
    """On a tiny model (the first conv inside a nested model, as in Xception), the
    patch's numpy convolution at the layer's own windows equals the layer's real
    output at those cells."""
    import keras

    keras.utils.set_random_seed(0)
    inner_in = keras.Input((20, 20, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(
        4, 3, strides=strides, padding=padding, activation=activation,
        bias_initializer="random_normal", name="conv1")(inner_in), name="backbone")
    outer_in = keras.Input((20, 20, 3))
    x = keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    model = keras.Model(outer_in, keras.layers.Dense(2, activation="softmax")(x))
    image = np.random.default_rng(3).uniform(-1, 1, (20, 20, 3)).astype(np.float32)

    found = first_layer_patch(model, image, size=8, centre=(11, 6), channel=2)
    assert found.layer == "backbone/conv1"
    assert found.patch.shape == (8, 8, 3) and found.kernel.shape == (3, 3, 3)
    top, left = found.top_left
    np.testing.assert_array_equal(found.patch, image[top:top + 8, left:left + 8])
    computed = np.asarray(keras.activations.get(found.activation)(found.computed()))
    assert computed.shape == found.expected.shape and computed.size >= 9
    np.testing.assert_allclose(computed, found.expected, rtol=1e-5, atol=1e-5)
    # The real output, from a sub-model built here independently of MedLens.
    real = np.asarray(keras.Model(inner.input, inner.get_layer("conv1").output)(image[None]))
    row, col = found.first
    rows, cols = found.expected.shape
    np.testing.assert_allclose(found.expected, real[0, row:row + rows, col:col + cols, 2],
                               atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        first_layer_patch(model, image, channel=4)


def test_logits_step_over_the_softmax_and_take_a_segmenters_centre_pixel():
    import keras

    from core.inside.teaching import logits

    keras.utils.set_random_seed(2)
    inputs = keras.Input((6, 6, 1))
    scores = keras.layers.Conv2D(2, 3, padding="same", name="scores")(inputs)
    segmenter = keras.Model(inputs, keras.layers.Softmax()(scores))
    x = np.random.default_rng(2).random((6, 6, 1), np.float32)
    expected = np.asarray(keras.Model(inputs, scores)(x[None]))[0, 3, 3]
    np.testing.assert_allclose(logits(segmenter, x), expected, rtol=1e-5, atol=1e-6)
    pooled = keras.layers.GlobalAveragePooling2D()(scores)
    classifier = keras.Model(inputs, keras.layers.Softmax()(pooled))
    np.testing.assert_allclose(logits(classifier, x),
                               np.asarray(keras.Model(inputs, pooled)(x[None]))[0],
                               rtol=1e-5, atol=1e-6)
