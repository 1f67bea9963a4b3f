"""What each explanation method costs, as a multiple of one forward pass of the model.

The app shows how long a method will take before it runs: its multiple times the
forward-pass time measured on the machine it runs on. The multiples are measured, not
guessed: `bench/explain_speed.py --write-costs` times every method of
`core.explain.METHODS` (default options, warm, medians) against one compiled forward
pass (batch 1) of the nested Xception (braintumor-xception) and writes
assets/explain-costs.json; the file says on which device (a 2-core CPU for the numbers
shipped), when, and how. A multiple carries over to other models of similar shape only
roughly (it depends on where the explained layer sits and on the batch efficiency of
the device), so the app should call it an estimate.

The shipped multiples are the first guess only. They were measured warm (TensorFlow's
functions already traced) on a quiet machine, while the first run of a method on a
server traces its functions and shares two cores with other jobs: the Explain page
showed Integrated Gradients at ~12.8 s and saliency at ~0.3 s for runs of 34.5 s and
2.7 s. So every finished explanation records its seconds here (`record`, from
`core.explain.api.explain_input`, for any caller: the explain and compare jobs, the
CLI), per (model fingerprint, method), and `expected_seconds` uses the latest measured
time for that model and method, scaled by the counting option's ratio, once there is one.

Reads the file only; no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

COSTS_FILE = Path(__file__).resolve().parent.parent.parent / "assets" / "explain-costs.json"


# The option that counts a method's passes: its cost grows in proportion to it.
SCALES_WITH = {"smoothgrad": "samples", "integrated-gradients": "steps", "rise": "samples",
               "scorecam": "max_channels"}


@cache
def costs() -> dict[str, Any]:
    """The whole file (an empty dict if it is missing or unreadable), read once."""
    try:
        return json.loads(COSTS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def cost_multiple(method: str) -> float | None:
    """`method`'s measured time as a multiple of one forward pass, or None if unmeasured
    (a variant such as "scorecam (all channels)" too)."""
    data = costs()
    entry = data.get("methods", {}).get(method) or data.get("variants", {}).get(method)
    if not entry:
        return None
    multiple = entry.get("multiple")
    return float(multiple) if isinstance(multiple, int | float) and multiple > 0 else None


# -- calibration on the running server ----------------------------------------------------

# (model fingerprint, method or variant) -> (seconds, the counting option's value or None)
# The last few runs of each: on a shared server one run's time swings with the load, and
# their mean is a steadier next estimate than the last alone.
KEPT_RUNS = 3
_runs: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
_measured_lock = threading.Lock()  # jobs finish on several worker threads


def _variant(method: str, options: dict[str, Any]) -> str:
    """Score-CAM over all channels (`max_channels=0`) is costed apart."""
    if method == "scorecam" and options.get("max_channels") == 0:
        return "scorecam (all channels)"
    return method


def _count(method: str, options: dict[str, Any]) -> float | None:
    value = options.get(SCALES_WITH.get(method, ""))
    return float(value) if isinstance(value, int | float) and value > 0 else None


# A run whose tracing took more than this share of it is not recorded: the first
# execution of a just-traced function pays graph optimisation too, which is not timed
# apart (Grad-CAM here: 2.3-5.1 s cold, nearly all tracing, 0.10 s warm).
TRACING_SHARE = 1 / 3


def record(fingerprint: str, method: str, seconds: float,
           options: dict[str, Any] | None = None, tracing: float = 0.0) -> None:
    """A finished run of `method` (with all its `options`, defaults included) on the model
    with this fingerprint took `seconds`, of which `tracing` went to tracing TensorFlow
    functions (once per model and function: core.models.runtime.keras.tracing_seconds).
    Later estimates for it use the run less its tracing; a run that was mostly tracing
    is not kept, and until a run that was not, the first guess stays the estimate."""
    if not seconds > 0 or tracing > TRACING_SHARE * seconds:
        return
    options = options or {}
    key = (str(fingerprint), _variant(method, options))
    with _measured_lock:
        runs = _runs.setdefault(key, [])
        runs.append((float(seconds - max(tracing, 0.0)), _count(method, options)))
        del runs[:-KEPT_RUNS]


def measured_seconds(fingerprint: str | None, method: str,
                     options: dict[str, Any] | None = None) -> float | None:
    """The mean of the last recorded times of `method` on this model, each scaled by the
    counting option's ratio (e.g. 40 samples after a run of 20: twice the time); None if
    never run."""
    if fingerprint is None:
        return None
    options = options or {}
    with _measured_lock:
        found = list(_runs.get((str(fingerprint), _variant(method, options)), ()))
    if not found:
        return None
    asked = _count(method, options)
    scaled = [seconds * (asked / count if count and asked else 1.0) for seconds, count in found]
    return sum(scaled) / len(scaled)


def forget_measured() -> None:
    """Drop every recorded time (tests; a server that changed device)."""
    with _measured_lock:
        _runs.clear()


def expected_seconds(method: str, forward_seconds: float,
                     options: dict[str, Any] | None = None,
                     fingerprint: str | None = None) -> float | None:
    """How long `method` should take where one forward pass takes `forward_seconds`: the
    time measured for it on this model (`fingerprint`) in this process if there is one,
    else the shipped multiple (Score-CAM over all channels, `max_channels=0`, has its own
    measurement), for a heavy method times the slowdown measured on the other heavy
    methods already run on this model (`slowdown`). `options` are those asked; missing
    ones count as the defaults."""
    options = options or {}
    measured = measured_seconds(fingerprint, method, _with_defaults(method, options))
    if measured is not None:
        return measured
    shipped = _shipped(method, forward_seconds, options)
    if shipped is None or (cost_multiple(_variant(method, options)) or 0) < HEAVY:
        return shipped
    return shipped * slowdown(fingerprint, forward_seconds)


# Methods of at least this multiple run many batched passes (SmoothGrad, Integrated
# Gradients, occlusion, RISE, Score-CAM): on a loaded machine they slow down together,
# and far more than the short forward pass the first guess is scaled by (bench/
# estimates.py on a 2-core CPU shared with two test runs: 2-5x the shipped multiple,
# while the CAMs and saliency stayed within 1.2x of theirs).
HEAVY = 10.0


def slowdown(fingerprint: str | None, forward_seconds: float) -> float:
    """How much slower than their shipped multiples the heavy methods measured on this
    model ran here: the sum of their measured times over the sum of their first guesses
    (so the longest runs weigh most); 1 before any has run."""
    if fingerprint is None:
        return 1.0
    with _measured_lock:
        runs = [(m, *kept[-1]) for (fp, m), kept in _runs.items()
                if fp == str(fingerprint) and kept]
    took = guessed = 0.0
    for method, seconds, count in runs:
        name = "scorecam" if method == "scorecam (all channels)" else method
        options = {"max_channels": 0} if method != name else (
            {SCALES_WITH[name]: count} if count and name in SCALES_WITH else {})
        guess = _shipped(name, forward_seconds, options)
        if guess and (cost_multiple(method) or 0) >= HEAVY:
            took, guessed = took + seconds, guessed + guess
    return took / guessed if guessed > 0 else 1.0


def _shipped(method: str, forward_seconds: float, options: dict[str, Any]) -> float | None:
    """The first guess: the shipped multiple (scaled by the counting option) times the
    forward pass."""
    if method == "scorecam" and options.get("max_channels") == 0:
        return _shipped("scorecam (all channels)", forward_seconds, {})
    multiple = cost_multiple(method)
    count = SCALES_WITH.get(method)
    measured = costs().get("methods", {}).get(method, {}).get("options", {}).get(count)
    if multiple is not None and count in options and measured:
        # The work grows with the number of passes: scale by the option's ratio.
        multiple *= options[count] / measured
    return None if multiple is None else multiple * forward_seconds


def _with_defaults(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The counting option's default where it is not given (from the cost file, which
    matches the registry: tests/unit/test_costs.py), so a default run and an explicit
    one are compared alike."""
    count = SCALES_WITH.get(method)
    shipped = costs().get("methods", {}).get(method, {}).get("options", {})
    if count and count not in options and count in shipped:
        return {**options, count: shipped[count]}
    return options


def is_measured(fingerprint: str | None, method: str,
                options: dict[str, Any] | None = None) -> bool:
    """Whether `expected_seconds` for it comes from a run in this process."""
    return measured_seconds(fingerprint, method, options) is not None


def measured_on() -> str:
    """Where and when the multiples were measured, for a caption ("" if unknown)."""
    data = costs()
    return ", ".join(str(data[k]) for k in ("device", "date") if data.get(k))
