"""Seg-Grad-CAM speed: each method on a region target, as a multiple of one compiled
forward pass of the same U-Net.

The U-Net is core.nets.unet((256, 256, 1), 3) with its default filters and depth (the
size of a built-in segmenter; weights untrained: timing needs no trained weights). The
region is a 64x64 box of label 1. Each method is warm (one untimed call traces it), then
the median of `--repeat` calls, each paired with forward passes timed just before it, so
load from other processes weighs on both alike. Also prints whether a new region
retraced anything (it must not).

    .venv/bin/python bench/region_explain_speed.py [--repeat 5] [--methods gradcam,...]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

QUICK = {"scorecam": {"max_channels": 32}, "smoothgrad": {"samples": 20},
         "integrated-gradients": {"steps": 128}, "rise": {"samples": 500}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--methods", default="gradcam,hirescam,layercam,gradcam++,saliency,"
                                             "smoothgrad,integrated-gradients,occlusion,rise,"
                                             "scorecam")
    args = parser.parse_args()

    from core.models.runtime.keras import forward_function, import_tensorflow

    tf = import_tensorflow()
    from core.explain import RegionTarget, explain
    from core.nets.unet import unet

    model = unet((256, 256, 1), 3)
    x = np.random.default_rng(0).random((1, 256, 256, 1)).astype(np.float32)
    region = np.zeros((256, 256), bool)
    region[96:160, 96:160] = True
    forward = forward_function(model)
    tensor = tf.constant(x)
    forward(tensor)

    def forward_seconds() -> float:
        start = time.perf_counter()
        forward(tensor)[0].numpy()
        return time.perf_counter() - start

    rows = {}
    for name in args.methods.split(","):
        options = QUICK.get(name, {})
        explain(model, x, name, target=RegionTarget(1, region), **options)  # traces
        ratios, seconds = [], []
        for i in range(args.repeat):
            base = statistics.median(forward_seconds() for _ in range(3))
            moved = region.copy()
            moved[i:i + 8] = True  # a new region each call: it must not retrace
            start = time.perf_counter()
            explain(model, x, name, target=RegionTarget(1 + i % 2, moved), **options)
            seconds.append(time.perf_counter() - start)
            ratios.append(seconds[-1] / base)
        rows[name] = {"seconds": statistics.median(seconds),
                      "x_forward": statistics.median(ratios)}
        print(f"{name:22s} {rows[name]['seconds']:8.3f} s  {rows[name]['x_forward']:7.1f}x")
    traces = {str(k): fn.experimental_get_tracing_count()
              for k, fn in model.__dict__["_medlens_compiled"].items()}
    print("traces per compiled function:", traces)
    print(json.dumps({"forward_s": statistics.median(forward_seconds() for _ in range(5)),
                      "methods": rows, "max_traces": max(traces.values())}))


if __name__ == "__main__":
    main()
