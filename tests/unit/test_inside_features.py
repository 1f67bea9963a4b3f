"""core.inside.features and core.inside.filters on tiny models built here: feature maps
against Keras sub-models built independently, for a flat and a nested model; statistics
with a channel forced dead; channel order; separation; kernels and their norms against
the layers' own weights."""

from __future__ import annotations

import numpy as np
import pytest

from core.explain.errors import ExplainError
from core.inside.features import (
    INPUT_ROW,
    feature_maps,
    find_layer,
    first_separating,
    layer_stats,
    map_stats,
    nearest_centroid_loo,
    order_channels,
    separation,
    token_grid,
)
from core.inside.filters import (
    first_convolution,
    kernel_norms,
    kernel_parts,
    kernel_pictures,
    kernels,
)

keras = pytest.importorskip("keras")
layers = keras.layers


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def flat():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


@pytest.fixture(scope="module")
def nested():
    """A rescaling, then a nested backbone (used as one layer), then a head."""
    keras.utils.set_random_seed(2)
    inner_in = keras.Input((16, 16, 3), name="inner_in")
    x = layers.Conv2D(5, 3, strides=2, name="conv_a")(inner_in)
    x = layers.ReLU(name="relu_a")(x)
    backbone = keras.Model(inner_in, layers.Conv2D(4, 3, name="conv_b")(x), name="backbone")
    inputs = keras.Input((16, 16, 3), name="image")
    x = backbone(layers.Rescaling(0.5, offset=-1.0, name="rescale")(inputs))
    outputs = layers.Dense(2, name="head")(layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inputs, outputs), backbone


def independent(model, layer: str, x: np.ndarray) -> np.ndarray:
    """The layer's output by a Keras sub-model built here, channel axis first."""
    sub = keras.Model(model.input, model.get_layer(layer).output)
    return np.moveaxis(np.asarray(sub(x[None]))[0], -1, 0)


@pytest.mark.parametrize("layer", ["conv1", "bn", "sep", "pool"])
def test_feature_maps_equal_a_keras_sub_model(flat, images, layer):
    maps = feature_maps(flat, images[1], layer)
    assert maps.dtype == np.float32 and maps.ndim == 3
    np.testing.assert_allclose(maps, independent(flat, layer, images[1]), atol=1e-6)


def test_feature_maps_of_a_nested_layer(nested, images):
    model, backbone = nested
    for layer in ("backbone/conv_a", "backbone/relu_a", "backbone/conv_b"):
        name = layer.split("/")[1]
        sub = keras.Model(backbone.input, backbone.get_layer(name).output)
        rescaled = images[2:3] * 0.5 - 1.0  # the outer model's rescaling, by hand
        expected = np.moveaxis(np.asarray(sub(rescaled))[0], -1, 0)
        np.testing.assert_allclose(feature_maps(model, images[2], layer), expected, atol=1e-6)
    # A bare name found once is enough; the nested model's own output is its last layer's.
    np.testing.assert_array_equal(feature_maps(model, images[2], "conv_b"),
                                  feature_maps(model, images[2], "backbone/conv_b"))
    np.testing.assert_allclose(feature_maps(model, images[2], "backbone"),
                               feature_maps(model, images[2], "backbone/conv_b"), atol=1e-6)


def test_feature_maps_of_vectors_tokens_and_two_inputs(flat, images):
    head = feature_maps(flat, images[0], "head")
    assert head.shape == (3, 1, 1)
    np.testing.assert_allclose(head[:, 0, 0], np.asarray(flat(images[:1]))[0], atol=1e-6)
    # A (T, dim) token layer gives (dim, T); a second input goes along in a list.
    tokens_in = keras.Input((6, 4), name="tokens")
    extra = keras.Input((2,), name="extra")
    dense = layers.Dense(5, name="mix")(tokens_in)
    pooled = layers.GlobalAveragePooling1D()(dense)
    model = keras.Model([tokens_in, extra], layers.Concatenate()([pooled, extra]))
    x = [np.arange(24, dtype=np.float32).reshape(6, 4), np.ones(2, np.float32)]
    maps = feature_maps(model, x, "mix")
    assert maps.shape == (5, 6)
    expected = np.asarray(keras.Model(tokens_in, dense)(x[0][None]))[0].T
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_unknown_and_ambiguous_layers_are_one_line(nested):
    model, _ = nested
    with pytest.raises(ExplainError, match="no layer 'nope'.*models show"):
        find_layer(model, "nope")
    assert find_layer(model, "relu_a") == "backbone/relu_a"
    twin_in = keras.Input((4,))
    a = keras.Model(twin_in, layers.Dense(2, name="same")(twin_in), name="a")
    b_in = keras.Input((4,))
    b = keras.Model(b_in, layers.Dense(2, name="same")(b_in), name="b")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, layers.Add()([a(outer_in), b(outer_in)]))
    with pytest.raises(ExplainError, match="ambiguous: a/same, b/same"):
        find_layer(outer, "same")


@pytest.fixture(scope="module")
def with_dead_channel():
    """A ReLU convolution whose channel 2 has zero weights and a negative bias: zero
    everywhere, on every image."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 1), name="image")
    conv = layers.Conv2D(4, 3, activation="relu", name="conv")
    x = conv(inputs)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    kernel, bias = conv.get_weights()
    kernel[..., 2] = 0.0
    bias[:] = [0.1, 0.0, -1.0, 0.05]
    conv.set_weights([kernel, bias])
    return model


def test_stats_with_a_dead_channel(with_dead_channel):
    model = with_dead_channel
    batch = np.random.default_rng(4).normal(size=(7, 12, 12, 1)).astype(np.float32)
    stats = {s.layer: s for s in layer_stats(model, batch, chunk=3)}
    assert list(stats) == ["conv"]  # every spatial layer by default
    conv = stats["conv"]
    outputs = np.asarray(keras.Model(model.input, model.get_layer("conv").output)(batch))
    assert conv.images == 7 and conv.shape == (4, 10, 10)
    assert conv.dead == (2,) and conv.dead_channels == 1
    assert conv.mean == pytest.approx(outputs.mean(), rel=1e-5)
    assert conv.sparsity == pytest.approx(np.mean(outputs == 0))
    assert conv.sparsity >= 0.25  # the dead channel is a quarter of the outputs
    assert set(conv.to_dict()) == {"layer", "shape", "mean", "sparsity", "dead_channels"}
    # One image's statistics from its maps agree with layer_stats over that image alone.
    one = map_stats("conv", feature_maps(model, batch[0], "conv"))
    alone = layer_stats(model, batch[:1], ["conv"])[0]
    assert one.dead == alone.dead and one.shape == alone.shape
    assert one.mean == pytest.approx(alone.mean) and one.sparsity == alone.sparsity


def test_order_channels():
    maps = np.zeros((4, 2, 2), np.float32)
    maps[0] = 1.0
    maps[1, 0, 0] = 10.0  # highest max, mean 2.5
    maps[2] = 3.0
    maps[3] = -1.0
    assert order_channels(maps, "mean").tolist() == [2, 1, 0, 3]
    assert order_channels(maps, "max").tolist() == [1, 2, 0, 3]
    assert order_channels(maps, "index").tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="'mean', 'max' or 'index'"):
        order_channels(maps, "median")


def test_nearest_centroid_leave_one_out_by_hand():
    features = np.array([[0.0], [0.2], [1.0], [1.2], [0.45]])
    labels = np.array(["a", "a", "b", "b", "b"])
    # Without it, b's centroid is 1.1 and a's 0.1: the last image (0.45) is called a.
    assert nearest_centroid_loo(features, labels).tolist() == ["a", "a", "b", "b", "a"]
    rows = [{"layer": "x", "classes": {"a": 1.0}}, {"layer": "y", "classes": {"a": 0.5}},
            {"layer": "z", "classes": {"a": 1.0}}, {"layer": "w", "classes": {"a": 1.0}}]
    assert first_separating(rows, "a") == "z"
    assert first_separating(rows[:2], "a") is None


def test_separation_on_a_model_that_sees_brightness():
    """Two classes that differ in brightness: a 1x1 convolution that passes the pixels
    on tells them apart perfectly; its per-layer row says so."""
    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(2, 1, kernel_initializer="ones", name="conv")(inputs)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    rng = np.random.default_rng(5)
    batch = np.concatenate([rng.normal(0, 0.1, (4, 8, 8, 1)), rng.normal(3, 0.1, (4, 8, 8, 1))])
    labels = np.array(["dark"] * 4 + ["bright"] * 4)
    rows = separation(model, batch.astype(np.float32), labels)
    assert [r["layer"] for r in rows] == ["conv"]
    assert rows[0]["accuracy"] == 1.0 and rows[0]["classes"] == {"dark": 1.0, "bright": 1.0}
    assert rows[0]["channels"] == 2
    # The image itself comes first on request: brightness alone tells these apart.
    image, conv = separation(model, batch.astype(np.float32), labels, with_input=True)
    assert image["layer"] == INPUT_ROW and image["channels"] == 1
    assert image["accuracy"] == 1.0 and conv == rows[0]
    with pytest.raises(ExplainError, match="3 labels for 8 images"):
        separation(model, batch, labels[:3])


def test_kernels_against_the_layers_weights(flat, nested):
    kernel, _ = flat.get_layer("conv1").get_weights()  # (kh, kw, C_in, C_out)
    assert first_convolution(flat) == "conv1"
    found = kernels(flat)
    assert found.shape == (4, 3, 3, 3) and found.dtype == np.float32
    np.testing.assert_array_equal(found[2], kernel[..., 2])
    np.testing.assert_allclose(kernel_norms(flat, "conv1"),
                               np.linalg.norm(kernel.reshape(-1, 4), axis=0), rtol=1e-6)
    depthwise, pointwise, _ = flat.get_layer("sep").get_weights()  # (3,3,4,2), (1,1,8,6)
    assert kernel_parts(flat, "sep") == ("depthwise", "pointwise")
    found = kernels(flat, "sep")
    assert found.shape == (8, 3, 3, 1)
    # Depthwise output channel c * multiplier + m comes from input channel c.
    np.testing.assert_array_equal(found[3, ..., 0], depthwise[:, :, 1, 1])
    found = kernels(flat, "sep", "pointwise")
    assert found.shape == (6, 1, 1, 8)
    np.testing.assert_array_equal(found[5, 0, 0], pointwise[0, 0, :, 5])
    np.testing.assert_allclose(kernel_norms(flat, "sep"),
                               np.linalg.norm(pointwise.reshape(8, 6), axis=0), rtol=1e-6)
    dense, _ = flat.get_layer("head").get_weights()
    assert kernels(flat, "head").shape == (3, 1, 1, 6)
    np.testing.assert_array_equal(kernels(flat, "head")[1, 0, 0], dense[:, 1])
    with pytest.raises(ExplainError, match="no pointwise kernel"):
        kernels(flat, "conv1", "pointwise")
    with pytest.raises(ExplainError, match="has no kernel"):
        kernels(flat, "pool")
    model, backbone = nested
    assert first_convolution(model) == "backbone/conv_a"
    np.testing.assert_array_equal(kernels(model)[1],
                                  backbone.get_layer("conv_a").get_weights()[0][..., 1])


def test_kernel_pictures_put_zero_at_grey():
    weights = np.zeros((2, 3, 3, 3), np.float32)
    weights[0, 0, 0] = [1.0, -1.0, 0.0]
    weights[1, 1, 1] = [0.5, 0.0, 0.0]
    pictures = kernel_pictures(weights)
    assert pictures.shape == (2, 3, 3, 3) and pictures.min() >= 0 and pictures.max() <= 1
    assert pictures[0, 0, 0].tolist() == [1.0, 0.0, 0.5]
    assert pictures[1, 1, 1, 0] == 0.75 and pictures[1, 2, 2, 0] == 0.5
    own = kernel_pictures(weights, per_kernel=True)
    assert own[1, 1, 1, 0] == 1.0  # scaled by its own largest weight
    grey = kernel_pictures(np.ones((4, 3, 3, 5), np.float32))
    assert grey.shape == (4, 3, 3, 1) and np.all(grey == 1.0)


def test_token_grid_lays_patch_tokens_on_the_grid():
    tokens = np.arange(3 * 7, dtype=np.float32).reshape(3, 7)  # dim 3, class token + 2x3
    grid = token_grid(tokens, (2, 3))
    assert grid.shape == (3, 2, 3)
    assert grid[1, 1, 2] == tokens[1, 1 + 1 * 3 + 2]
    with pytest.raises(ExplainError, match="do not fill a 3x3 patch grid"):
        token_grid(tokens, (3, 3))
