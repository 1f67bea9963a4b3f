"""Explain-page latency as a user sees it, timed in a real Chromium against a fresh server.

From the click on a sample to its Grad-CAM overlay being visible and decoded:
"cold" is the first sample after server start (the server warms its models in the
background from its first run: `--after S` waits S seconds before that click, else the
click races the warm-up), "warm" the median over further, different samples, and
"switch" the first chest X-ray after switching the model to pneumonia-xception (its
load and tracing, unless the warm-up did them).

    .venv/bin/python bench/explain_latency.py [--warm N] [--after S]

Prints a table, then one JSON line: {"cold_s", "warm_median_s", "warm_s",
"switch_model_s", "switch_s", "device"}; "switch_model_s" is the model pick until the
page is idle, timed from here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import chain, zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from playwright.sync_api import expect  # noqa: E402

from core.models import card  # noqa: E402
from tests.browser import (  # noqa: E402
    choose_option,
    choose_sample,
    chromium,
    model_device,
    open_explain,
    sample_options,
    streamlit_server,
    wait_for_overlay,
    wait_idle,
    wait_jobs_done,
)

MIN_WARM = 5
SWITCH_TO = "pneumonia-xception"


def spread(options: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """Up to `count` samples taken across labels in turn, so every class gets timed."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for option in options:
        by_label.setdefault(option[1], []).append(option)
    interleaved = chain.from_iterable(zip_longest(*by_label.values()))
    return [option for option in interleaved if option is not None][:count]


def measure(warm_count: int, after_s: float = 0.0
            ) -> tuple[list[tuple[str, str, str, float]], str, float]:
    """Rows of (run, sample, label, seconds) on a fresh server, the model's device, and
    the seconds from picking the other model until the page was idle."""
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
        time.sleep(after_s)
        for run, (name, label) in plan:
            # Start each click from an idle app with no job left running (the last map's
            # AUCs), so one run's tail is not billed to the next.
            wait_jobs_done(page)
            choose_sample(page, name)
            rows.append((run, name, label, wait_for_overlay(page, name)))
        device = model_device(page)

        wait_jobs_done(page)
        picked = time.perf_counter()
        choose_option(page, "Model", SWITCH_TO)
        # Its task under the picker and its own samples in the list: the rerun is drawn.
        expect(page.get_by_text(card(SWITCH_TO).purpose, exact=True)).to_be_visible(
            timeout=120_000)
        wait_idle(page)
        switch_model_s = time.perf_counter() - picked
        name, label = sample_options(page)[0]
        choose_sample(page, name)
        rows.append(("switch", name, label, wait_for_overlay(page, name)))
    return rows, device, switch_model_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Explain-page latency in a real browser.")
    parser.add_argument("--warm", type=int, default=6,
                        help=f"warm samples to time (at least {MIN_WARM}; default 6)")
    parser.add_argument("--after", type=float, default=0.0,
                        help="seconds to wait after the page opens before the first "
                             "click (default 0: race the server's warm-up)")
    args = parser.parse_args(argv)
    if args.warm < MIN_WARM:
        parser.error(f"--warm must be at least {MIN_WARM}")

    rows, device, switch_model_s = measure(args.warm, args.after)
    warm = [seconds for run, _, _, seconds in rows if run == "warm"]
    cold = next(seconds for run, _, _, seconds in rows if run == "cold")
    switch = next(seconds for run, _, _, seconds in rows if run == "switch")

    print(f"{'run':<8}{'sample':<32}{'label':<12}{'seconds':>8}")
    for run, name, label, seconds in rows:
        print(f"{run:<8}{name:<32}{label:<12}{seconds:>8.2f}")
    print(f"{'warm median':<52}{statistics.median(warm):>8.2f}")
    print(f"{'pick ' + SWITCH_TO + ' until idle':<52}{switch_model_s:>8.2f}")
    print(json.dumps({
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_s": [round(seconds, 3) for seconds in warm],
        "switch_model_s": round(switch_model_s, 3),
        "switch_s": round(switch, 3),
        "device": device,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
