"""`medlens explain --metrics --json` and `medlens evaluate --trust` on a tiny Keras model
saved to a file: the JSON keys, and bad requests as one line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.cli import medlens

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import keras

    where = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(where / "tiny.keras")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (where / "set" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                where / "set" / label / f"{i}.png")
    return where


def test_explain_metrics_json_has_road_random_inverted_and_a_verdict(tiny):
    run = medlens("explain", "--model-file", tiny / "tiny.keras", "--labels", "a,b",
                  "--method", "gradcam", tiny / "set" / "a" / "0.png", "--out", tiny / "out",
                  "--metrics", "--json")
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)["metrics"]
    for key in ("deletion_auc", "insertion_auc", "random_deletion_auc",
                "random_insertion_auc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["road"]) >= {"morf", "lerf", "combined"}
    assert set(metrics["random"]) >= {"mean", "low", "high"}
    assert metrics["random"]["resolution"] == {"grid": [14, 14]}  # the conv layer's grid
    assert set(metrics["inverted"]) >= {"road", "deletion_auc", "insertion_auc"}
    assert metrics["verdict"] in ("better", "worse", "indistinguishable")


def test_evaluate_trust_json_has_a_row_per_method(tiny):
    run = medlens("evaluate", "--model-file", tiny / "tiny.keras", "--labels", "a,b",
                  "--data", tiny / "set", "--trust", "gradcam,saliency", "--seeds", "2",
                  "--percentiles", "20,80", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert [row["method"] for row in result["methods"]] == ["gradcam", "saliency"]
    for row in result["methods"]:
        assert row["n"] == 4
        assert row["better"] + row["indistinguishable"] + row["worse"] == 4
        assert 0 <= row["beats_inversion"] <= 4
        assert row["road_low"] <= row["road_combined"] <= row["road_high"]
    assert result["percentiles"] == [20, 80] and result["seeds"] == 2


@pytest.mark.parametrize("extra, says", [
    (("--trust", "nonsense"), "unknown method"),
    (("--trust", "gradcam", "--percentiles", "0,50"), "between 0 and 100"),
    (("--trust", "gradcam", "--seeds", "0"), "at least 1"),
])
def test_evaluate_trust_bad_requests_are_one_line(tiny, extra, says):
    run = medlens("evaluate", "--model-file", tiny / "tiny.keras", "--labels", "a,b",
                  "--data", tiny / "set", *extra)
    assert run.returncode == 2
    assert says in run.stderr and len(run.stderr.strip().splitlines()) == 1
