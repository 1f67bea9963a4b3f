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
