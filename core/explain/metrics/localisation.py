"""Localisation: does the map find the lesion? The pointing game and IoU.

Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down Neural Attention by Excitation
Backprop", ECCV 2016 / IJCV 2018, Sec. 5.1. https://arxiv.org/abs/1608.00507
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.explain.errors import ExplainError

# -- localisation --------------------------------------------------------------------------

# Zhang et al. (Sec. 5.1) count a hit within 15 pixels of an annotated object, to allow
# for imprecise annotations.
POINTING_TOLERANCE = 15.0


@dataclass(frozen=True)
class Localisation:
    """Does the map find the region? `pointing_hit`: its maximum lies in the region (with
    `tolerance` pixels of slack); `iou`: intersection over union of the map thresholded
    at `threshold` of its maximum and the region."""

    pointing_hit: bool
    iou: float
    threshold: float
    tolerance: float = POINTING_TOLERANCE

    def to_dict(self) -> dict[str, float | bool]:
        return {"pointing_hit": self.pointing_hit, "iou": self.iou,
                "threshold": self.threshold, "tolerance": self.tolerance}


def localisation(saliency: np.ndarray, mask: np.ndarray | None = None,
                 box: tuple[int, int, int, int] | None = None, threshold: float = 0.5,
                 tolerance: float = POINTING_TOLERANCE) -> Localisation:
    """The pointing game and IoU of a map (h, w) against a region: a boolean `mask`
    (h, w) or a `box` (top, left, bottom, right) in the map's pixels, bottom and right
    excluded (as in slicing). Distances are in the map's pixels: scale `tolerance` with
    the map (15 px is the paper's, on images of a few hundred pixels)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim == 3 and len(saliency) == 1:
        saliency = saliency[0]
    if saliency.ndim != 2:
        raise ExplainError(f"saliency of shape {saliency.shape}, expected (h, w)")
    region = _region(saliency.shape, mask, box)
    if not 0 < threshold <= 1:
        raise ExplainError("threshold must be in (0, 1]")
    if tolerance < 0:
        raise ExplainError("tolerance must be at least 0")
    saliency = np.nan_to_num(saliency)
    peak = saliency.max()

    # Pointing game: the maximum point (the first in raster order where several pixels
    # share it, as np.argmax gives), a hit if it lies within `tolerance` of the region.
    # An empty map (no positive value) points at nothing: a miss.
    outside = (~region).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    hit = bool(peak > 0 and distance.flat[np.argmax(saliency)] <= tolerance)

    # IoU of {map >= threshold * max} and the region; an empty map (max 0) selects nothing.
    selected = saliency >= threshold * peak if peak > 0 else np.zeros_like(region)
    union = np.logical_or(selected, region).sum()
    iou = float(np.logical_and(selected, region).sum() / union)
    return Localisation(pointing_hit=hit, iou=iou, threshold=float(threshold),
                        tolerance=float(tolerance))


def _region(shape: tuple[int, int], mask, box) -> np.ndarray:
    if (mask is None) == (box is None):
        raise ExplainError("give a mask or a box (one of them)")
    if mask is not None:
        region = np.asarray(mask).astype(bool)
        if region.shape != tuple(shape):
            raise ExplainError(f"mask of shape {region.shape}, the map is {tuple(shape)}")
    else:
        top, left, bottom, right = (int(v) for v in box)
        if not (0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]):
            raise ExplainError(f"box {tuple(box)} is not inside the map "
                               f"({shape[0]} x {shape[1]}) as (top, left, bottom, right)")
        region = np.zeros(shape, bool)
        region[top:bottom, left:right] = True
    if not region.any():
        raise ExplainError("the mask is empty")
    return region
