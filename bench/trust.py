"""Which explanation method to believe for braintumor-xception: ROAD per method over the
17 labelled tumour samples (`core.evaluate.trust`, Rong et al. 2022,
https://arxiv.org/abs/2202.00449).

    .venv/bin/python bench/trust.py [--seeds 8] [--percentiles 10,20,50,70,90]
                                    [--methods gradcam,scorecam,...] [--limit N]

For Grad-CAM, Score-CAM, SmoothGrad, Integrated Gradients, occlusion and RISE (method
defaults): the mean ROAD combined score with its bootstrap 95% interval over the images,
the verdict counts against random maps at the method's own resolution (better /
indistinguishable / worse), how often the map beats its inversion, and the time ROAD and
its random baselines add as a multiple of the method's own time. One row per method as it
finishes, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import models  # noqa: E402
from core.evaluate import from_samples  # noqa: E402
from core.evaluate.trust import trust  # noqa: E402
from core.explain.metrics import PERCENTILES, SEEDS  # noqa: E402

MODEL = "braintumor-xception"
METHODS = ("gradcam", "smoothgrad", "scorecam", "integrated-gradients", "rise", "occlusion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--percentiles", default=",".join(map(str, PERCENTILES)))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    percentiles = [int(p) for p in args.percentiles.split(",")]
    classifier = models.load(MODEL)
    labelled = from_samples(classifier.card)
    print(f"{MODEL}, {args.limit or len(labelled.images)} samples, {args.seeds} random maps "
          f"per image, percentiles {percentiles}", flush=True)
    print(f"{'method':22} {'ROAD comb.':>10} {'95% interval':>18} {'▲':>3} {'≈':>3} {'▼':>3} "
          f"{'beats inv.':>10} {'map s':>7} {'ROAD s':>7} {'ROAD/map':>8}", flush=True)
    rows = []
    for method in args.methods.split(","):
        row = trust(classifier, labelled, [method], seeds=args.seeds, percentiles=percentiles,
                    limit=args.limit).table()[0]
        rows.append(row)
        print(f"{method:22} {row['road_combined']:+10.3f} "
              f"{row['road_low']:+8.3f} to {row['road_high']:+6.3f} {row['better']:3d} "
              f"{row['indistinguishable']:3d} {row['worse']:3d} "
              f"{row['beats_inversion']:4d} of {row['n']:<3d} {row['method_seconds']:7.2f} "
              f"{row['road_seconds']:7.2f} {row['road_multiple']:7.1f}x", flush=True)
    print(json.dumps({"model": MODEL, "seeds": args.seeds, "percentiles": percentiles,
                      "methods": rows}))


if __name__ == "__main__":
    main()
