"""The front layers: preprocessing against numpy/scipy/OpenCV references, gradients through
them, safe-mode reloading, and augmentation that acts only in training."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from core.nets.preprocessing import (
    AUGMENTATION,
    AUGMENTATION_NOTE,
    Denoise,
    Normalise,
    VolumeContrast,
    front,
    preview,
)

pytestmark = pytest.mark.unit

OFF = {name: (0.0 if option.kind is float else "none") for name, option in AUGMENTATION.items()}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, 12, 10, 1)).astype(np.float32)


def test_normalise_matches_numpy(images):
    z = np.asarray(Normalise("zscore")(images))
    m = np.asarray(Normalise("minmax")(images))
    for i, img in enumerate(images):
        np.testing.assert_allclose(z[i], (img - img.mean()) / np.sqrt(img.var() + 1e-6),
                                   atol=1e-5)
        np.testing.assert_allclose(m[i], (img - img.min()) / (img.max() - img.min() + 1e-6),
                                   atol=1e-6)


@pytest.mark.parametrize("size", [3, 5])
def test_gaussian_matches_opencv(images, size):
    out = np.asarray(Denoise("gaussian", size, sigma=1.2)(images))
    for i, img in enumerate(images):
        ref = cv2.GaussianBlur(img[..., 0], (size, size), 1.2,
                               borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(out[i, ..., 0], ref, atol=1e-5)


@pytest.mark.parametrize("size", [3, 5])
def test_median_matches_scipy(images, size):
    out = np.asarray(Denoise("median", size)(images))
    for i, img in enumerate(images):
        ref = ndimage.median_filter(img[..., 0], size=size, mode="mirror")
        np.testing.assert_allclose(out[i, ..., 0], ref, atol=1e-7)


def _bilateral(img: np.ndarray, size: int, sigma: float, sigma_range: float) -> np.ndarray:
    """Tomasi and Manduchi's eq. 3, pixel by pixel, edges mirrored."""
    r = size // 2
    padded = np.pad(img, r, mode="reflect")
    out = np.empty_like(img)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            window = padded[y:y + size, x:x + size]
            dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
            w = (np.exp(-(dy**2 + dx**2) / (2 * sigma**2))
                 * np.exp(-(window - img[y, x]) ** 2 / (2 * sigma_range**2)))
            out[y, x] = (w * window).sum() / w.sum()
    return out


def test_bilateral_matches_its_equation(images):
    out = np.asarray(Denoise("bilateral", 3, sigma=1.5, sigma_range=0.2)(images))
    for i, img in enumerate(images):
        np.testing.assert_allclose(out[i, ..., 0], _bilateral(img[..., 0], 3, 1.5, 0.2),
                                   atol=1e-5)


def test_bilateral_keeps_an_edge_that_gaussian_blurs():
    step = np.zeros((1, 8, 8, 1), np.float32)
    step[:, :, 4:] = 1.0
    bilateral = np.asarray(Denoise("bilateral", 3, sigma=1.0, sigma_range=0.1)(step))
    gaussian = np.asarray(Denoise("gaussian", 3, sigma=1.0)(step))
    assert np.abs(bilateral - step).max() < 1e-3
    assert np.abs(gaussian - step).max() > 0.1


def test_volumes_are_filtered_slice_by_slice(images):
    volume = np.stack([images, images[::-1]], axis=1)  # (3, 2, h, w, 1)
    out = np.asarray(Denoise("median", 3)(volume))
    np.testing.assert_allclose(out[:, 0], np.asarray(Denoise("median", 3)(images)))
    z = np.asarray(Normalise("zscore")(volume))
    assert np.allclose(z.reshape(3, -1).mean(axis=1), 0, atol=1e-5)


@pytest.mark.parametrize("layer", [Denoise("median", 3), Denoise("bilateral", 3),
                                   Denoise("gaussian", 3), Normalise("zscore"),
                                   Normalise("minmax")], ids=lambda layer: layer.name)
def test_gradients_reach_the_input(images, layer):
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        score = tf.reduce_sum(out * tf.linspace(0.0, 1.0, 10)[None, None, :, None])
    grad = tape.gradient(score, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0


def test_unknown_filter_or_mode_is_one_line():
    with pytest.raises(ValueError, match="denoise: 'box'"):
        Denoise("box")
    with pytest.raises(ValueError, match="odd"):
        Denoise("median", 4)
    with pytest.raises(ValueError, match="normalise: 'l2'"):
        Normalise("l2")


def _model(shape, layers):
    inputs = keras.Input(shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


@pytest.mark.parametrize("kind,shape", [("images", (16, 16, 1)), ("volumes", (3, 16, 16, 1))])
def test_saved_model_reloads_in_safe_mode(tmp_path, kind, shape):
    layers = front(shape, {"normalise": "zscore", "denoise": "bilateral"},
                   {"contrast": 0.3, "noise": 0.05}, kind, seed=1)
    model = _model(shape, layers)
    x = np.random.default_rng(1).random((2, *shape)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert {type(layer).__name__ for layer in loaded.layers} >= {"Denoise", "Normalise"}


def test_augmentation_acts_only_in_training(images):
    layers = front((12, 10, 1), None, {"rotate": 20.0, "zoom": 0.2, "noise": 0.1},
                   "images", seed=0)
    x = tf.constant(images)
    trained = inferred = x
    for layer in layers:
        trained, inferred = layer(trained, training=True), layer(inferred, training=False)
    np.testing.assert_allclose(np.asarray(inferred), images)
    assert np.abs(np.asarray(trained) - images).max() > 0.05


def test_masks_and_volumes_get_intensity_augmentation_only():
    everything = {"flip": "horizontal", "rotate": 30.0, "zoom": 0.2, "crop": 0.1,
                  "contrast": 0.2, "noise": 0.05}
    names = {kind: [layer.name for layer in front(shape, None, everything, kind, 0)]
             for kind, shape in (("images", (8, 8, 1)), ("masks", (8, 8, 1)),
                                 ("volumes", (4, 8, 8, 1)))}
    assert names["images"] == ["augment_flip", "augment_rotate", "augment_zoom",
                               "augment_crop", "augment_contrast", "augment_noise"]
    assert names["masks"] == names["volumes"] == ["augment_contrast", "augment_noise"]
    assert "mask" in AUGMENTATION_NOTE and "volume" in AUGMENTATION_NOTE


def test_volume_contrast_is_one_factor_per_volume():
    volume = np.random.default_rng(2).random((2, 4, 6, 6, 1)).astype(np.float32) * 0.5 + 0.25
    out = np.asarray(VolumeContrast(0.5, seed=3)(volume, training=True))
    for v, o in zip(volume, out, strict=True):
        mean = v.mean()
        factors = (o - mean) / (v - mean)
        assert np.allclose(factors, factors.flat[0], atol=1e-3)  # one factor, every slice
    np.testing.assert_array_equal(np.asarray(VolumeContrast(0.5)(volume)), volume)


def test_bad_options_are_one_line():
    with pytest.raises(ValueError, match="unknown augmentation option 'blur'"):
        front((8, 8, 1), None, {"blur": 1}, "images", 0)
    with pytest.raises(ValueError, match="rotate: 400"):
        front((8, 8, 1), None, {"rotate": 400}, "images", 0)
    with pytest.raises(ValueError, match="does not suit volumes"):
        front((8, 8, 1), None, None, "volumes", 0)


def test_preview_shows_what_training_sees(images):
    data = SimpleNamespace(x=images, kind="images")
    plain = preview(data, [0, 2], {"normalise": "none"}, OFF, seed=0)
    np.testing.assert_allclose(plain, images[[0, 2], ..., 0])
    a = preview(data, [0, 2], {"normalise": "minmax"}, {"rotate": 30.0}, seed=4)
    b = preview(data, [0, 2], {"normalise": "minmax"}, {"rotate": 30.0}, seed=4)
    assert a.shape == (2, 12, 10)
    np.testing.assert_allclose(a, b)  # seeded
    assert np.abs(a - plain).max() > 0.05
    assert a.min() >= -1e-6 and a.max() <= 1 + 1e-6  # normalised last


def test_preview_of_volumes_is_the_middle_slice():
    x = np.zeros((2, 5, 6, 6, 1), np.float32)
    x[:, 2] = 0.7
    data = SimpleNamespace(x=x, kind="volumes")
    out = preview(data, [1], None, OFF, seed=0)
    assert out.shape == (1, 6, 6) and np.allclose(out, 0.7)
