"""Occlusion sensitivity.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014,
Sec. 4.2. https://arxiv.org/abs/1311.2901

Forward passes only: runs on ONNX models too.
"""

from __future__ import annotations

import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.method import Attribution, Method, Option, image_of, target_probability
from core.progress import report


class Occlusion(Method):
    name = "occlusion"
    title = "Occlusion"
    paper = "https://arxiv.org/abs/1311.2901"
    gradients = False
    options = {
        "patch": Option(0.125, "square patch side as a fraction of the image side",
                        float, 0.01, 1.0),
        "stride": Option(0.5, "step between patches as a fraction of the patch", float,
                         0.05, 1.0),
        "baseline": Option(0.0, "value the patch is filled with, in model-input units "
                                "(the app passes black)", float),
        "batch": Option(32, "occluded images per forward pass", int, 1, 512),
    }

    def attribute(self, model, inputs, target, layer, progress, *, patch, stride, baseline,
                  batch) -> Attribution:
        target = known_targets(model, inputs, target)
        image = image_of(model, inputs)
        n, height, width, _ = image.shape
        size = max(1, round(patch * min(height, width)))
        step = max(1, round(stride * size))
        tops = _starts(height, size, step)
        lefts = _starts(width, size, step)
        windows = [(t, left) for t in tops for left in lefts]
        maps = np.zeros((n, height, width), np.float32)
        for i in range(n):
            one = [x[i:i + 1] for x in inputs]
            base = target_probability(model, one, target[i])[0]
            drop = np.zeros((height, width), np.float32)
            count = np.zeros((height, width), np.float32)
            for start in range(0, len(windows), batch):
                part = windows[start:start + batch]
                occluded = np.repeat(image[i:i + 1], len(part), axis=0)
                for j, (t, left) in enumerate(part):
                    occluded[j, t:t + size, left:left + size] = baseline
                p = target_probability(model, one, target[i], batch, images=occluded)
                # Sec. 4.2: the class probability as a function of the occluder's position;
                # each pixel gets the mean drop over the patches that covered it.
                for (t, left), value in zip(part, base - p, strict=True):
                    drop[t:t + size, left:left + size] += value
                    count[t:t + size, left:left + size] += 1
                report(progress, (i + (start + len(part)) / len(windows)) / n,
                       f"Occlusion: {start + len(part)} of {len(windows)} patches")
            maps[i] = drop / np.maximum(count, 1)
        return Attribution(maps, target, info={"patches": len(windows), "patch_pixels": size})


def _starts(length: int, size: int, step: int) -> list[int]:
    """Patch origins covering [0, length), the last one flush with the edge."""
    starts = list(range(0, max(length - size, 0) + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts
