"""Maps: normalised to [0, 1], resized, and gradients reduced over channels."""

from __future__ import annotations

import cv2
import numpy as np


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum: [0, 1], zero where there is no positive evidence."""
    maps = np.maximum(np.nan_to_num(maps), 0).astype(np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    peak[peak == 0] = 1.0
    return maps / peak[:, None, None]


# A map is flat when 99% of it lies within this fraction of its peak (its 1st percentile
# above 1 - FLAT_RANGE of its maximum): on the jet colormap the top quarter of the scale
# is orange to dark red, so such a map paints one warm colour over the whole image and
# shows nothing. Measured: RISE's uncentred sum on braintumor-xception, Te-me_0016, had
# its 1st percentile at 0.86 of its peak (bench/rise_range.py).
FLAT_RANGE = 0.25


def dynamic_range(values: np.ndarray) -> float:
    """How much of [0, peak] a map spans, as a fraction of its peak: 1 - (1st percentile /
    maximum). 0 for an empty (all-zero) or constant map; near 1 for a map with a clear
    low background. The 1st percentile, not the minimum, so a few stray pixels do not
    decide, and the maximum, not the 99th percentile, so a small bright spot counts."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0:
        return 0.0
    return float(1.0 - max(float(np.percentile(values, 1)), 0.0) / peak)


def is_flat(values: np.ndarray) -> bool:
    """Whether a map is too flat to show anything (`dynamic_range` below FLAT_RANGE); an
    empty map is flat too (callers that say "empty" check that first)."""
    return dynamic_range(values) < FLAT_RANGE


def resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a batch of 2-D maps."""
    if maps.shape[1:] == (height, width):
        return maps.astype(np.float32)
    return np.stack(
        [cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
         for m in maps]
    )


def channel_magnitude(gradients: np.ndarray) -> np.ndarray:
    """(N, h, w) from (N, h, w, c): the largest absolute value over the channels, as
    Simonyan et al. (2014, Sec. 3.1) reduce an RGB gradient to one map."""
    return np.abs(gradients).max(axis=-1)
