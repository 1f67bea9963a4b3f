"""Do MedLens's Dice, IoU and HD95 (core.segment.metrics) give MONAI's numbers?

MONAI (and PyTorch) are not dependencies of MedLens: install them apart, and put them on
the path for this script only. PyPI's torch is the CUDA build: it imports only with its
CUDA libraries beside it (about 5.4 GB installed), even on a CPU:

    pip install --target /tmp/torch-full torch          # with its dependencies
    pip install --no-deps --target /tmp/monai-target monai
    PYTHONPATH=.:/tmp/torch-full:/tmp/monai-target .venv/bin/python bench/monai_agreement.py
        [--cases 300] [--json]

Random 2-D and 3-D masks (blobs, shifted shapes, sparse noise, empty ones) with
anisotropic spacing; each case through MONAI's `compute_dice(ignore_empty=True)`,
`compute_iou(ignore_empty=True)` and `compute_hausdorff_distance(percentile=95,
spacing=...)` on one foreground channel (include_background=True: the channel is a label,
not the background), and through ours. Prints how many cases agree within 1e-5 (NaN with
NaN, inf with inf), the largest difference, and the cases that disagree.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.segment.metrics import dice, hd95, iou  # noqa: E402


def masks(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A truth and a prediction of one of several kinds."""
    kind = int(rng.integers(0, 6))
    smooth = ndimage.gaussian_filter(rng.random(shape), 2.0)
    truth = smooth > np.quantile(smooth, rng.uniform(0.6, 0.95))
    if kind == 0:  # the truth shifted
        shift = tuple(int(s) for s in rng.integers(-3, 4, size=len(shape)))
        pred = np.roll(truth, shift, axis=tuple(range(len(shape))))
    elif kind == 1:  # grown or shrunk
        op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        pred = op(truth, iterations=int(rng.integers(1, 3)))
    elif kind == 2:  # sparse noise
        pred = rng.random(shape) < 0.02
    elif kind == 3:  # an empty prediction
        pred = np.zeros(shape, bool)
    elif kind == 4:  # an empty truth
        pred, truth = truth, np.zeros(shape, bool)
    else:  # both empty
        pred, truth = np.zeros(shape, bool), np.zeros(shape, bool)
    return pred, truth


def same(a: float, b: float, tolerance: float = 1e-5) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import monai
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

    rng = np.random.default_rng(args.seed)
    agree = {"dice": 0, "iou": 0, "hd95": 0}
    worst = {"dice": 0.0, "iou": 0.0, "hd95": 0.0}
    disagreements = []
    for case in range(args.cases):
        three_d = case % 2 == 1
        shape = tuple(int(s) for s in rng.integers(8, 20 if three_d else 48,
                                                   size=3 if three_d else 2))
        spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, size=len(shape)))
        pred, truth = masks(rng, shape)
        p = torch.from_numpy(pred[None, None].astype(np.float32))
        t = torch.from_numpy(truth[None, None].astype(np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI warns on each empty mask
            theirs = {
                "dice": float(compute_dice(p, t, include_background=True, ignore_empty=True)),
                "iou": float(compute_iou(p, t, include_background=True, ignore_empty=True)),
                "hd95": float(compute_hausdorff_distance(p, t, include_background=True,
                                                         percentile=95, spacing=spacing)),
            }
        ours = {"dice": dice(pred, truth), "iou": iou(pred, truth),
                "hd95": hd95(pred, truth, spacing)}
        for key in agree:
            if same(ours[key], theirs[key]):
                agree[key] += 1
                if math.isfinite(ours[key]):
                    worst[key] = max(worst[key], abs(ours[key] - theirs[key]))
            else:
                disagreements.append({"case": case, "measure": key, "shape": shape,
                                      "ours": ours[key], "monai": theirs[key]})
    result = {"monai": monai.__version__, "torch": torch.__version__, "cases": args.cases,
              "agree": agree, "largest_difference": worst,
              "disagreements": disagreements[:10]}
    if args.json:
        print(json.dumps(result, default=str))
        return
    print(f"MONAI {monai.__version__} (torch {torch.__version__}), {args.cases} cases, "
          "half 2-D, half 3-D, anisotropic spacing")
    for key in agree:
        print(f"  {key:5s}: {agree[key]}/{args.cases} agree; largest finite difference "
              f"{worst[key]:.2e}")
    for d in disagreements[:10]:
        print(f"  disagree: {d}")


if __name__ == "__main__":
    main()
