"""The explanation engine on every kind of model: functional, Sequential, a nested backbone,
logit / softmax / separate-Softmax-layer / single-sigmoid / multi-label heads, two inputs,
an ONNX model (forward passes only) and a subclassed model (refused).

The Keras models are small CNNs trained here on real image crops (tests/trained.py); the
task is which shape (disk, ring, cross, square) is drawn somewhere on the crop.
Accuracies measured on 512 held-out crops: softmax 0.965; single sigmoid (ring vs disk)
0.986; multi-label 0.931 of the unit decisions right, 0.75 of the images all right.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.explain import METHODS, ExplainError, attribute, explain, last_spatial_layer
from core.explain.methods.attention.base import AttentionMethod
from tests import trained

KINDS = list(trained.KINDS)
CHEAP = {  # options that keep every method fast on 32x32 images
    "smoothgrad": {"samples": 4},
    "integrated-gradients": {"steps": 8},
    "scorecam": {"max_channels": 4},
    "rise": {"samples": 50},
}


@pytest.fixture(scope="module")
def images():
    """Three held-out crops, one shape each."""
    return trained.held_out().x[:3]


@pytest.fixture(scope="module")
def two_shapes():
    """Held-out crops with exactly two different shapes, in different quadrants."""
    data = trained.held_out_multi()
    rows = np.flatnonzero(data.present.sum(axis=1) == 2)[:16]
    return data.x[rows], data.present[rows], data.masks[rows]


def test_trained_models_learnt_the_task():
    """The accuracies quoted above, measured on held-out crops (so the maps mean something)."""
    data = trained.held_out()
    p = trained.kind("functional").predict(data.x, verbose=0)
    assert (p.argmax(axis=1) == data.label).mean() > 0.9  # measured 0.965
    binary = trained.held_out_binary()
    p = trained.kind("binary").predict(binary.x, verbose=0)[:, 0]
    assert ((p > 0.5) == (binary.label == trained.RING)).mean() > 0.95  # measured 0.986
    multi = trained.held_out_multi()
    p = trained.kind("multilabel").predict(multi.x, verbose=0)
    assert ((p > 0.5) == multi.present).mean() > 0.9  # measured 0.931


@pytest.mark.parametrize("kind", KINDS)
def test_the_automatic_layer_is_the_last_spatial_one(kind, images):
    model = trained.kind(kind)
    expected = trained.KINDS[kind][1]
    assert last_spatial_layer(model) == expected
    result = attribute(model, trained.inputs_for(kind, images[:1]), "gradcam")
    assert result.info["layer"] == expected


@pytest.mark.parametrize("kind", KINDS)
def test_a_layer_is_chosen_by_bare_name_or_by_path(kind, images):
    model, x = trained.kind(kind), trained.inputs_for(kind, images)
    path = "backbone/conv2" if kind == "nested" else "conv2"
    by_name = attribute(model, x, "gradcam", layer="conv2")
    by_path = attribute(model, x, "gradcam", layer=path)
    assert by_name.info["layer"] == by_path.info["layer"] == path
    np.testing.assert_array_equal(by_name.maps, by_path.maps)
    last = explain(model, x, "gradcam")
    assert np.abs(by_name.maps - last).max() > 0.1  # another layer, another map
    with pytest.raises(ExplainError, match="no spatial layer named 'nope'"):
        explain(model, x, "gradcam", layer="nope")


# The attention methods refuse these CNNs (tests/unit/test_attention.py runs them on a ViT).
CNN_METHODS = [name for name, m in METHODS.items() if not isinstance(m, AttentionMethod)]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_method_runs_on_every_kind_or_says_why_not(kind, method, images):
    model = trained.kind(kind)
    why = METHODS[method].refusal(model)
    if why is not None:
        assert method in ("attention-rollout", "attention-gradient") and "\n" not in why
        with pytest.raises(ExplainError, match="has no attention layers"):
            explain(model, trained.inputs_for(kind, images), method)
        return
    maps = explain(model, trained.inputs_for(kind, images), method,
                   **CHEAP.get(method, {}))
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    peaks = maps.reshape(3, -1).max(axis=1)
    # Each map is divided by its maximum, or all zero where nothing speaks for the class.
    assert np.all(np.isclose(peaks, 1.0) | (peaks == 0.0))
    assert peaks.max() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_another_target_gives_another_map(kind, images):
    model, x = trained.kind(kind), trained.inputs_for(kind, images)
    top = attribute(model, x, "gradcam")
    other = (np.asarray(top.info["target"]) + 1) % (2 if kind == "binary" else 4)
    assert not np.allclose(top.maps, explain(model, x, "gradcam", target=other), atol=0.05)
    assert top.info["target"] == [int(t) for t in top.info["target"]]


def test_each_target_points_at_its_own_shape(two_shapes):
    """Multi-label head, crops with two shapes: Grad-CAM for either present shape (the top
    one or the other) peaks within 5 px of that shape's centre. Measured on these first 16
    such crops: 16 of 16 for each (on the first 64: 64 and 63)."""
    x, present, masks = two_shapes
    model = trained.kind("multilabel")
    p = model.predict(x, verbose=0)
    shapes = [np.flatnonzero(row) for row in present]
    top = np.array([k[np.argmax(q[k])] for k, q in zip(shapes, p, strict=True)])
    other = np.array([k[np.argmin(q[k])] for k, q in zip(shapes, p, strict=True)])
    for target in (top, other):
        maps = explain(model, x, "gradcam", target=target)
        hits = 0
        for m, mask, k in zip(maps, masks, target, strict=True):
            row, col = np.unravel_index(m.argmax(), m.shape)
            rows, cols = np.nonzero(mask[k])
            hits += np.hypot(row - rows.mean(), col - cols.mean()) <= 5
        assert hits >= 15


@pytest.mark.parametrize("kind", ["sequential", "nested", "logits", "softmax-layer",
                                  "two-inputs"])
@pytest.mark.parametrize("method", CNN_METHODS)
def test_the_same_weights_give_the_same_maps_in_every_kind(kind, method, images):
    """Sequential, nested, logit head, a Softmax layer, and the two-input model with its
    second input at zero: the same network, so the same maps as the flat functional one
    (same targets: the predicted class; the random methods are seeded)."""
    options = CHEAP.get(method, {})
    reference = explain(trained.kind("functional"), images, method, **options)
    maps = explain(trained.kind(kind), trained.inputs_for(kind, images), method, **options)
    np.testing.assert_allclose(maps, reference, atol=2e-5)


def test_the_other_inputs_are_held_as_given(images):
    """Two-input model [meta, image]: meta adds META_GAIN x one-hot to the scores. It moves
    the predicted class (the default target) and the probabilities that perturbation
    methods read, but not dS/d(image), so gradient maps for a fixed target stay equal."""
    model = trained.kind("two-inputs")
    reference = trained.kind("functional")
    top = attribute(reference, images, "gradcam").info["target"]
    push = (np.asarray(top) + 1) % 4
    meta = 10 * np.eye(4, dtype=np.float32)[push]  # +30 to another class's score: it wins
    x = [meta, images]
    assert model.predict(x, verbose=0).argmax(axis=1).tolist() == push.tolist()
    assert attribute(model, x, "gradcam").info["target"] == push.tolist()
    for method in ("gradcam", "saliency", "integrated-gradients"):
        np.testing.assert_allclose(
            explain(model, x, method, target=top, **CHEAP.get(method, {})),
            explain(reference, images, method, target=top, **CHEAP.get(method, {})),
            atol=2e-5, err_msg=method)
    # Occlusion reads p(target), which the meta input changes: another map.
    shifted = explain(model, x, "occlusion", target=top)
    assert not np.allclose(shifted, explain(reference, images, "occlusion", target=top),
                           atol=0.05)
    with pytest.raises(ExplainError, match="takes 2 inputs, 1 given"):
        explain(model, images, "gradcam")


def test_single_sigmoid_targets_are_the_two_signs_of_one_score(images):
    """One sigmoid unit z: target 1 scores z, target 0 scores -z. Grad-CAM at conv1 (the
    input's 32x32, so no resizing blurs the sign change): the raw maps are opposite, so after
    the ReLU where one is positive the other is zero. Saliency (|gradient|) is the same."""
    model = trained.kind("binary")
    data = trained.held_out_binary()
    x = data.x[:3]
    ones = explain(model, x, "gradcam", target=1, layer="conv1")
    zeros = explain(model, x, "gradcam", target=0, layer="conv1")
    assert np.all(ones * zeros == 0)
    # Between them they cover the image (measured: every pixel; the ring's share is 0.029
    # of the pixels on these crops, the disk's 0.971). At conv3 (8x8, resized) the two
    # maps overlap on 20% of the pixels, which is why conv1 is used here.
    assert ((ones > 0) | (zeros > 0)).mean() > 0.99
    assert (ones > 0).mean() > 0.01 and (zeros > 0).mean() > 0.5
    np.testing.assert_allclose(explain(model, x, "saliency", target=1),
                               explain(model, x, "saliency", target=0), atol=1e-6)
    change = {t: attribute(model, x, "integrated-gradients", target=t, steps=8)
              .info["score_change"] for t in (0, 1)}
    np.testing.assert_allclose(change[0], -np.asarray(change[1]), rtol=1e-5)
    # Two classes: target 1 is predicted exactly where p = sigmoid(z) > 0.5.
    p = model.predict(x, verbose=0)[:, 0]
    assert attribute(model, x, "gradcam").info["target"] == (p > 0.5).astype(int).tolist()


@pytest.mark.parametrize("kind", ["functional", "multilabel"])
def test_gradients_act_on_the_score_before_the_squashing(kind, images):
    """The score is the logit, computed here by hand from the same weights (pooled features
    times the last Dense's kernel, plus its bias), not the probability.

    Saliency equals |d logit / d x| (largest over the channels, divided by its maximum)
    from a plain GradientTape; for the softmax head it is not the probability's gradient.
    (A sigmoid unit's gradient is the logit's times a number per image, which the
    normalisation hides: there, Integrated Gradients' score change tells them apart.)"""
    import keras
    import tensorflow as tf

    model = trained.kind(kind)
    target = np.array([0, 1, 2])
    features = keras.Model(model.inputs, model.get_layer("pool").output)
    kernel, bias = (w.numpy() for w in model.get_layer("scores").weights)

    def logit(x):
        return tf.gather(tf.matmul(features(x), kernel) + bias, target, axis=1, batch_dims=1)

    x = tf.constant(images)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        chosen = logit(x)
        squashed = tf.gather(model(x), target, axis=1, batch_dims=1)

    def saliency(score):
        g = np.abs(tape.gradient(score, x).numpy()).max(axis=-1)
        return g / g.reshape(3, -1).max(axis=1)[:, None, None]

    ours = explain(model, images, "saliency", target=target)
    np.testing.assert_allclose(ours, saliency(chosen), atol=1e-5)
    if kind == "functional":
        assert np.abs(ours - saliency(squashed)).max() > 0.05
    change = attribute(model, images, "integrated-gradients", target=target, steps=8,
                       baseline=0.0).info["score_change"]
    expected = logit(x) - logit(tf.zeros_like(x))
    np.testing.assert_allclose(change, expected.numpy(), rtol=1e-4, atol=1e-4)
    squashed_change = squashed - tf.gather(model(tf.zeros_like(x)), target, axis=1,
                                           batch_dims=1)
    assert np.abs(np.asarray(change) - squashed_change.numpy()).max() > 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_explaining_leaves_the_model_as_it_was(kind, images):
    """Every method, then: the final activation is still in place, and the outputs are the
    same (Guided Backprop's ReLU and the stepped-over softmax were swapped in only while
    the explanation functions were traced)."""
    model, x = trained.kind(kind), trained.inputs_for(kind, images)
    before = model.predict(x, verbose=0)
    for method in ("gradcam", "guided-backprop", "integrated-gradients", "scorecam"):
        explain(model, x, method, **CHEAP.get(method, {}))
    name = "image_scores" if kind == "two-inputs" else "scores"
    assert model.get_layer(name).activation.__name__ == trained.KINDS[kind][2]
    convs = model.get_layer("backbone") if kind == "nested" else model
    for layer in trained.CONVS:
        assert convs.get_layer(layer).activation.__name__ == "relu"
    np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-6)


@pytest.fixture(scope="module")
def onnx_classifier():
    from core import models

    return models.load("braintumor-vgg16")  # the card's default runtime: onnxruntime


def test_an_onnx_model_runs_the_forward_only_methods(onnx_classifier, brain_samples):
    from core.models.inputs import prepare
    from core.studies import open_study

    assert onnx_classifier.keras_model is None
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    x = prepare(open_study(sample.path), onnx_classifier.card.input_spec).array[None]
    occlusion = attribute(onnx_classifier, x, "occlusion", patch=0.5, stride=1.0)
    assert occlusion.info["patches"] == 4 and occlusion.info["target"] == [0]  # glioma
    rise = explain(onnx_classifier, x, "rise", samples=4, batch=4)
    for maps in (occlusion.maps, rise):
        assert maps.shape == (1, 240, 240) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    for method in ("gradcam", "saliency"):
        with pytest.raises(ExplainError, match="needs gradients") as error:
            explain(onnx_classifier, x, method)
        assert "\n" not in str(error.value)


def test_a_subclassed_model_is_refused_clearly(images):
    import keras

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(self.pool(self.conv(x)))

    model = Subclassed()
    model(images)  # built, but it has no layer graph
    with pytest.raises(ExplainError, match="subclassed") as error:
        explain(model, images, "gradcam")
    assert "\n" not in str(error.value)
