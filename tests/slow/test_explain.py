"""Every explanation method on the real nested-Xception model (and the VGG16 port)."""

from __future__ import annotations

import numpy as np
import pytest

from core import models
from core.explain import METHODS, ExplainError, attribute, explain, explain_input, spatial_layers
from core.explain.maps import normalise, resize_maps
from core.models.inputs import prepare
from core.studies import open_study


def test_last_layer_is_found_inside_the_nested_backbone(xception):
    layers = spatial_layers(xception.keras_model)
    assert layers[-1] == "xception/block14_sepconv2_act"
    assert len(layers) > 30


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "hirescam"])
def test_map_properties(xception, glioma_input, method):
    result = explain_input(xception, glioma_input, method)
    assert result.label == "glioma"
    assert result.map.shape == (512, 512) and result.map.dtype == np.float32
    assert result.map.min() >= 0.0 and result.map.max() == pytest.approx(1.0)
    assert result.map.std() > 0.05


def test_map_changes_with_the_target_class(xception, glioma_input):
    maps = {t: explain_input(xception, glioma_input, "gradcam", t).map
            for t in ("glioma", "meningioma", "notumor", "pituitary")}
    # Measured on Te-gl_0010: glioma vs meningioma r = 0.80, vs notumor r = -0.27.
    assert np.corrcoef(maps["glioma"].ravel(), maps["meningioma"].ravel())[0, 1] < 0.9
    assert np.corrcoef(maps["glioma"].ravel(), maps["notumor"].ravel())[0, 1] < 0.0
    # No positive evidence at all for pituitary: an empty map, and it says so.
    assert explain_input(xception, glioma_input, "gradcam", "pituitary").empty
    assert not explain_input(xception, glioma_input, "gradcam", "glioma").empty


def test_gradcam_plus_plus_is_barely_class_specific(xception, glioma_input):
    """Grad-CAM++ maps of different classes are alike (r = 0.996 measured), yet not equal."""
    glioma = explain_input(xception, glioma_input, "gradcam++", "glioma").map
    meningioma = explain_input(xception, glioma_input, "gradcam++", "meningioma").map
    assert np.abs(glioma - meningioma).mean() > 0.01


def test_cams_equal_a_plain_gradient_tape(xception, glioma_input):
    """Independent reference: backbone to the layer, then the head applied by hand."""
    import keras
    import tensorflow as tf

    model = xception.keras_model
    backbone = model.get_layer("xception")
    # block14_sepconv2_act is the backbone's last layer: the head starts from it.
    to_layer = keras.Model(backbone.inputs, backbone.get_layer("block14_sepconv2_act").output)
    head = [model.get_layer(n) for n in ("global_average_pooling2d", "dense", "dense_1")]
    x = tf.constant(glioma_input.array[None])
    activations = to_layer([x], training=False)
    with tf.GradientTape() as tape:
        tape.watch(activations)
        features = activations
        for layer in head:
            features = layer(features)
        score = features[:, 0]
    np.testing.assert_allclose(features.numpy(), xception.outputs(x.numpy()), atol=1e-4)
    a, g = activations.numpy(), tape.gradient(score, activations).numpy()
    references = {
        # Grad-CAM: channel weights are the spatially averaged gradients.
        "gradcam": np.einsum("nhwk,nk->nhw", a, g.mean(axis=(1, 2))),
        # Layer-CAM: each location's activation weighted by its own positive gradient.
        "layercam": (np.maximum(g, 0) * a).sum(axis=-1),
        # HiRes-CAM: gradient times activation, element-wise, summed over channels.
        "hirescam": (g * a).sum(axis=-1),
    }
    for method, reference in references.items():
        expected = normalise(resize_maps(np.maximum(reference, 0), 150, 150))
        ours = explain(model, glioma_input.array[None], method, target=[0])
        np.testing.assert_allclose(ours, expected, atol=1e-4, err_msg=method)


def test_hirescam_equals_gradcam_only_right_before_global_average_pooling(xception,
                                                                           glioma_input):
    """Draelos and Carin's point: when the layer feeds global average pooling, dy/dA_ij is
    the same at every location, so HiRes-CAM is Grad-CAM; deeper in, they differ."""
    model, x = xception.keras_model, glioma_input.array[None]
    last = {m: explain(model, x, m, target=[0]) for m in ("gradcam", "hirescam")}
    np.testing.assert_allclose(last["gradcam"], last["hirescam"], atol=1e-5)
    inner = {m: explain(model, x, m, target=[0], layer="block13_sepconv2_act")
             for m in ("gradcam", "hirescam", "layercam")}
    assert np.abs(inner["gradcam"] - inner["hirescam"]).max() > 0.05
    assert np.abs(inner["hirescam"] - inner["layercam"]).max() > 0.05


def test_batch_and_explicit_layer(xception, brain_samples):
    c = xception.card
    batch = np.stack([prepare(open_study(s.path), c.input_spec).array for s in brain_samples[:3]])
    maps = explain(xception.keras_model, batch, "gradcam", layer="block13_sepconv2_act")
    assert maps.shape == (3, 150, 150) and maps.dtype == np.float32
    assert not np.allclose(maps[0], maps[1])


def test_bad_requests(xception, glioma_input):
    with pytest.raises(ExplainError, match="no spatial layer named 'nope'"):
        explain_input(xception, glioma_input, "gradcam", layer="nope")
    with pytest.raises(ExplainError, match="unknown label 'cat'"):
        explain_input(xception, glioma_input, "gradcam", target="cat")
    with pytest.raises(ExplainError, match="unknown method 'lime'"):
        explain(xception.keras_model, glioma_input.array[None], "lime")
    vgg = models.load("braintumor-vgg16", "onnx")
    with pytest.raises(ExplainError, match="runs on onnxruntime"):
        explain_input(vgg, prepare(open_study(glioma_input_path()), vgg.card.input_spec))


def glioma_input_path():
    from core.models.samples import samples

    return samples(models.card("braintumor-vgg16"))[0].path


@pytest.fixture(scope="module")
def glioma_path():
    return glioma_input_path()


# -- every method on the real nested Xception --------------------------------------------

CHEAP = {
    "scorecam": {"max_channels": 8},
    "smoothgrad": {"samples": 4},
    "integrated-gradients": {"steps": 8},
    "occlusion": {"patch": 0.25},
    "rise": {"samples": 64},
}


@pytest.mark.parametrize("method", ["scorecam", "saliency", "smoothgrad",
                                    "integrated-gradients", "guided-backprop",
                                    "guided-gradcam", "occlusion", "rise"])
def test_every_method_maps_the_study(xception, glioma_input, method):
    seen = []
    result = explain_input(xception, glioma_input, method,
                           progress=lambda done, text: seen.append(done), **CHEAP.get(method, {}))
    assert result.label == "glioma" and result.target == 0
    assert result.map.shape == (512, 512) and result.map.dtype == np.float32
    assert result.map.min() >= 0.0 and result.map.max() == pytest.approx(1.0)
    assert result.input_map.shape == (150, 150)
    # Every option is recorded with the value used: the defaults, the cheap ones given.
    assert set(result.info["options"]) == set(METHODS[method].options)
    assert CHEAP.get(method, {}).items() <= result.info["options"].items()
    assert (result.layer is not None) == METHODS[method].uses_layer
    assert seen == sorted(seen)  # progress, where reported, only moves forward
    if method in ("scorecam", "smoothgrad", "integrated-gradients", "occlusion", "rise"):
        assert seen and seen[-1] == pytest.approx(1.0)


def test_options_are_checked(xception, glioma_input):
    with pytest.raises(ExplainError, match="smoothgrad: unknown option 'steps'"):
        explain_input(xception, glioma_input, "smoothgrad", steps=3)
    with pytest.raises(ExplainError, match="integrated-gradients: steps must be at least 2"):
        explain_input(xception, glioma_input, "integrated-gradients", steps=1)
    with pytest.raises(ExplainError, match="gradcam: unknown option 'samples'"):
        explain_input(xception, glioma_input, "gradcam", samples=3)


def test_random_methods_are_reproducible_by_seed(xception, glioma_input):
    x = glioma_input.array[None]
    model = xception.keras_model
    a = explain(model, x, "smoothgrad", samples=4, seed=1)
    b = explain(model, x, "smoothgrad", samples=4, seed=1)
    c = explain(model, x, "smoothgrad", samples=4, seed=2)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01


def test_scorecam_top_channels_and_all_channels(xception, glioma_input):
    """At a 32-channel layer, max_channels=32 and 0 (all) are the same computation;
    the top-8 (highest variance) variant is an approximation of it."""
    model, x = xception.keras_model, glioma_input.array[None]
    layer = "block1_conv1_act"
    every = attribute(model, x, "scorecam", layer=layer, max_channels=0)
    top32 = attribute(model, x, "scorecam", layer=layer, max_channels=32)
    top8 = attribute(model, x, "scorecam", layer=layer, max_channels=8)
    assert every.info["channels"] == 32 and top8.info["channels"] == 8
    np.testing.assert_allclose(every.maps, top32.maps, atol=1e-6)
    assert np.abs(every.maps - top8.maps).max() > 0.01


def test_integrated_gradients_reports_completeness(xception, glioma_input):
    coarse = explain_input(xception, glioma_input, "integrated-gradients", steps=8)
    fine = explain_input(xception, glioma_input, "integrated-gradients", steps=128)
    # sum of attributions vs F(x) - F(black): the gap shrinks as the path is sampled finer.
    assert fine.info["completeness_error"][0] < coarse.info["completeness_error"][0]
    assert fine.info["score_change"][0] == pytest.approx(coarse.info["score_change"][0],
                                                         rel=1e-4)


def test_guided_backprop_leaves_the_ordinary_gradient_alone(xception, glioma_input):
    """The guided ReLU is swapped in only while its own function is traced."""
    model, x = xception.keras_model, glioma_input.array[None]
    before = explain(model, x, "saliency", target=[0])
    guided = explain(model, x, "guided-backprop", target=[0])
    after = explain(model, x, "saliency", target=[0])
    np.testing.assert_array_equal(before, after)
    assert np.abs(guided - before).max() > 0.1
    import keras

    fresh = keras.Model(model.inputs, model.outputs)  # traced after the guided one
    np.testing.assert_allclose(explain(fresh, x, "saliency", target=[0]), before, atol=1e-5)


def test_gradient_methods_use_the_keras_port_of_an_onnx_model(glioma_path):
    from core.explain import explainable

    c = models.card("braintumor-vgg16")
    classifier = explainable(c.id, "gradcam")
    assert classifier.keras_model is not None
    assert explainable(c.id, "occlusion").keras_model is None  # stays on onnxruntime
    model_input = prepare(open_study(glioma_path), c.input_spec)
    result = explain_input(classifier, model_input, "gradcam")
    assert result.layer == "block5_pool" and result.map.std() > 0.05  # the last spatial one


def test_occlusion_on_onnx_matches_the_keras_port(glioma_path):
    """Forward-only methods run on onnxruntime; the port gives the same map."""
    from core.explain import explainable

    c = models.card("braintumor-vgg16")
    model_input = prepare(open_study(glioma_path), c.input_spec)
    on_onnx = explain_input(explainable(c.id, "occlusion"), model_input, "occlusion",
                            patch=0.25, stride=1.0)
    on_keras = explain_input(models.load(c.id, "keras"), model_input, "occlusion", patch=0.25,
                             stride=1.0)
    np.testing.assert_allclose(on_onnx.input_map, on_keras.input_map, atol=1e-3)
