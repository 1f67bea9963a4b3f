"""Do two architectures look at the same place? braintumor-xception against
braintumor-vgg16 on the 17 brain-tumour samples, one method at a time.

Each model explains its own predicted class (the VGG16 through its Keras port for
gradient methods, on onnxruntime for forward-only ones such as occlusion); the maps are
compared at the sample's resolution with core.compare.agreement: IoU of the top-20%
regions and Spearman's rank correlation.

    PYTHONPATH=. .venv/bin/python bench/map_agreement.py [--methods gradcam,occlusion]
        [--option patch=0.25] [--json]

Prints a table per method (sample, true label, both predictions, IoU, Spearman), then the
mean and median of each measure; --json prints one JSON object instead. `--option KEY=VALUE`
goes to each method that has that option (occlusion's default patch of 1/8 costs ~90 s
a sample for the VGG16 on this 2-core CPU; patch=0.25 about a quarter of that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import models  # noqa: E402
from core.compare import combine, examine  # noqa: E402
from core.explain import METHODS  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import open_study  # noqa: E402

PAIR = ("braintumor-xception", "braintumor-vgg16")
# Two independent regions of 20% each: |A ∩ B| = 0.04, |A ∪ B| = 0.36 of the pixels.
CHANCE_IOU = 0.2 * 0.2 / (0.2 + 0.2 - 0.2 * 0.2)


def measure(method: str, options: dict) -> list[dict]:
    """One row per sample: both predictions and the agreement of both maps."""
    classifiers = [models.load(i) for i in PAIR]
    rows = []
    for sample in samples(classifiers[0].card):
        study = open_study(sample.path, name=sample.name)
        started = time.perf_counter()
        results = [examine(c, study, method, **options) for c in classifiers]
        p = combine(results, method).pairs[0]
        rows.append({
            "sample": sample.name, "truth": sample.label,
            "labels": [r.prediction.label for r in results],
            "confidence": [round(r.confidence, 4) for r in results],
            "explained_on": [r.explained_on for r in results],
            "iou_top20": p.iou_top20, "spearman": p.spearman, "constant": list(p.constant),
            "seconds": round(time.perf_counter() - started, 2),
        })
        print(f"  {method} {sample.name}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    return rows


def summary(rows: list[dict]) -> dict:
    iou = [r["iou_top20"] for r in rows]
    rho = [r["spearman"] for r in rows]
    return {
        "samples": len(rows),
        "same_label": sum(r["labels"][0] == r["labels"][1] for r in rows),
        "iou_top20": {"mean": statistics.fmean(iou), "median": statistics.median(iou),
                      "min": min(iou), "max": max(iou)},
        "spearman": {"mean": statistics.fmean(rho), "median": statistics.median(rho),
                     "min": min(rho), "max": max(rho)},
        "constant_maps": sum(bool(r["constant"]) for r in rows),
    }


def table(method: str, options: dict, rows: list[dict], s: dict) -> str:
    chosen = "".join(f" {k}={v:g}" for k, v in options.items())
    head = (f"{method}{chosen}: {PAIR[0]} vs {PAIR[1]} (maps on "
            f"{' / '.join(rows[0]['explained_on'])})\n"
            f"{'sample':16} {'truth':11} {'xception':18} {'vgg16':18} {'IoU20':>6} {'rho':>7}")
    lines = [head]
    for r in rows:
        (la, lb), (pa, pb) = r["labels"], r["confidence"]
        flag = " constant" if r["constant"] else ""
        lines.append(f"{r['sample']:16} {r['truth']:11} {f'{la} ({pa:.2f})':18} "
                     f"{f'{lb} ({pb:.2f})':18} {r['iou_top20']:6.3f} {r['spearman']:7.3f}{flag}")
    lines.append(f"mean IoU top-20% {s['iou_top20']['mean']:.3f} (median "
                 f"{s['iou_top20']['median']:.3f}, {s['iou_top20']['min']:.3f}-"
                 f"{s['iou_top20']['max']:.3f}); mean Spearman {s['spearman']['mean']:.3f} "
                 f"(median {s['spearman']['median']:.3f}, {s['spearman']['min']:.3f}-"
                 f"{s['spearman']['max']:.3f}); same label on {s['same_label']}/"
                 f"{s['samples']}; constant maps in {s['constant_maps']} pairs\n"
                 f"(two independent top-20% regions overlap by IoU {CHANCE_IOU:.3f} on "
                 "average; unrelated maps have Spearman 0)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="gradcam",
                        help="comma-separated methods (default: gradcam)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a method option, for each method that has it (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    given = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        try:
            given[key] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            parser.exit(2, f"map_agreement: --option {item}: expected KEY=NUMBER\n")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.exit(2, f"map_agreement: unknown method '{unknown[0]}' "
                       f"(known: {', '.join(METHODS)})\n")
    out = {}
    for method in methods:
        options = {k: v for k, v in given.items() if k in METHODS[method].options}
        rows = measure(method, options)
        out[method] = {"options": options, "rows": rows, "summary": summary(rows)}
        if not args.json:
            print(table(method, options, rows, out[method]["summary"]) + "\n", flush=True)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
