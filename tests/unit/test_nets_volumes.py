"""The volume classifiers (core.nets.recurrent, core.nets.cnn3d): shapes, probabilities,
the slice-attention weights against a hand computation, safe-mode reloading, and that
slice attention learns to point at the slice that decides the class."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from core.nets import cnn3d as cnn3d_module
from core.nets import recurrent as recurrent_module
from core.nets.cnn3d import cnn3d
from core.nets.recurrent import recurrent, slice_weights
from core.options import checked

TINY = {"units": 4, "filters": 2, "blocks": 1}


def volumes(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


@pytest.mark.parametrize("shape, options", [
    ((16, 32, 32, 1), {}),  # the defaults at the default volume size
    ((3, 8, 8, 1), TINY),
    ((5, 16, 12, 1), {**TINY, "cell": "lstm", "bidirectional": False}),
])
def test_recurrent_gives_probabilities_and_slice_weights(shape, options):
    model = recurrent(shape, 3, **options)
    x = volumes(4, shape)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    weights = slice_weights(model, x)
    assert weights.shape == (4, shape[0]) and (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("logits").units == 3


@pytest.mark.parametrize("bidirectional", [True, False])
def test_slice_weights_are_the_softmax_of_the_slice_scores(bidirectional):
    """Independently of `slice_attention`: softmax over slices of w . h_s + b, from the
    recurrent layer's output h and the score layer's weights (made large, so the weights
    are far from uniform and a wrong axis would show)."""
    import keras

    model = recurrent((6, 8, 8, 1), 2, bidirectional=bidirectional, **TINY)
    score = model.get_layer("slice_score")
    kernel, bias = score.get_weights()
    score.set_weights([np.random.default_rng(1).normal(0, 200, kernel.shape), bias + 0.3])
    # Slices of unequal brightness, so their features (and scores) differ.
    x = volumes(5, (6, 8, 8, 1), seed=2) * np.arange(6, dtype=np.float32)[:, None, None, None]
    h = keras.Model(model.inputs, model.get_layer("sequence").output).predict(x, verbose=0)
    assert h.shape == (5, 6, 8 if bidirectional else 4)
    kernel, bias = score.get_weights()
    s = h @ kernel[:, 0] + bias[0]
    expected = np.exp(s - s.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = slice_weights(model, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(got - 1 / 6).max() > 0.05  # not uniform: the comparison means something
    # The pooled features are the weighted sum of the slices' features.
    pooled = keras.Model(model.inputs, model.get_layer("pooled").output).predict(x, verbose=0)
    np.testing.assert_allclose(pooled, np.einsum("ns,nsf->nf", expected, h), rtol=1e-4,
                               atol=1e-5)


def test_slice_weights_need_a_slice_attention_model():
    with pytest.raises(ValueError, match="no 'slice_attention' layer"):
        slice_weights(cnn3d((4, 8, 8, 1), 2, blocks=1, filters=2), volumes(1, (4, 8, 8, 1)))


@pytest.mark.parametrize("shape, options", [
    ((16, 32, 32, 1), {}),
    ((3, 8, 8, 1), {"blocks": 1, "filters": 2, "dropout": 0.0}),
    ((2, 4, 4, 1), {"blocks": 4, "filters": 2}),  # more blocks than halvings: "same" pools
])
def test_cnn3d_gives_probabilities(shape, options):
    model = cnn3d(shape, 4, **options)
    probabilities = model.predict(volumes(3, shape), verbose=0)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    last = options.get("blocks", 3)
    assert model.get_layer(f"block{last}_conv").output.shape[-1] == \
        options.get("filters", 8) * 2 ** (last - 1)


def test_front_layers_come_first():
    import keras

    for build in (recurrent, cnn3d):
        front = [keras.layers.Rescaling(2.0, name="front_scale")]
        model = build((3, 8, 8, 1), 2, front=front, blocks=1, filters=2)
        scale = model.get_layer("front_scale")
        assert scale.input is model.inputs[0]
        assert model.layers[model.layers.index(scale) + 1].input is scale.output


@pytest.mark.parametrize("build, shape, classes, message", [
    (recurrent, (4, 8, 8, 1), 1, "at least 2 classes"),
    (recurrent, (4, 4, 4, 1), 2, "too small for 3 blocks"),
    (recurrent, (4, 8, 8, 1), 2, "cell: 'rnn'"),
    (cnn3d, (4, 8, 8, 1), 1, "at least 2 classes"),
    (cnn3d, (1, 8, 8, 1), 2, "too small"),
])
def test_bad_settings_are_one_line(build, shape, classes, message):
    options = {"cell": "rnn"} if "cell" in message else {}
    with pytest.raises(ValueError, match=message) as caught:
        build(shape, classes, **options)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("build, options", [
    (recurrent, {"cell": "lstm", **TINY}),
    (recurrent, {"cell": "gru", "bidirectional": False, **TINY}),
    (cnn3d, {"blocks": 2, "filters": 2}),
])
def test_saved_models_reload_in_safe_mode(tmp_path, build, options):
    import keras

    model = build((4, 8, 8, 1), 3, **options)
    x = volumes(3, (4, 8, 8, 1))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    if build is recurrent:
        np.testing.assert_array_equal(slice_weights(loaded, x), slice_weights(model, x))


@pytest.mark.parametrize("module, build", [(recurrent_module, recurrent),
                                           (cnn3d_module, cnn3d)])
def test_options_declare_the_builders_defaults(module, build):
    """What the catalogue shows a teacher is what the builder does by default."""
    defaults = {name: p.default for name, p in inspect.signature(build).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name != "front"}
    assert checked(module.OPTIONS, {}) == {k: defaults[k] for k in module.OPTIONS}
    assert set(module.OPTIONS) == set(defaults) - {"name"}
    assert 3 <= module.ABOUT.count(". ") + 1 <= 6


def test_slice_attention_learns_which_slice_decides():
    """Volumes of dim noise; in the positive half one random slice is bright. Trained
    briefly, the model should classify them and put most weight on the bright slice."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, slices = 96, 6
    x = (0.2 + 0.05 * rng.standard_normal((n, slices, 8, 8, 1))).astype(np.float32)
    y = np.arange(n) % 2
    bright = rng.integers(0, slices, n)
    x[y == 1, bright[y == 1]] += 0.6
    model = recurrent((slices, 8, 8, 1), 2, units=8, filters=4, blocks=1, dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    accuracy = (model.predict(x, verbose=0).argmax(axis=1) == y).mean()
    assert accuracy >= 0.95
    weights = slice_weights(model, x[y == 1])
    hits = (weights.argmax(axis=1) == bright[y == 1]).mean()
    assert hits >= 0.8, (hits, weights[:4].round(2))
