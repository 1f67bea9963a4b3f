"""Trust measures on the real models: deletion/insertion, the randomisation sanity check,
localisation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core import models
from core.explain import ExplainError, black, explain
from core.explain.metrics import (
    Faithfulness,
    faithfulness,
    localisation,
    sanity_check,
    spearman,
)
from core.models.inputs import prepare
from core.studies import open_study


def brain_input(classifier, brain_samples, name: str) -> np.ndarray:
    sample = next(s for s in brain_samples if s.name == name)
    return prepare(open_study(sample.path), classifier.card.input_spec).array


@pytest.fixture(scope="module")
def glioma(glioma_input):
    return glioma_input.array


@pytest.fixture(scope="module")
def glioma_gradcam(xception, glioma):
    return explain(xception.keras_model, glioma[None], "gradcam")[0]


# -- deletion and insertion ----------------------------------------------------------------

def test_curves_run_from_the_image_to_the_baseline(xception, glioma, glioma_gradcam):
    baseline = black(xception.card.input_spec)
    calls = []
    f = faithfulness(xception, glioma, glioma_gradcam, steps=16, baseline=baseline,
                     random_maps=1, progress=lambda done, text: calls.append(done),
                     road=False)  # deletion and insertion alone: ROAD has its own tests
    probability = xception.probabilities(np.stack([
        glioma,
        np.full_like(glioma, baseline),
        np.stack([cv2.GaussianBlur(glioma[..., c], (11, 11), 5) for c in range(3)], -1),
    ]))[:, 0]
    assert f.target == 0  # glioma, predicted with p = 0.89
    assert len(f.fractions) == len(f.deletion) == len(f.insertion) == 17
    assert f.fractions[0] == 0.0 and f.fractions[-1] == 1.0
    assert np.all(np.diff(f.fractions) > 0)
    # Deletion starts at the image and ends at the all-black image (p = 0.26 measured);
    # insertion starts at the blurred image (p = 0.009) and ends at the image.
    np.testing.assert_allclose([f.deletion[0], f.insertion[-1]], probability[0], atol=1e-5)
    np.testing.assert_allclose(f.deletion[-1], probability[1], atol=1e-5)
    np.testing.assert_allclose(f.insertion[0], probability[2], atol=1e-5)
    # A middle point by hand: the most salient half of the pixels set to black.
    order = np.argsort(-glioma_gradcam.ravel(), kind="stable")
    half = glioma.reshape(-1, 3).copy()
    half[order[:150 * 150 // 2]] = baseline
    middle = xception.probabilities(half.reshape(glioma.shape)[None])[0, 0]
    np.testing.assert_allclose(f.deletion[8], middle, atol=1e-5)
    petsiuk = {k: v for k, v in f.to_dict().items() if k.endswith("_auc")}
    assert set(petsiuk) == {"deletion_auc", "insertion_auc", "random_deletion_auc",
                            "random_insertion_auc"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in petsiuk.values())
    assert calls == [0.5, 1.0]


def test_a_map_and_its_inverse_rank_opposite(xception, brain_samples):
    """Grad-CAM of Te-gl_0013 (p(glioma) = 1.00). Measured with these settings: deletion
    0.484 vs 0.718 for the inverse, insertion 0.921 vs 0.031. (Te-gl_0010 is the one
    sample of 17 where Grad-CAM's deletion loses to its inverse: 0.474 vs 0.349.)"""
    x = brain_input(xception, brain_samples, "Te-gl_0013.jpg")
    saliency = explain(xception.keras_model, x[None], "gradcam")[0]
    options = dict(steps=16, random_maps=1, baseline=black(xception.card.input_spec))
    direct = faithfulness(xception.keras_model, x, saliency, **options)
    inverse = faithfulness(xception.keras_model, x, 1 - saliency, **options)
    assert direct.deletion_auc < inverse.deletion_auc - 0.1
    assert direct.insertion_auc > inverse.insertion_auc + 0.5
    # The random curves depend on the seed only, not on the map.
    assert direct.random_deletion == inverse.random_deletion


def test_random_baseline_repeats_with_its_seed(xception, glioma, glioma_gradcam):
    options = dict(steps=4, random_maps=2, baseline=black(xception.card.input_spec))
    first = faithfulness(xception, glioma, glioma_gradcam, seed=3, **options)
    again = faithfulness(xception, glioma, glioma_gradcam, seed=3, **options)
    other = faithfulness(xception, glioma, glioma_gradcam, seed=4, **options)
    assert first == again
    assert first.random_deletion != other.random_deletion
    assert first.deletion == other.deletion  # the map's own curve has no randomness
    coarse = faithfulness(xception, glioma, glioma_gradcam, seed=3, random_cells=5, **options)
    assert coarse.random_deletion != first.random_deletion


def test_faithfulness_on_onnx_vgg16_with_occlusion(brain_samples):
    vgg = models.load("braintumor-vgg16")
    assert vgg.keras_model is None
    x = brain_input(vgg, brain_samples, "Te-gl_0010.jpg")
    baseline = black(vgg.card.input_spec)
    # 2 x 2 patches and 4 steps: onnxruntime takes 0.26 s per 240 x 240 image here.
    occlusion = explain(vgg, x[None], "occlusion", patch=0.5, stride=1.0, baseline=baseline)
    f = faithfulness(vgg, x, occlusion, steps=4, random_maps=1, baseline=baseline)
    assert f.target == 0
    np.testing.assert_allclose(f.deletion[0], vgg.probabilities(x[None])[0, 0], atol=1e-5)
    # Measured: deletion 0.521 for occlusion's order, 0.791 for a random one.
    assert f.deletion_auc < f.random_deletion_auc - 0.15


def test_faithfulness_bad_requests(xception, glioma, glioma_gradcam):
    with pytest.raises(ExplainError, match=r"saliency of shape \(10, 10\)"):
        faithfulness(xception, glioma, np.zeros((10, 10)))
    with pytest.raises(ExplainError, match="input of shape"):
        faithfulness(xception, glioma[:100], glioma_gradcam)
    with pytest.raises(ExplainError, match="target class out of range"):
        faithfulness(xception, glioma, glioma_gradcam, target=7)
    with pytest.raises(ExplainError, match="steps must be at least 2"):
        faithfulness(xception, glioma, glioma_gradcam, steps=1)
    assert isinstance(faithfulness(xception, glioma[None], glioma_gradcam[None], steps=2),
                      Faithfulness)


def test_faithfulness_holds_the_other_inputs_of_a_two_input_model():
    import keras

    image, extra = keras.Input((8, 8, 1)), keras.Input((2,))
    pooled = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="conv")(image))
    joined = keras.layers.Concatenate()([pooled, extra])
    model = keras.Model([image, extra], keras.layers.Dense(3, activation="softmax")(joined))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(8, 8, 1)).astype(np.float32), np.array([1.0, -1.0], np.float32)]
    f = faithfulness(model, x, rng.random((8, 8)), target=2, steps=4, random_maps=1)
    p = model.predict([x[0][None], x[1][None]], verbose=0)[0, 2]
    assert f.deletion[0] == pytest.approx(float(p), abs=1e-5)
    zeros = model.predict([np.zeros((1, 8, 8, 1)), x[1][None]], verbose=0)[0, 2]
    assert f.deletion[-1] == pytest.approx(float(zeros), abs=1e-5)
    with pytest.raises(ExplainError, match="the model takes 2 inputs, 1 given"):
        faithfulness(model, x[0], np.zeros((8, 8)))


def test_sanity_check_on_a_sequential_model():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="a"),
                              keras.layers.Conv2D(2, 3, name="b"), keras.layers.Flatten(),
                              keras.layers.Dense(2, name="head")])
    x = np.random.default_rng(0).normal(size=(8, 8, 1)).astype(np.float32)
    check = sanity_check(model, x, "saliency", seed=1)
    assert check.layers == ["head", "b", "a"]
    assert len(check.spearman) == 3 and check.original.shape == (8, 8)
    assert sanity_check(model, x, "saliency", seed=1).spearman == check.spearman


# -- the randomisation sanity check ---------------------------------------------------------

# Full cascades on Te-gl_0010, seed 0, 42 layers (dense_1, dense, then the backbone's 40
# convolutions from block14_sepconv2 down to block1_conv1), measured once: Grad-CAM's map
# is empty from the first step (the randomised head scores glioma below zero), rho = 0 at
# every step, 12 s; Guided Backprop's rho is 1.000 after the head, >= 0.92 down to block6,
# 0.76 at block5, then 0.18-0.33 through the entry flow, 15 s. The tests use max_steps.

def test_gradcam_fails_to_survive_randomisation(xception, glioma):
    model = xception.keras_model
    weights = [w.copy() for w in model.get_weights()]
    before = xception.probabilities(glioma[None])
    seen = []
    check = sanity_check(model, glioma, "gradcam", max_steps=3,
                         progress=lambda done, text: seen.append((done, text)))
    assert check.layers == ["xception/block10_sepconv3", "xception/block6_sepconv1",
                            "xception/block1_conv1"]
    assert check.target == 0
    assert all(m.shape == (150, 150) and m.dtype == np.float32 for m in check.maps)
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in check.maps)
    np.testing.assert_allclose(check.original, explain(model, glioma[None], "gradcam")[0],
                               atol=1e-5)
    # The maps follow the new weights (the traced function reads the variables anew):
    # measured empty after every step, so rho = 0 by definition.
    assert np.abs(check.maps[0] - check.original).max() > 0.5
    assert check.empty == [True, True, True]
    assert max(abs(r) for r in check.spearman) < 0.1
    out = check.to_dict()
    assert (out["layers"], out["spearman"]) == (check.layers, check.spearman)
    # Empty maps have no order: no verdict is read from their rho.
    assert out["verdict"] == check.verdict == "inconclusive: the randomised maps are empty"
    assert out["decided_at"] == "xception/block10_sepconv3" and out["rule"]
    assert check.summary.endswith("Of 3 randomised maps, 0 are flat and 3 empty: their ρ "
                                  "is not a measure of change.")
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0 and "block1_conv1" in seen[-1][1]
    # The user's model is untouched.
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    np.testing.assert_array_equal(xception.probabilities(glioma[None]), before)


def test_guided_backprop_survives_randomising_the_top_half(xception, glioma):
    check = sanity_check(xception, glioma, "guided-backprop", max_steps=2)
    assert check.layers == ["xception/block8_sepconv2", "xception/block1_conv1"]
    # Measured: rho = 0.971 with the top 21 layers random, 0.183 with all 42.
    assert check.spearman[0] > 0.9
    assert check.spearman[1] < 0.5
    # Read where the head and block14 are random (the first group): it fails.
    assert check.verdict == "fail" and check.passed is False
    assert check.summary.startswith("Fail: after randomising down to "
                                    "xception/block8_sepconv2, ρ = 0.9")
    assert "empty" not in check.summary
    assert check.maps[0].shape == (150, 150)


def test_sanity_check_needs_a_keras_model(brain_samples):
    vgg = models.load("braintumor-vgg16")
    x = brain_input(vgg, brain_samples, "Te-gl_0010.jpg")
    with pytest.raises(ExplainError, match="needs a Keras model"):
        sanity_check(vgg, x, "occlusion")
    with pytest.raises(ExplainError, match="needs a Keras model"):
        sanity_check(object(), x, "gradcam")


def test_spearman_matches_scipy_and_treats_a_constant_map_as_unrelated():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (30, 30)).astype(np.float32)  # many ties
    b = a + rng.normal(0, 2, a.shape)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-9)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros_like(a)) == 0.0


# -- localisation --------------------------------------------------------------------------

@pytest.fixture
def blob():
    """A 150 x 150 map: 1.0 on rows 20-29, cols 30-39; 0.4 on rows 100-119, cols 100-119."""
    saliency = np.zeros((150, 150), np.float32)
    saliency[20:30, 30:40] = 1.0
    saliency[100:120, 100:120] = 0.4
    return saliency


def test_iou_and_pointing_on_a_synthetic_map(blob):
    # The box holds the 100 peak pixels in 20 x 20 = 400: IoU 100 / 400 at threshold 0.5.
    result = localisation(blob, box=(20, 30, 40, 50))
    assert result.pointing_hit and result.iou == 0.25 and result.threshold == 0.5
    # At 0.3 the 0.4 square (400 px) is selected too: union 400 + 400, intersection 100.
    assert localisation(blob, box=(20, 30, 40, 50), threshold=0.3).iou == 100 / 800
    mask = np.zeros((150, 150), bool)
    mask[100:120, 100:120] = True
    far = localisation(blob, mask=mask)
    assert not far.pointing_hit and far.iou == 0.0


def test_pointing_tolerance(blob):
    near = (20, 45, 30, 60)  # 15 px right of the maximum point (20, 30)
    assert localisation(blob, box=near).pointing_hit  # the paper's 15 px
    assert not localisation(blob, box=near, tolerance=14).pointing_hit
    # Where the maximum is a plateau, the point is its first pixel in raster order.
    assert not localisation(blob, box=(20, 35, 30, 40), tolerance=0).pointing_hit
    assert localisation(blob, box=(20, 35, 30, 40), tolerance=5).pointing_hit
    assert localisation(blob, box=(20, 30, 21, 31), tolerance=0).pointing_hit
    # An empty map points at nothing: a miss even where the region is the whole map.
    empty = np.zeros((150, 150), np.float32)
    whole = localisation(empty, box=(0, 0, 150, 150))
    assert not whole.pointing_hit and whole.iou == 0.0


def test_localisation_bad_requests(blob):
    with pytest.raises(ExplainError, match=r"mask of shape \(10, 10\), the map is \(150, 150\)"):
        localisation(blob, mask=np.ones((10, 10), bool))
    with pytest.raises(ExplainError, match="give a mask or a box"):
        localisation(blob)
    with pytest.raises(ExplainError, match="give a mask or a box"):
        localisation(blob, mask=np.ones((150, 150), bool), box=(0, 0, 1, 1))
    with pytest.raises(ExplainError, match="is not inside the map"):
        localisation(blob, box=(0, 0, 151, 10))
    with pytest.raises(ExplainError, match="the mask is empty"):
        localisation(blob, mask=np.zeros((150, 150), bool))
    with pytest.raises(ExplainError, match="threshold"):
        localisation(blob, box=(0, 0, 10, 10), threshold=0.0)


# -- ROAD -----------------------------------------------------------------------------------

def test_road_on_one_tumour_sample_with_cam_grid_random_maps(xception, glioma, glioma_gradcam):
    from core.explain.metrics import layer_grid, resolution

    grid = layer_grid(xception.keras_model, "xception/block14_sepconv2_act")
    assert grid == (5, 5)
    at = resolution("gradcam", grid)
    f = faithfulness(xception, glioma, glioma_gradcam, steps=4, random_maps=1, seeds=4,
                     percentiles=(10, 50, 90), resolution=at)
    road = f.road
    assert road.resolution == {"grid": [5, 5]}
    assert len(road.random) == 4 and road.map.percentiles == [10, 50, 90]
    assert all(0 <= p <= 1 for p in road.map.morf + road.map.lerf)
    assert road.random_low <= road.random_mean <= road.random_high
    assert f.verdict in ("better", "worse", "indistinguishable")
    # The inversion's MoRF removes what the map's LeRF removes: mirrored scores.
    assert road.inverted.combined == pytest.approx(-road.map.combined, abs=0.05)
    assert road.words in f.summary and "✗" not in f.summary
