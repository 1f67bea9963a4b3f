"""Fuzz the study readers: open and show thousands of mutated files.

The seeds are the real files the tests use (pydicom's CT, MR in several transfer
syntaxes, palette and multi-frame files; nibabel's NIfTI brains; the model packages'
JPEGs; zips of these; tests/unit/hostile.py `corpus`). Each case mutates one seed (bytes,
or one DICOM attribute, NIfTI header field or zip entry, one to three times) and opens
it through the same calls as the Viewer and the model input (`hostile.show`). A case is
clean when it opens and shows, or raises StudyError with one printable line of at most
300 characters naming the file; anything else is a failure, listed with how to rebuild
it (`--case N`).

    .venv/bin/python bench/fuzz_studies.py --cases 3000 --seed 0 [--workers 2] [--save DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.unit.hostile import corpus, mutant, one_line_naming, outcome  # noqa: E402

_seeds: dict[str, bytes] = {}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ANN001
    raise _Timeout


def case_data(seed: int, index: int) -> tuple[str, bytes]:
    """The mutated file of case `index` under `seed` (the same on every run)."""
    if not _seeds:
        _seeds.update(corpus())
    name, data = mutant(random.Random(f"{seed}:{index}"), _seeds)
    return f"{name}#{index}", data


def run_case(job: tuple[int, int, int]) -> dict:
    seed, index, timeout = job
    name, data = case_data(seed, index)
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        result = outcome(data, name)
    except _Timeout:
        result = {"outcome": "other", "type": "timeout", "message": f"over {timeout} s"}
    finally:
        signal.alarm(0)
    if result["outcome"] == "study_error" and not one_line_naming(result["message"], name):
        result = {"outcome": "other", "type": "StudyError (not one line naming the file)",
                  "message": result["message"][:500]}
    result.update(index=index, name=name, seconds=time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per case")
    parser.add_argument("--case", type=int, help="run only this case, in this process")
    parser.add_argument("--save", type=Path, help="write each failing file into this folder")
    args = parser.parse_args()

    if args.case is not None:
        print(run_case((args.seed, args.case, args.timeout)))
        return
    started = time.perf_counter()
    _seeds.update(corpus())  # once, before the workers fork: each inherits it
    jobs = [(args.seed, i, args.timeout) for i in range(args.cases)]
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=250) as pool:
        results = list(pool.imap_unordered(run_case, jobs, chunksize=8))
    results.sort(key=lambda r: r["index"])
    counts = Counter(r["outcome"] for r in results)
    failures = [r for r in results if r["outcome"] == "other"]
    slowest = max(results, key=lambda r: r["seconds"])
    print(f"seed {args.seed}, {time.perf_counter() - started:.0f} s, {args.workers} workers")
    print(f"{'cases tried':24} {len(results):6d}")
    print(f"{'clean errors':24} {counts['study_error']:6d}")
    print(f"{'opened and shown':24} {counts['opened']:6d}")
    print(f"{'anything else':24} {counts['other']:6d}")
    print(f"slowest case: #{slowest['index']} {slowest['seconds']:.2f} s ({slowest['name']})")
    kinds = Counter(r.get("type", "?") for r in failures)
    for kind, count in kinds.most_common():
        print(f"  {count:5d} {kind}")
    for r in failures:
        print(f"FAIL #{r['index']} {r['name']}: {r.get('type')}: {r['message'][:200]!r}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            _, data = case_data(args.seed, r["index"])
            (args.save / f"case{r['index']}.bin").write_bytes(data)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
