"""Each architecture's default recipe on its default built-in task: images (or volumes) per
second in training, time per epoch, and the time until the validation metric first
reaches its target; the figure every default recipe must reach within 3 minutes.

    .venv/bin/python bench/train_speed.py [--arch cnn,vit] [--out /tmp/train-bench]

Prints one table (markdown) and writes the GAN's sample grids at the start, middle and end
to OUT/dcgan-epoch-N.png. Run on a quiet machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from core.train.config import default_config  # noqa: E402
from core.train.data import task  # noqa: E402
from core.train.fit import train  # noqa: E402
from core.train.live import Live  # noqa: E402

# The validation metric each default recipe is held to, and the value that makes the
# result useful for a lesson (chance is far below each).
TARGETS = {
    "cnn": ("val_accuracy", 0.80),
    "transfer": ("val_accuracy", 0.80),
    "vit": ("val_accuracy", 0.75),
    "unet": ("val_dice", 0.80),
    "recurrent": ("val_accuracy", 0.80),
    "cnn3d": ("val_accuracy", 0.80),
    "dcgan": (None, None),
}


def run(arch: str, out: Path) -> dict:
    config = default_config(arch)
    data = task(config.builtin_task).make(config.size)
    record = Live()
    started = time.perf_counter()
    trained = train(config, data, live=record)
    wall = time.perf_counter() - started
    rows = record.snapshot()["epochs"]
    seconds = [rows[0]["seconds"]] + [b["seconds"] - a["seconds"]
                                      for a, b in zip(rows, rows[1:], strict=False)]
    per_epoch = float(np.median(seconds))
    samples = len(trained.split.train)
    metric, target = TARGETS[arch]
    reached = None
    if metric:
        reached = next((r["seconds"] for r in rows if r.get(metric, -1) >= target), None)
    best = max((r.get(metric, float("nan")) for r in rows), default=float("nan")) \
        if metric else None
    if arch == "dcgan":
        from PIL import Image

        grids = trained.grids
        for i in sorted({0, len(grids) // 2, len(grids) - 1}):
            epoch, picture = grids[i]
            Image.fromarray(np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)).save(
                out / f"dcgan-epoch-{epoch}.png")
    return {"arch": arch, "task": config.data, "size": "x".join(map(str, config.size)),
            "params": trained.parameters, "epochs": trained.epochs_run,
            "train_samples": samples, "samples_per_s": round(samples / per_epoch, 1),
            "s_per_epoch": round(per_epoch, 2), "metric": metric, "target": target,
            "best": None if best is None else round(best, 3),
            "s_to_target": None if reached is None else round(reached, 1),
            "test": trained.test, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="cnn,transfer,unet,vit,recurrent,cnn3d,dcgan")
    parser.add_argument("--out", type=Path, default=Path("/tmp/train-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    print("| arch | task | size | params | train samples | samples/s | s/epoch | epochs | "
          "metric (target) | best | s to target | held-out | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for arch in args.arch.split(","):
        r = run(arch, args.out)
        results.append(r)
        held = ", ".join(f"{k} {v}" for k, v in r["test"].items() if not isinstance(v, dict))
        print(f"| {r['arch']} | {r['task']} | {r['size']} | {r['params']:,} | "
              f"{r['train_samples']} | {r['samples_per_s']} | {r['s_per_epoch']} | "
              f"{r['epochs']} | {r['metric'] or '-'} ({r['target'] or '-'}) | "
              f"{r['best'] if r['best'] is not None else '-'} | "
              f"{r['s_to_target'] if r['s_to_target'] is not None else '-'} | {held} | "
              f"{r['wall_s']} |", flush=True)
    (args.out / "train_speed.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
