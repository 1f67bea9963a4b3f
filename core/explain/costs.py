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

Reads the file only; no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import json
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


def expected_seconds(method: str, forward_seconds: float,
                     options: dict[str, Any] | None = None) -> float | None:
    """How long `method` should take where one forward pass takes `forward_seconds`
    (Score-CAM over all channels, `max_channels=0`, has its own measurement)."""
    options = options or {}
    if method == "scorecam" and options.get("max_channels") == 0:
        return expected_seconds("scorecam (all channels)", forward_seconds)
    multiple = cost_multiple(method)
    count = SCALES_WITH.get(method)
    measured = costs().get("methods", {}).get(method, {}).get("options", {}).get(count)
    if multiple is not None and count in options and measured:
        # The work grows with the number of passes: scale by the option's ratio.
        multiple *= options[count] / measured
    return None if multiple is None else multiple * forward_seconds


def measured_on() -> str:
    """Where and when the multiples were measured, for a caption ("" if unknown)."""
    data = costs()
    return ", ".join(str(data[k]) for k in ("device", "date") if data.get(k))
