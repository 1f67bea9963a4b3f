"""Explain-page latency as a user sees it, timed in a real Chromium against a fresh server.

From the click on a sample to its Grad-CAM overlay being visible and decoded:
"cold" is the first sample after server start (model load and tracing included),
"warm" the median over further, different samples.

    .venv/bin/python bench/explain_latency.py [--warm N]

Prints a table, then one JSON line: {"cold_s", "warm_median_s", "warm_s", "device"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from itertools import chain, zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from tests.browser import (  # noqa: E402
    choose_sample,
    chromium,
    model_device,
    open_explain,
    sample_options,
    streamlit_server,
    wait_for_overlay,
    wait_idle,
)

MIN_WARM = 5


def spread(options: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """Up to `count` samples taken across labels in turn, so every class gets timed."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for option in options:
        by_label.setdefault(option[1], []).append(option)
    interleaved = chain.from_iterable(zip_longest(*by_label.values()))
    return [option for option in interleaved if option is not None][:count]


def measure(warm_count: int) -> tuple[list[tuple[str, str, str, float]], str]:
    """Rows of (run, sample, label, seconds) on a fresh server, and the model's device."""
    rows: list[tuple[str, str, str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="medlens-bench-") as scratch,
        streamlit_server(Path(scratch) / "server.log") as url,
        chromium() as browser,
    ):
        page = open_explain(browser, url)
        options = sample_options(page)
        if len(options) < warm_count + 1:
            raise SystemExit(f"only {len(options)} samples; need {warm_count + 1}")
        cold, *rest = spread(options, len(options))
        plan = [("cold", cold)] + [("warm", option) for option in rest[:warm_count]]
        for run, (name, label) in plan:
            # Start each click from an idle app, so one run's tail is not billed to the next.
            wait_idle(page)
            choose_sample(page, name)
            rows.append((run, name, label, wait_for_overlay(page, name)))
        device = model_device(page)
    return rows, device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Explain-page latency in a real browser.")
    parser.add_argument("--warm", type=int, default=6,
                        help=f"warm samples to time (at least {MIN_WARM}; default 6)")
    args = parser.parse_args(argv)
    if args.warm < MIN_WARM:
        parser.error(f"--warm must be at least {MIN_WARM}")

    rows, device = measure(args.warm)
    warm = [seconds for run, _, _, seconds in rows if run == "warm"]
    cold = next(seconds for run, _, _, seconds in rows if run == "cold")

    print(f"{'run':<6}{'sample':<18}{'label':<14}{'seconds':>8}")
    for run, name, label, seconds in rows:
        print(f"{run:<6}{name:<18}{label:<14}{seconds:>8.2f}")
    print(f"{'warm median':<38}{statistics.median(warm):>8.2f}")
    print(json.dumps({
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_s": [round(seconds, 3) for seconds in warm],
        "device": device,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
