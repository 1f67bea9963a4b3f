"""How long opening and showing a study takes, through the same calls as the viewer.

(a) a 512x512 CT slice (pydicom-data 693_UNCR.dcm): open_study + display;
(b) a 100-slice 512x512 CT series in a folder (tests.series.write_series): open_study,
    then the middle axial slice and the middle coronal reformat through display;
(c) the same series as one .zip (deflated).

Each case runs once to warm up (page cache, imports), then --runs times; medians are
reported, total and split into open / render.

    .venv/bin/python bench/study_speed.py [--runs N] [--slices N]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.studies import Study, open_study  # noqa: E402
from tests.conftest import dicom_file  # noqa: E402
from tests.series import write_series  # noqa: E402


def timed(path: Path, render: Callable[[Study], None], runs: int) -> dict[str, float]:
    """Median seconds to open `path` and render it, after one warm-up run."""
    opens, renders, totals = [], [], []
    for run in range(runs + 1):
        started = time.perf_counter()
        study = open_study(path)
        opened = time.perf_counter()
        render(study)
        done = time.perf_counter()
        if run:  # run 0 is the warm-up
            opens.append(opened - started)
            renders.append(done - opened)
            totals.append(done - started)
    return {"median_s": round(statistics.median(totals), 4),
            "open_s": round(statistics.median(opens), 4),
            "render_s": round(statistics.median(renders), 4)}


def show_slice(study: Study) -> None:
    study.display(study.default_index())


def show_axial_and_coronal(study: Study) -> None:
    assert study.is_volume, study.notes
    study.display(study.default_index("axial"), None, "axial")
    study.display(study.default_index("coronal"), None, "coronal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medlens-bench-") as scratch:
        folder = Path(scratch) / "series"
        files = write_series(folder, slices=args.slices)
        archive = Path(scratch) / "series.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            for file in files:
                out.write(file, f"series/{file.name}")
        results = {
            "ct_slice_512": timed(dicom_file("693_UNCR.dcm"), show_slice, args.runs),
            "series_folder": timed(folder, show_axial_and_coronal, args.runs),
            "series_zip": timed(archive, show_axial_and_coronal, args.runs),
        }
        sizes = {"series_folder_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
                 "series_zip_mb": round(archive.stat().st_size / 1e6, 1)}
    print(json.dumps({**results, "slices": args.slices, "runs": args.runs, **sizes,
                      "cpu_count": os.cpu_count(), "machine": platform.machine(),
                      "python": platform.python_version()}))


if __name__ == "__main__":
    main()
