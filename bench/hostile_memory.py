"""Peak memory of opening, showing and preparing each hostile file of issue 12.

Each file is built from its description (tests/unit/hostile.py) in a temporary folder,
then opened in a fresh interpreter of its own (`python -m tests.unit.hostile PATH`),
which reports its peak resident memory (VmHWM). The bound is the issue's: a fixed
base of a few hundred MB plus 3x the study's float32 size when it opens.

    .venv/bin/python bench/hostile_memory.py [--budget MB] [--only NAME ...] [--json]

--budget sets MEDLENS_STUDY_MEMORY_MB for the children (default: the server default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.unit.hostile import BUDGET_ENV, CASES  # noqa: E402

BASE_MB = 300  # the fixed base the bound allows (interpreter, libraries, small buffers)


def measure(path: Path, budget: int | None) -> dict:
    env = dict(os.environ)
    if budget is not None:
        env[BUDGET_ENV] = str(budget)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tests.unit.hostile", str(path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"crashed (exit {done.returncode})", "message": tail,
                "peak_mb": float("nan"), "seconds": round(time.perf_counter() - started, 1)}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, help=f"{BUDGET_ENV} for the children")
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="medlens-hostile-") as scratch:
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            path = case.write(Path(scratch))
            result = measure(path, args.budget)
            opened = result["outcome"] == "opened"
            bound = BASE_MB + 3 * (result.get("float32_mb", 0.0) if opened else 0.0)
            rows.append({"name": case.name, "file_kb": round(path.stat().st_size / 1024, 1),
                         "outcome": result["outcome"], "peak_mb": result["peak_mb"],
                         "bound_mb": round(bound), "within": result["peak_mb"] <= bound,
                         "seconds": result.get("seconds"),
                         "message": result.get("message", "; ".join(result.get("notes", [])))})
            path.unlink()
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return
    print(f"{'file':32} {'size KB':>9} {'outcome':12} {'peak MB':>8} {'bound':>6}  ok  "
          f"{'s':>5}  message")
    for r in rows:
        print(f"{r['name']:32} {r['file_kb']:9.1f} {r['outcome'][:12]:12} {r['peak_mb']:8.0f} "
              f"{r['bound_mb']:6d}  {'yes' if r['within'] else 'NO ':3} {r['seconds'] or 0:5.1f}"
              f"  {r['message'][:110]!r}")


if __name__ == "__main__":
    main()
