"""RISE: Randomized Input Sampling for Explanation.

Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018. https://arxiv.org/abs/1806.07421

Forward passes only: runs on ONNX models too.

The reference implementation (github.com/eclique/RISE, explanations.py) returns the
uncentred sum of Eq. 6 and shows it with matplotlib's `imshow`, which scales each map
from its own minimum to its maximum. MedLens normalises every map by its maximum only
(core.explain.maps.normalise), so the uncentred sum, which is about the mean score
E[f] everywhere plus a small contrast, showed as one colour. Measured with
bench/rise_range.py on braintumor-xception (500 masks, 8 cells, keep 0.5), before and
after centring: Te-me_0016 (E[f] = 0.90) 1st..99th percentile 0.86..0.99 -> 0.00..0.93,
deletion AUC 0.947 -> 0.683 (random maps 0.167), insertion 0.656 -> 0.994 (random
0.700); Te-gl_0010 (E[f] = 0.33) 0.72..0.99 -> 0.00..0.92, deletion 0.074 -> 0.101
(random 0.096), insertion 0.949 -> 0.944 (random 0.569). The mean score of the
masked images is subtracted first, which makes Eq. 6 the
covariance cov(f(I o M), M(lambda)) / E[M]: positive where keeping a pixel raises the
score, negative where it lowers it. It also removes the unevenness of the sum of the
masks themselves, which the uncentred sum carries as noise.
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
        mask_sum = np.zeros((height, width), np.float32)
        score_sum = np.zeros(n, np.float64)
        for start in range(0, samples, batch):
            masks = _masks(rng, min(batch, samples - start), cells, keep, height, width)
            for i in range(n):
                masked = image[i] * masks[..., None] + baseline * (1 - masks[..., None])
                one = [x[i:i + 1] for x in inputs]
                p = target_probability(model, one, target[i], batch, images=masked)
                # Eq. 6: S_{I,f}(lambda) ~ 1/(E[M] N) sum_i f(I o M_i) M_i(lambda)
                maps[i] += np.tensordot(p, masks, axes=1)
                score_sum[i] += float(np.sum(p))
            mask_sum += masks.sum(axis=0)
            done = start + len(masks)
            report(progress, done / samples, f"RISE: {done} of {samples} masks")
        # Centred Eq. 6 (see the module's note): sum_i (f_i - mean f) M_i
        # = sum_i f_i M_i - mean f * sum_i M_i.
        maps -= (score_sum / samples)[:, None, None].astype(np.float32) * mask_sum
        return Attribution(maps / (samples * keep), target,
                           info={"samples": samples,
                                 "mean_score": (score_sum / samples).tolist()})


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
