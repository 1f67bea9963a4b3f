"""Explaining a segmentation: Seg-Grad-CAM's region target (Vinogradova et al. 2020) through
every method, on a tiny U-Net trained here to find a bright square (label 1) and a dark
disk (label 2) on noise, and on a per-pixel network whose logits at a pixel depend on that
pixel alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.explain import METHODS, ExplainError, RegionTarget, attribute, explain
from core.explain.backend.regions import region_model
from core.explain.backend.scores import ForwardModel, as_score_model
from core.explain.maps import normalise, resize_maps

SIZE = 32
# Cheap settings, so every method runs in a second or two on a 2-core CPU.
QUICK = {"scorecam": {"max_channels": 8}, "smoothgrad": {"samples": 4},
         "integrated-gradients": {"steps": 16}, "rise": {"samples": 64},
         "occlusion": {"patch": 0.25}}


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image (32, 32, 1), labels (32, 32)): a bright square (1) and a dark disk (2)."""
    image = (0.5 + 0.1 * rng.standard_normal((SIZE, SIZE))).astype(np.float32)
    labels = np.zeros((SIZE, SIZE), np.uint8)
    top, left = rng.integers(2, 14, size=2)
    labels[top:top + 8, left:left + 8] = 1
    disk = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(disk, (int(rng.integers(21, 27)), int(rng.integers(21, 27))), 5, 1, -1)
    labels[disk.astype(bool) & (labels == 0)] = 2
    image[labels == 1] += 0.4
    image[labels == 2] -= 0.4
    return image[..., None], labels


@pytest.fixture(scope="module")
def trained():
    """The tiny U-Net after 80 steps (seeded), and one scene it has not seen."""
    import keras

    from core.nets.unet import unet

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    pairs = [scene(rng) for _ in range(128)]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([p[1] for p in pairs])
    model = unet((SIZE, SIZE, 1), 3, filters=4, depth=2)
    # Batch normalisation's running statistics at Keras' momentum 0.99 are still far
    # from the data's after 80 steps, and the model predicted nothing at inference.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=keras.optimizers.Adam(0.003),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    image, labels = scene(np.random.default_rng(99))
    return model, image[None], labels


@pytest.fixture(scope="module")
def per_pixel():
    """A segmentation network of 1x1 convolutions: the logits at a pixel depend on that
    pixel alone, so a region's score depends on nothing outside it."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(6, 1, activation="relu", name="features")
    logits = keras.layers.Conv2D(3, 1, name="logits")
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(
        logits(features(inputs))))
    # Weights chosen so that label 2's logit grows with the pixel's value: its maps are
    # positive inside the region whatever their sign convention.
    features.set_weights([np.linspace(0.5, 1.0, 6, dtype=np.float32).reshape(1, 1, 1, 6),
                          np.full(6, 0.1, np.float32)])
    kernel = np.zeros((1, 1, 6, 3), np.float32)
    kernel[..., 2] = 1.0
    logits.set_weights([kernel, np.zeros(3, np.float32)])
    return model


def box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    region = np.zeros((SIZE, SIZE), bool)
    region[top:bottom, left:right] = True
    return region


def test_the_model_learnt_the_task(trained):
    model, image, labels = trained
    predicted = model.predict(image, verbose=0)[0].argmax(-1)
    for label in (1, 2):
        dice = 2 * ((predicted == label) & (labels == label)).sum() / (
            (predicted == label).sum() + (labels == label).sum())
        assert dice > 0.8, (label, dice)


@pytest.mark.parametrize("layer", ["bottleneck_conv2", "dec2_conv2", "dec1_conv2"])
def test_seg_grad_cam_equals_a_plain_gradient_tape(trained, layer):
    import keras
    import tensorflow as tf

    model, image, labels = trained
    region = labels == 1
    inner = keras.Model(model.input, [model.get_layer(layer).output,
                                       model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        activations, logits = inner(image, training=False)
        # pytorch-grad-cam's SemanticSegmentationTarget: (output[c] * mask).sum()
        score = tf.reduce_sum(logits[..., 1] * region.astype(np.float32))
    gradients = tape.gradient(score, activations).numpy()
    weights = gradients.mean(axis=(1, 2))  # Grad-CAM's pooled gradients
    cam = np.maximum(np.einsum("nhwk,nk->nhw", activations.numpy(), weights), 0)
    expected = normalise(resize_maps(cam, SIZE, SIZE))

    got = explain(model, image, "gradcam", target=RegionTarget(1, region), layer=layer)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert cam.max() > 0  # a trained model: the map is not empty


def test_the_layers_offered_and_the_default(trained):
    from core.explain import segmentation_layers

    model, image, labels = trained
    assert segmentation_layers(model) == ["bottleneck_conv2", "dec2_conv2", "dec1_conv2"]
    result = attribute(model, image, "gradcam", target=RegionTarget(1, labels == 1))
    assert result.info["layer"] == "bottleneck_conv2"
    assert result.info["region_pixels"] == [int((labels == 1).sum())]


def test_layers_offered_without_the_unet_names(per_pixel):
    from core.explain import segmentation_layers

    # No bottleneck by name, one resolution: the last layer before the logits.
    assert segmentation_layers(per_pixel) == ["features"]


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated-gradients",
                                    "guided-backprop", "hirescam", "layercam",
                                    "occlusion"])
def test_nothing_outside_what_the_region_depends_on(per_pixel, method):
    rng = np.random.default_rng(3)
    image = rng.random((1, SIZE, SIZE, 1)).astype(np.float32)
    region = box(8, 10, 20, 24)
    options = {"occlusion": {"patch": 0.01, "stride": 1.0},  # one pixel at a time
               "smoothgrad": {"samples": 4}, "integrated-gradients": {"steps": 16}}
    maps = explain(per_pixel, image, method, target=RegionTarget(2, region),
                   layer="features" if method in ("hirescam", "layercam") else None,
                   **options.get(method, {}))
    assert maps[0][~region].max() == 0
    assert maps[0][region].max() == 1


def test_a_new_region_or_label_does_not_retrace(trained):
    model, image, labels = trained
    first = RegionTarget(1, labels == 1)
    explain(model, image, "gradcam", target=first)
    explain(model, image, "saliency", target=first)
    functions = model.__dict__["_medlens_compiled"]
    kept = dict(functions)
    counts = {key: fn.experimental_get_tracing_count() for key, fn in kept.items()}
    for target in (RegionTarget(2, labels == 2), RegionTarget(1, box(0, 0, 5, 5)),
                   RegionTarget(0)):
        explain(model, image, "gradcam", target=target)
        explain(model, image, "saliency", target=target)
    # Two images at once: another batch size, the same trace.
    explain(model, np.concatenate([image, image]), "gradcam",
            target=[RegionTarget(1, labels == 1), RegionTarget(2, labels == 2)])
    assert set(functions) == set(kept)
    assert {key: fn.experimental_get_tracing_count() for key, fn in kept.items()} == counts
    assert set(counts.values()) == {1}


def test_the_map_follows_the_label_and_the_region(trained):
    model, image, labels = trained
    square = explain(model, image, "hirescam", target=RegionTarget(1, labels == 1),
                     layer="dec1_conv2")[0]
    disk = explain(model, image, "hirescam", target=RegionTarget(2, labels == 2),
                   layer="dec1_conv2")[0]
    # Each map puts more of its mass on its own object than on the other one.
    assert square[labels == 1].sum() > square[labels == 2].sum()
    assert disk[labels == 2].sum() > disk[labels == 1].sum()


def test_two_images_explained_as_one_at_a_time(trained):
    model, image, labels = trained
    other = image[:, ::-1].copy()
    targets = [RegionTarget(1, labels == 1), RegionTarget(1, labels[::-1] == 1)]
    # (SmoothGrad draws its noise for the whole batch at once: another batch, other noise.)
    for method in ("gradcam", "integrated-gradients", "occlusion", "rise"):
        both = explain(model, np.concatenate([image, other]), method, target=targets,
                       **QUICK.get(method, {}))
        one = explain(model, other, method, target=targets[1], **QUICK.get(method, {}))
        np.testing.assert_allclose(both[1], one[0], atol=1e-4)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_explains_a_region_or_says_why_not(trained, method):
    model, image, labels = trained
    target = RegionTarget(1, labels == 1)
    if METHODS[method].region_refusal is None:
        result = attribute(model, image, method, target=target, **QUICK.get(method, {}))
        assert result.maps.shape == (1, SIZE, SIZE)
        assert np.isfinite(result.maps).all() and result.maps.max() == 1
        assert result.target.tolist() == [1]
    else:
        with pytest.raises(ExplainError) as error:
            attribute(model, image, method, target=target)
        assert "\n" not in str(error.value) and METHODS[method].region_refusal in str(error.value)


def test_a_refusal_is_data_on_the_method(trained, monkeypatch):
    model, image, labels = trained
    monkeypatch.setattr(METHODS["rise"], "region_refusal", "it cannot, for this test")
    assert not METHODS["rise"].explains_regions
    with pytest.raises(ExplainError, match="^rise cannot explain a region of a segmentation: "
                                           "it cannot, for this test$"):
        explain(model, image, "rise", target=RegionTarget(1))


def test_the_sigmoid_unit_is_two_labels():
    import keras

    from core.nets.unet import unet

    keras.utils.set_random_seed(2)
    model = unet((SIZE, SIZE, 1), 1, filters=4, depth=2)
    image = np.random.default_rng(4).random((1, SIZE, SIZE, 1)).astype(np.float32)
    regions = region_model(as_score_model(model))
    region = box(4, 4, 20, 20).astype(np.float32)[None]
    inputs = regions.inputs(image, region)
    positive, scores = regions.input_gradients(inputs, np.array([1]))
    negative, _ = regions.input_gradients(inputs, np.array([0]))
    np.testing.assert_allclose(negative, -positive, atol=1e-6)
    # Label 1 scores z, label 0 scores -z, each summed over the region.
    assert scores[0, 0] == pytest.approx(-scores[0, 1])
    assert explain(model, image, "saliency", target=RegionTarget(0)).shape == (1, SIZE, SIZE)


def test_a_forward_only_segmenter_takes_perturbation_methods(trained):
    model, image, labels = trained
    # As onnxruntime would run it: probabilities (N, h, w, labels), no gradients.
    forward = ForwardModel(predict=lambda x: model.predict(x, verbose=0),
                           image_shape=(SIZE, SIZE, 1), n_classes=3, segmentation=True)
    target = RegionTarget(1, labels == 1)
    maps = explain(forward, image, "occlusion", target=target, patch=0.25)
    assert maps.shape == (1, SIZE, SIZE) and maps.max() == 1
    with pytest.raises(ExplainError, match="^gradcam needs gradients, which this model does "
                                           "not give"):
        explain(forward, image, "gradcam", target=target)


@pytest.mark.parametrize("target, message", [
    (None, "a segmentation model needs a target"),
    (RegionTarget(3), "label 3 out of range (the model has 3 labels)"),
    (RegionTarget(1, np.ones((16, 16), bool)), "region of shape (16, 16), the model's "
                                              "input is 32 x 32"),
    (RegionTarget(1, np.zeros((SIZE, SIZE), bool)), "the region is empty"),
])
def test_bad_region_targets_are_one_line_errors(trained, target, message):
    model, image, _ = trained
    with pytest.raises(ExplainError) as error:
        explain(model, image, "gradcam", target=target)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_region_on_a_classifier_is_refused():
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    image = np.zeros((1, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ExplainError, match="^a region target needs a segmentation model"):
        explain(classifier, image, "gradcam", target=RegionTarget(1))
    with pytest.raises(ExplainError, match="^a region target needs a segmentation model"):
        explain(classifier, image, "gradcam", target=[RegionTarget(1)])


def test_a_box_region():
    target = RegionTarget.box(2, (4, 6, 10, 8), (SIZE, SIZE))  # x0, y0, x1, y1
    assert target.label == 2 and target.region.sum() == 12
    assert target.region[6:8, 4:10].all()
    with pytest.raises(ExplainError, match="^box 4,6,40,8 is not inside the 32 x 32 input"):
        RegionTarget.box(1, (4, 6, 40, 8), (SIZE, SIZE))
