"""Maps that mean something: RISE centred so its map is not flat, the flat flag, the
note where two CAMs are equal by construction, the sanity check's verdict and its
progress on a terminal, and cost estimates calibrated from measured runs. Tiny models
(tests/trained.py); no timing assertions."""

from __future__ import annotations

import numpy as np
import pytest

from core.explain import Explanation, attribute
from core.explain import costs as method_costs
from core.explain.maps import FLAT_RANGE, dynamic_range, is_flat
from core.explain.methods.cam.base import equal_by_construction, uniform_gradients
from core.explain.metrics.sanity import PASS_BELOW, SanityCheck, sanity_check
from tests import trained

# -- RISE and flat maps -------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_shape():
    data = trained.held_out()
    return data.x[:1], data.masks[0, data.label[0]]


def test_rise_map_is_not_flat_where_the_evidence_is_local(one_shape):
    """The shape (about 9 px of 32) decides the class: RISE's map has a clear background.
    Uncentred (the paper's sum, max-normalised) it sat near its peak everywhere."""
    x, mask = one_shape
    result = attribute(trained.softmax_model(), x, "rise", samples=200, batch=50)
    saliency = result.maps[0]
    assert dynamic_range(saliency) > FLAT_RANGE and not is_flat(saliency)
    # And it points at the shape: the mean inside it beats the mean outside.
    assert saliency[mask].mean() > saliency[~mask].mean()
    assert 0 < result.info["mean_score"][0] <= 1


def test_dynamic_range_and_the_flat_flag():
    rng = np.random.default_rng(0)
    uniform = 0.9 + 0.1 * rng.random((20, 20))  # one colour on the overlay
    spot = np.zeros((20, 20))
    spot[3, 4] = 1.0  # a single bright pixel is not flat
    assert is_flat(uniform) and dynamic_range(uniform) < FLAT_RANGE
    assert not is_flat(spot) and dynamic_range(spot) == pytest.approx(1.0)
    assert dynamic_range(np.zeros((4, 4))) == 0.0

    def explanation(m: np.ndarray) -> Explanation:
        return Explanation("rise", "disk", None, m.astype(np.float32), 0.1)

    assert explanation(uniform).flat and "Flat map" in explanation(uniform).caption
    assert not explanation(spot).flat and explanation(spot).caption is None
    assert not explanation(np.zeros((4, 4))).flat  # empty, which the page says apart


# -- equal by construction ----------------------------------------------------------------


def _flatten_model():
    """A conv layer followed by Flatten and Dense: the gradient differs by location."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    out = keras.layers.Dense(2, name="scores")(keras.layers.Flatten()(a))
    return keras.Model(inputs, out)


def test_hirescam_equals_gradcam_after_global_average_pooling(one_shape):
    x, _ = one_shape
    model = trained.softmax_model()  # conv3 -> global average pooling -> dense
    grad = attribute(model, x, "gradcam")
    hires = attribute(model, x, "hirescam")
    plus = attribute(model, x, "gradcam++")
    layer = attribute(model, x, "layercam")
    assert hires.info["uniform_gradients"] and grad.info["uniform_gradients"]
    np.testing.assert_allclose(hires.maps, grad.maps, atol=1e-5)
    np.testing.assert_allclose(plus.maps, layer.maps, atol=1e-5)
    note = equal_by_construction("hirescam", hires.info)
    assert note and note.startswith("Equal to Grad-CAM by construction")
    assert equal_by_construction("layercam", layer.info).startswith("Equal to Grad-CAM++")
    assert equal_by_construction("scorecam", hires.info) is None


def test_no_note_where_the_gradient_varies_over_the_locations():
    model = _flatten_model()
    x = np.random.default_rng(1).random((1, 8, 8, 3)).astype(np.float32)
    hires = attribute(model, x, "hirescam", target=[0])
    assert not hires.info["uniform_gradients"]
    assert equal_by_construction("hirescam", hires.info) is None
    assert not np.allclose(hires.maps, attribute(model, x, "gradcam", target=[0]).maps)


def test_uniform_gradients_tolerates_rounding_only():
    g = np.ones((1, 3, 3, 2), np.float32)
    assert uniform_gradients(g) and uniform_gradients(g + 1e-7)
    g[0, 1, 1, 0] = 1.01
    assert not uniform_gradients(g)


# -- the sanity check's verdict -------------------------------------------------------------

ORIGINAL = np.linspace(0, 1, 64).reshape(8, 8).astype(np.float32)


def _check(random_map: np.ndarray, rho: float, decisive: int = 0) -> SanityCheck:
    empty = not bool(random_map.max() > 0)
    return SanityCheck(method="gradcam", target=0, layers=["scores", "conv3"],
                       spearman=[rho, rho], maps=[random_map, random_map], original=ORIGINAL,
                       empty=[empty, empty], flat=[not empty and is_flat(random_map)] * 2,
                       decisive=decisive)


def test_verdict_pass_fail_and_inconclusive():
    moved = ORIGINAL[::-1].copy()
    assert _check(moved, -0.9).verdict == "pass" and _check(moved, -0.9).passed
    assert _check(ORIGINAL, PASS_BELOW).verdict == "fail"
    assert _check(ORIGINAL, 0.99).passed is False
    flat = np.full((8, 8), 0.95, np.float32)
    flat[0, 0] = 1.0
    check = _check(flat, -0.38)
    assert check.verdict == "inconclusive: the randomised maps are flat"
    assert check.passed is None and "no ρ is read" in check.summary
    empty = _check(np.zeros((8, 8), np.float32), 0.0)
    assert empty.verdict == "inconclusive: the randomised maps are empty"
    out = check.to_dict()
    assert out["verdict"] == check.verdict and "below 0.5" in out["rule"]
    assert out["flat"] == [True, True] and out["decided_at"] == "scores"


def test_sanity_check_on_a_trained_model_decides_at_the_last_convolution(one_shape):
    x, _ = one_shape
    seen = []
    check = sanity_check(trained.softmax_model(), x[0], "gradcam",
                         progress=lambda done, text: seen.append(text))
    # From the top: scores, conv3 (the last spatial layer), conv2, conv1.
    assert check.layers == ["scores", "conv3", "conv2", "conv1"]
    assert check.layers[check.decisive] == "conv3"
    assert check.verdict in ("pass", "fail") or check.verdict.startswith("inconclusive")
    assert len(check.flat) == len(check.maps) == 4
    # A report before the copy and before each map, not only after each step.
    assert seen[0] == "Sanity check: copying the model"
    assert "Sanity check: map 1 of 5 (the trained model)" in seen


# -- cost estimates -------------------------------------------------------------------------


@pytest.fixture
def fresh_costs():
    method_costs.forget_measured()
    yield
    method_costs.forget_measured()


def test_a_recorded_time_becomes_the_estimate_scaled_by_the_counting_option(fresh_costs):
    shipped = method_costs.expected_seconds("smoothgrad", 0.1, {}, "model-a")
    method_costs.record("model-a", "smoothgrad", 3.0, {"samples": 20, "noise": 0.15})
    assert method_costs.expected_seconds("smoothgrad", 0.1, {}, "model-a") == 3.0
    assert method_costs.expected_seconds("smoothgrad", 0.1, {"samples": 40},
                                         "model-a") == pytest.approx(6.0)
    assert method_costs.is_measured("model-a", "smoothgrad")
    # Another model, or no fingerprint: still the shipped first guess.
    assert method_costs.expected_seconds("smoothgrad", 0.1, {}, "model-b") == shipped
    assert method_costs.expected_seconds("smoothgrad", 0.1) == shipped


def test_the_estimate_is_the_mean_of_the_last_runs(fresh_costs):
    for seconds in (9.0, 2.0, 4.0, 6.0):  # the first falls out: three are kept
        method_costs.record("m", "rise", seconds, {"samples": 500})
    assert method_costs.measured_seconds("m", "rise") == pytest.approx(4.0)
    # Each run scaled to the samples asked: 250 masks, half of each.
    assert method_costs.measured_seconds("m", "rise", {"samples": 250}) == pytest.approx(2.0)


def test_a_run_that_traced_is_not_recorded_and_variants_are_apart(fresh_costs):
    method_costs.record("m", "gradcam", 5.1, {}, tracing=5.0)
    assert not method_costs.is_measured("m", "gradcam")
    method_costs.record("m", "gradcam", 0.1, {})
    assert method_costs.expected_seconds("gradcam", 0.03, {}, "m") == 0.1
    # Top-32 Score-CAM measured at twice its first guess: all channels (costed apart, never
    # measured here) is its own first guess, times that slowdown.
    top = method_costs.expected_seconds("scorecam", 0.03, {}, "m")
    method_costs.record("m", "scorecam", 2 * top, {"max_channels": 32, "batch": 32})
    every = method_costs.expected_seconds("scorecam", 0.03, {"max_channels": 0}, "m")
    assert every == pytest.approx(
        2 * method_costs.cost_multiple("scorecam (all channels)") * 0.03)
    # A run whose tracing is a small part of it is kept, less its tracing.
    method_costs.record("m", "occlusion", 16.0, {}, tracing=1.5)
    assert method_costs.measured_seconds("m", "occlusion") == pytest.approx(14.5)


def test_explain_input_records_its_time(fresh_costs, one_shape):
    """Through the explain path: the second run (no tracing) is recorded."""
    import keras

    from core.explain import explain_input

    tiny = trained.softmax_model()  # shared by the tests: a copy of its own, never traced
    fresh = keras.models.clone_model(tiny)
    fresh.set_weights(tiny.get_weights())

    class Model:  # the parts of a Classifier explain_input reads
        keras_model = fresh
        fingerprint = "tiny-softmax"

        class card:  # noqa: N801
            id, labels = "tiny", list(trained.SHAPES)
            input_spec = None

    class Input:
        batch, source_shape = one_shape[0], (32, 32)

    from core.models.runtime.keras import tracing_seconds

    assert tracing_seconds(Model.keras_model) == 0.0
    cold = explain_input(Model(), Input(), "saliency")  # traces: mostly tracing, not kept
    assert tracing_seconds(Model.keras_model) > 0
    assert method_costs.measured_seconds("tiny-softmax", "saliency") is None, cold.seconds
    e = explain_input(Model(), Input(), "saliency")
    assert method_costs.measured_seconds("tiny-softmax", "saliency") == pytest.approx(e.seconds)


# -- the sanity job's progress on a terminal -------------------------------------------------


def test_the_sanity_job_shows_progress_lines_on_a_terminal(one_shape, monkeypatch):
    """Through run_job, as `medlens explain --sanity-check` runs it: a line before the
    copy and before each map (the first map traces the copy and reports nothing of its
    own), redrawn in place and cleared."""
    import sys
    from types import SimpleNamespace

    import core.jobs
    from core.cli.common import run_job
    from core.jobs import Executor, Job
    from core.jobs.kinds import RUNNERS
    from tests.unit.test_cli_terminal import Terminal, visible

    pool = Executor({"sanity": RUNNERS["sanity"]}, workers=1)
    monkeypatch.setattr(core.jobs, "executor", lambda: pool)
    terminal = Terminal(columns=200)
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    classifier = SimpleNamespace(keras_model=trained.softmax_model(), fingerprint="tiny")
    job = Job.make("sanity", {"model": "tiny", "method": "gradcam", "target": None,
                              "layer": None, "max_steps": 2, "options": {}},
                   model=classifier, input=SimpleNamespace(batch=one_shape[0],
                                                           fingerprint="crop0"))
    try:
        check = run_job(job, "explain: gradcam")
        written = terminal.read()
    finally:
        pool.shutdown()
        terminal.close()
    assert len(check.maps) == 2
    lines = [line.rstrip() for line in written.split("\r") if line.strip()]
    assert "explain: gradcam 0% (Sanity check: copying the model)" in lines, lines
    assert "explain: gradcam 0% (Sanity check: map 1 of 3 (the trained model))" in lines
    assert any(line.startswith("explain: gradcam 33% (Sanity check: map 2 of 3")
               for line in lines), lines
    assert visible(written) == "" and "\n" not in written


def test_heavy_first_guesses_follow_the_slowdown_measured_on_other_heavy_methods(
        fresh_costs):
    forward = 0.05
    rise = method_costs.expected_seconds("rise", forward, {}, "m")
    gradcam = method_costs.expected_seconds("gradcam", forward, {}, "m")
    # Integrated Gradients ran 3x slower than its first guess on this model.
    guess = method_costs.expected_seconds("integrated-gradients", forward, {}, "m")
    method_costs.record("m", "integrated-gradients", 3 * guess, {"steps": 128})
    assert method_costs.slowdown("m", forward) == pytest.approx(3.0)
    assert method_costs.expected_seconds("rise", forward, {}, "m") == pytest.approx(3 * rise)
    assert method_costs.expected_seconds("gradcam", forward, {}, "m") == gradcam  # light
    assert method_costs.expected_seconds("rise", forward, {}, "other") == rise
