"""Segmentation speed, the two figures of the segmentation issue, measured in one run.

1. A whole 256x256x100 volume segmented (`core.segment.segment`: prepared and run in
   batches) against 100 single-slice forward passes (each slice prepared and run alone,
   as a page doing one slice at a time would): the ratio must not be above 1.
   The volume is the real head CT (InVesalius' Cranium, 108 slices of 256x256: its
   first 100), through head-ct-unet.
2. The Segment page in a real Chromium: from the key press that moves the slice slider
   to the next slice's picture with its mask decoded on the page; "cold" the first move
   after the mask was computed, "warm" the median of the further moves (target <= 0.3 s).

    .venv/bin/python bench/segment_speed.py [--repeats 3] [--moves 10] [--no-browser]

Prints a table per figure, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODEL = "head-ct-unet"
SLICES = 100


def volume_figure(repeats: int) -> dict:
    from core import models
    from core.segment import data
    from core.segment.run import segment

    study, _ = data.head_ct()
    # The first 100 axial slices: the volume of the issue (256x256x100).
    study = replace(study, pixels=study.pixels[:SLICES])
    segmenter = models.load(MODEL)
    card = segmenter.card
    plane = card.plane
    assert study.count(plane) == SLICES and study.image_shape == (256, 256), study.pixels.shape
    segment(segmenter, study, indices=[0, 1])  # traced and warm before timing

    def one_by_one() -> float:
        start = time.perf_counter()
        for i in range(SLICES):
            segmenter.probabilities(card.prepare(study, frame=i, plane=plane).batch)
        return time.perf_counter() - start

    def whole() -> float:
        start = time.perf_counter()
        segment(segmenter, study)
        return time.perf_counter() - start

    rows = []
    for _ in range(repeats):  # interleaved: the machine's load falls on both alike
        rows.append((whole(), one_by_one()))
    print(f"{'run':<5}{'whole volume s':>16}{'100 single slices s':>22}{'ratio':>8}")
    for k, (w, s) in enumerate(rows, 1):
        print(f"{k:<5}{w:>16.2f}{s:>22.2f}{w / s:>8.2f}")
    ratios = [w / s for w, s in rows]
    return {"volume": "256x256x100 (Cranium CT)", "model": MODEL,
            "whole_s": [round(w, 3) for w, _ in rows],
            "single_slices_s": [round(s, 3) for _, s in rows],
            "ratio_median": round(statistics.median(ratios), 3)}


def slider_figure(moves: int) -> dict:
    from playwright.sync_api import expect

    from tests.browser import (
        app_shell,
        chromium,
        press_timed,
        streamlit_server,
        viewer_image,
        wait_for_viewer_image,
        wait_idle,
        wait_jobs_done,
    )

    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="medlens-bench-") as scratch,
        streamlit_server(Path(scratch) / "server.log") as url,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(f"{url}/segment")
        expect(app_shell(page)).to_be_visible(timeout=120_000)
        wait_jobs_done(page, 600)
        image = viewer_image(page, "segment_image")
        expect(image).to_be_visible(timeout=600_000)
        wait_jobs_done(page, 600)  # the first slice's Seg-Grad-CAM too: warm means warm
        wait_idle(page)
        thumb = page.get_by_test_id("stSlider").filter(
            has=page.get_by_text("Slice", exact=True)).get_by_role("slider")
        for number in range(moves + 1):
            wait_idle(page)
            previous = image.get_attribute("src")
            press_timed(page, thumb, "ArrowRight")
            seconds = wait_for_viewer_image(page, previous, key="segment_image")
            rows.append(("cold" if number == 0 else "warm", seconds))
    warm = [s for run, s in rows if run == "warm"]
    print(f"{'move':<6}{'run':<6}{'seconds':>8}")
    for k, (run, s) in enumerate(rows):
        print(f"{k:<6}{run:<6}{s:>8.3f}")
    return {"page": "/segment", "cold_s": round(rows[0][1], 3),
            "warm_median_s": round(statistics.median(warm), 3),
            "warm_s": [round(s, 3) for s in warm]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Segmentation speed: volume and slider.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=3)
    out = {"volume": volume_figure(args.repeats)}
    if not args.no_browser:
        out["slider"] = slider_figure(args.moves)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
