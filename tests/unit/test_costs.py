"""The measured method costs the app shows before it runs a method."""

from __future__ import annotations

import json

import pytest

from core.explain import METHODS
from core.explain.costs import COSTS_FILE, cost_multiple, costs, expected_seconds


def test_the_file_is_the_benchmarks():
    data = json.loads(COSTS_FILE.read_text(encoding="utf-8"))
    assert data["written_by"].startswith("bench/explain_speed.py --write-costs")
    assert data["device"] and data["date"] and data["forward_ms"] > 0


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_has_a_measured_cost(method):
    """A method added without re-running `bench/explain_speed.py --write-costs` fails."""
    multiple = cost_multiple(method)
    assert multiple is not None and multiple > 0, (
        f"{method} has no cost in {COSTS_FILE.name}: "
        "run .venv/bin/python bench/explain_speed.py --write-costs")
    assert costs()["methods"][method]["options"] == METHODS[method].resolve({})


def test_expected_seconds_scales_with_the_forward_pass():
    one = expected_seconds("gradcam", 0.1)
    assert one == pytest.approx(cost_multiple("gradcam") * 0.1)
    assert expected_seconds("gradcam", 0.3) == pytest.approx(3 * one)
    assert expected_seconds("rise", 0.1) > expected_seconds("gradcam", 0.1)


def test_expected_seconds_follows_the_counting_options():
    default = expected_seconds("smoothgrad", 0.1)
    assert expected_seconds("smoothgrad", 0.1, {"samples": 40}) == pytest.approx(2 * default)
    assert expected_seconds("gradcam", 0.1, {"anything": 3}) == expected_seconds("gradcam", 0.1)
    every = expected_seconds("scorecam", 0.1, {"max_channels": 0})
    assert every == pytest.approx(cost_multiple("scorecam (all channels)") * 0.1)
    assert every > 10 * expected_seconds("scorecam", 0.1)


def test_an_unknown_method_has_no_cost():
    assert cost_multiple("no-such-method") is None
    assert expected_seconds("no-such-method", 0.1) is None
