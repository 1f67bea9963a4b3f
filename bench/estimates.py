"""Cost estimates against actual times, through the same job path as the app.

For each method (default options), on braintumor-xception in one fresh process:
1. the first guess the Explain page shows (shipped multiple x this classifier's measured
   forward pass, `core.explain.costs.expected_seconds` with nothing recorded yet);
2. a cold run (the method's first in the process: tracing included) as an explain job
   on the process's executor, whose time `explain_input` records;
3. the estimate after it, then a warm run on another sample (another job key, so it is
   not the cached result), and the estimate after that, then a third run on a third
   sample. A run that traced TensorFlow functions is not recorded (costs.record), so the
   estimate after a cold run may still be the first guess.
Prints one row per method: each estimate / the actual time that followed, and whether it
is within 1.5x; then one JSON line.

    .venv/bin/python bench/estimates.py [--methods gradcam,rise] [--samples A.jpg,B.jpg]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import models  # noqa: E402
from core.explain import METHODS  # noqa: E402
from core.explain import costs as method_costs  # noqa: E402
from core.jobs import executor, explain_job  # noqa: E402
from core.models.inputs import prepare  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import open_study  # noqa: E402

WITHIN = 1.5


def ratio(estimate: float | None, actual: float) -> float | None:
    """estimate / actual (1 is exact; 0.5 is half the time it took)."""
    return None if estimate is None else estimate / actual


def ok(r: float | None) -> str:
    return "-" if r is None else ("yes" if 1 / WITHIN <= r <= WITHIN else "NO")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--samples", default="Te-me_0016.jpg,Te-gl_0010.jpg,Te-pi_0014.jpg")
    parser.add_argument("--model", default="braintumor-xception")
    args = parser.parse_args(argv)
    names = args.samples.split(",")
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    base = models.load(args.model)
    by_name = {s.name: s for s in samples(base.card)}
    print(f"{args.model}, samples {', '.join(names)} (cold, warm, warm); "
          f"costs shipped: {method_costs.measured_on()}")
    print(f"{'method':22s}" + "   estimate actual  ratio ok" * 3)
    for method in methods:
        classifier = models.load(args.model, "keras" if METHODS[method].gradients else None)
        inputs = [prepare(open_study(by_name[n].path), classifier.card.input_spec)
                  for n in names[:3]]
        forward = classifier.forward_seconds(inputs[0].batch)  # as the page measures it
        fp = classifier.fingerprint
        first = method_costs.expected_seconds(method, forward, {}, fp)
        times = []
        estimates = [first]
        for model_input in inputs:
            start = time.perf_counter()
            executor().submit(explain_job(classifier, model_input, method)).outcome()
            times.append(time.perf_counter() - start)
            estimates.append(method_costs.expected_seconds(method, forward, {}, fp))
        cells = ""
        for estimate, actual in zip(estimates, times, strict=False):
            r = ratio(estimate, actual)
            cells += f"   {estimate or 0:8.2f} {actual:6.2f} {r or 0:6.2f} {ok(r):>2s}"
        print(f"{method:22s}{cells}", flush=True)
        rows.append({"method": method, "forward_s": forward, "estimates_s": estimates[:3],
                     "actual_s": times})
    print(json.dumps({"bench": "estimates", "model": args.model, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
