"""ROAD (core.explain.metrics.road) on a tiny numpy model whose evidence is known: the
imputer, the percentiles, the sign convention, the verdict and the bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.explain.backend.scores import ForwardModel
from core.explain.metrics import bootstrap_mean, faithfulness, impute, resolution, verdict
from core.explain.metrics.road import random_map, removal_masks

pytestmark = pytest.mark.unit

SIZE = 24
EVIDENCE = np.zeros((SIZE, SIZE), np.float32)
EVIDENCE[6:12, 14:20] = 1  # the only pixels the model reads


def _predict(x: np.ndarray) -> np.ndarray:
    """p(class 1) rises with the mean brightness of the evidence square."""
    s = (x[..., 0] * EVIDENCE).sum(axis=(1, 2)) / EVIDENCE.sum()
    z = 12 * (s - 0.5)
    e = np.exp(np.stack([np.zeros_like(z), z], axis=1))
    return e / e.sum(axis=1, keepdims=True)


MODEL = ForwardModel(_predict, (SIZE, SIZE, 1), 2)
ROWS, COLS = np.mgrid[0:SIZE, 0:SIZE]
IMAGE = (0.2 + 0.1 * np.sin(ROWS / 3) * np.cos(COLS / 4)).astype(np.float32)
IMAGE[EVIDENCE > 0] = 0.9
IMAGE = IMAGE[..., None]
SMOOTH = {"sigma": 2.0}


def _measure(saliency):
    return faithfulness(MODEL, IMAGE, saliency, target=1, steps=4, random_maps=2,
                        resolution=SMOOTH, seeds=8)


def test_a_removed_pixel_of_a_linear_ramp_is_recovered_exactly_without_noise():
    ramp = (np.add.outer(np.arange(10), 2 * np.arange(12)) * 0.1).astype(np.float32)
    image = np.repeat(ramp[..., None], 3, axis=-1)
    one = np.zeros((10, 12), bool)
    one[4, 5] = True
    block = np.zeros((10, 12), bool)
    block[3:6, 4:9] = True  # neighbours removed too: one system solves them together
    for removed in (one, block):
        out = impute(image, removed)
        assert np.allclose(out, image, atol=1e-5)
    corrupted = image.copy()
    corrupted[block] = 7.0  # what was there before is not used
    assert np.allclose(impute(corrupted, block), image, atol=1e-5)
    noisy = impute(image, one, noise=0.5)
    assert np.allclose(noisy[one], image[one] + 0.5, atol=1e-5)
    assert np.array_equal(noisy[~one], image[~one])  # kept pixels untouched


def test_percentiles_remove_that_share_of_pixels_by_rank():
    saliency = np.random.default_rng(0).random((10, 10))
    morf, lerf = removal_masks(saliency, [10, 50, 90])
    for p, m, low in zip([10, 50, 90], morf, lerf, strict=True):
        assert m.sum() == low.sum() == p
        assert saliency[m].min() >= saliency[~m].max()  # the highest first
        assert saliency[low].max() <= saliency[~low].min()  # the lowest first
    constant = np.ones((10, 10))
    morf, lerf = removal_masks(constant, [30])
    assert np.array_equal(morf[0], lerf[0])  # ties: the same pixels both ways


def test_the_true_evidence_is_better_than_random_and_its_inversion_worse():
    truth = _measure(EVIDENCE + 0.01 * IMAGE[..., 0])
    assert truth.road.map.combined > 0.3
    assert truth.verdict == "better"
    assert truth.road.beats_inversion
    inverted = _measure(1 - EVIDENCE)
    assert inverted.road.map.combined < -0.3
    assert inverted.verdict == "worse"
    assert abs(truth.road.inverted.combined + truth.road.map.combined) < 0.05
    assert "▲ better than random" in truth.summary and "✗" not in truth.summary
    assert "▼ worse than random" in inverted.summary


def test_a_constant_map_is_indistinguishable_from_random():
    flat = _measure(np.full((SIZE, SIZE), 0.5, np.float32))
    assert flat.road.map.combined == 0.0  # MoRF and LeRF remove the same pixels
    assert flat.verdict == "indistinguishable"
    assert "≈ not distinguishable from random" in flat.summary


def test_the_verdict_needs_the_difference_to_hold_over_the_seeds():
    spread = [-0.1, 0.1, -0.05, 0.05, 0.0, 0.08, -0.08, 0.02]
    assert verdict(0.5, spread) == "better"
    assert verdict(-0.5, spread) == "worse"
    assert verdict(0.01, spread) == "indistinguishable"
    assert verdict(0.5, spread, constant=True) == "indistinguishable"


def test_the_bootstrap_interval_contains_the_mean():
    values = np.random.default_rng(1).normal(0.2, 0.1, 8)
    mean, low, high = bootstrap_mean(values)
    assert low < mean < high
    assert mean == pytest.approx(values.mean())
    assert high - low < values.max() - values.min()  # of the mean, not of the values
    assert bootstrap_mean([0.3]) == (0.3, 0.3, 0.3)


def test_random_maps_are_drawn_at_the_method_resolution():
    assert resolution("gradcam", (5, 5)) == {"grid": [5, 5]}
    assert resolution("rise", None, {"cells": 6}) == {"grid": [6, 6]}
    assert resolution("occlusion", None, {}, (150, 150)) == {"grid": [15, 15]}
    assert resolution("smoothgrad", None, {}, (150, 150)) == {"sigma": 3.0}
    rng = np.random.default_rng(0)
    coarse = random_map(rng, 40, 40, {"grid": [2, 2]})
    fine = random_map(rng, 40, 40, None)
    smooth = random_map(rng, 40, 40, {"sigma": 3.0})
    # Relative to its spread, neighbouring pixels differ far less on a coarse or smoothed
    # map than on pixel noise (ranks are all that ROAD reads: the scale does not matter).
    def roughness(m):
        return np.abs(np.diff(m)).mean() / m.std()

    assert roughness(coarse) < 0.3 * roughness(fine)
    assert roughness(smooth) < 0.3 * roughness(fine)


def test_the_report_is_json_with_the_old_and_new_keys():
    report = _measure(EVIDENCE).to_dict()
    json.dumps(report)
    assert {"deletion_auc", "insertion_auc", "random_deletion_auc",
            "random_insertion_auc", "road", "random", "inverted", "verdict"} <= set(report)
    assert set(report["road"]) >= {"morf", "lerf", "combined"}
    assert set(report["random"]) >= {"mean", "low", "high"}
    assert report["random"]["low"] <= report["random"]["mean"] <= report["random"]["high"]
    assert set(report["inverted"]) >= {"road", "deletion_auc", "insertion_auc"}
    assert report["verdict"] in ("better", "worse", "indistinguishable")
