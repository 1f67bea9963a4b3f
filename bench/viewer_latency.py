"""Viewer latency as a user sees it: a window change, timed in a real Chromium.

On a fresh server, open a built-in example on /viewer, then pick window presets one
after another. Each is timed from the click on the preset to the new picture being
visible and decoded in the page: "cold" is the first change after the example opened
on the fresh server, "warm" the median over the further changes.

    .venv/bin/python bench/viewer_latency.py [--warm N] [--example FILE]

Prints a table, then one JSON line: {"example", "cold_s", "warm_median_s", "warm_s"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from core.studies.viewing import EXAMPLES  # noqa: E402
from tests.browser import (  # noqa: E402
    choose_option,
    chromium,
    open_viewer,
    select_options,
    streamlit_server,
    viewer_caption,
    viewer_image,
    wait_for_viewer_image,
    wait_idle,
)

MIN_WARM = 5
PRESET = "Window preset"


def measure(example: str, warm_count: int) -> list[tuple[str, str, str, float]]:
    """Rows of (run, preset picked, caption shown, seconds) on a fresh server."""
    rows: list[tuple[str, str, str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="medlens-bench-") as scratch,
        streamlit_server(Path(scratch) / "server.log") as url,
        chromium() as browser,
    ):
        page = open_viewer(browser, url)
        choose_option(page, "Example", f"{EXAMPLES[example].title} ({example})")
        wait_for_viewer_image(page, None)
        wait_idle(page)
        presets = select_options(page, PRESET)
        if len(presets) < 2:
            raise SystemExit(f"{example}: only {len(presets)} window preset(s)")
        # The presets in turn, starting after the one shown: each pick changes the window.
        plan = [presets[(i + 1) % len(presets)] for i in range(warm_count + 1)]
        for number, preset in enumerate(plan):
            # Start each pick from an idle app, so one run's tail is not billed to the next.
            wait_idle(page)
            previous = viewer_image(page).get_attribute("src")
            choose_option(page, PRESET, preset)
            seconds = wait_for_viewer_image(page, previous)
            wait_idle(page)
            rows.append(("cold" if number == 0 else "warm", preset, viewer_caption(page),
                         seconds))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Viewer window-change latency in a browser.")
    parser.add_argument("--warm", type=int, default=8,
                        help=f"warm window changes to time (at least {MIN_WARM}; default 8)")
    parser.add_argument("--example", default="693_UNCR.dcm", choices=sorted(EXAMPLES),
                        help="built-in example to window (default 693_UNCR.dcm, 512x512 CT)")
    args = parser.parse_args(argv)
    if args.warm < MIN_WARM:
        parser.error(f"--warm must be at least {MIN_WARM}")

    rows = measure(args.example, args.warm)
    warm = [seconds for run, _, _, seconds in rows if run == "warm"]
    cold = next(seconds for run, _, _, seconds in rows if run == "cold")

    print(f"{'run':<6}{'preset':<34}{'seconds':>8}")
    for run, preset, _, seconds in rows:
        print(f"{run:<6}{preset[:33]:<34}{seconds:>8.3f}")
    print(f"{'warm median':<40}{statistics.median(warm):>8.3f}")
    print(json.dumps({
        "example": args.example,
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_s": [round(seconds, 3) for seconds in warm],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
