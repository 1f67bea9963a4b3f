"""RISE: Randomized Input Sampling for Explanation.

Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018. https://arxiv.org/abs/1806.07421

Forward passes only: runs on ONNX models too.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.method import Attribution, Method, Option, image_of, target_probability
from core.progress import report


class RISE(Method):
    name = "rise"
    title = "RISE"
    paper = "https://arxiv.org/abs/1806.07421"
    gradients = False
    options = {
        "samples": Option(500, "random masks (the paper uses 4000-8000)", int, 1, 20000),
        "cells": Option(8, "mask grid cells per side", int, 2, 64),
        "keep": Option(0.5, "probability that a cell is kept", float, 0.05, 0.95),
        "baseline": Option(0.0, "value of masked pixels, in model-input units "
                                "(the app passes black)", float),
        "seed": Option(0, "random seed (the same seed gives the same map)", int),
        "batch": Option(32, "masked images per forward pass", int, 1, 512),
    }

    def attribute(self, model, inputs, target, layer, progress, *, samples, cells, keep,
                  baseline, seed, batch) -> Attribution:
        target = known_targets(model, inputs, target)
        image = image_of(model, inputs)
        n, height, width, _ = image.shape
        rng = np.random.default_rng(seed)
        maps = np.zeros((n, height, width), np.float32)
        for start in range(0, samples, batch):
            masks = _masks(rng, min(batch, samples - start), cells, keep, height, width)
            for i in range(n):
                masked = image[i] * masks[..., None] + baseline * (1 - masks[..., None])
                one = [x[i:i + 1] for x in inputs]
                p = target_probability(model, one, target[i], batch, images=masked)
                # Eq. 6: S_{I,f}(lambda) ~ 1/(E[M] N) sum_i f(I o M_i) M_i(lambda)
                maps[i] += np.tensordot(p, masks, axes=1)
            done = start + len(masks)
            report(progress, done / samples, f"RISE: {done} of {samples} masks")
        return Attribution(maps / (samples * keep), target, info={"samples": samples})


def _masks(rng: np.random.Generator, count: int, cells: int, keep: float, height: int,
           width: int) -> np.ndarray:
    """Sec. 3.2: binary cells, upsampled bilinearly to (cells + 1) cell sizes and cropped
    at a random shift, so the masks are smooth and not aligned to one grid."""
    cell_h, cell_w = -(-height // cells), -(-width // cells)
    grid = (rng.random((count, cells, cells)) < keep).astype(np.float32)
    out = np.empty((count, height, width), np.float32)
    for k in range(count):
        big = cv2.resize(grid[k], ((cells + 1) * cell_w, (cells + 1) * cell_h),
                         interpolation=cv2.INTER_LINEAR)
        dy, dx = rng.integers(0, cell_h), rng.integers(0, cell_w)
        out[k] = big[dy:dy + height, dx:dx + width]
    return out
