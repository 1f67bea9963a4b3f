"""Agreement between two maps of one image: Spearman's rank correlation over all pixels
(ties given their mean rank) and the IoU of their top-20% regions.

- **IoU of the top-20% regions**: each map's region is its pixels at or above its own
  80th percentile; the score is |A ∩ B| / |A ∪ B|. Ties at the threshold are kept in
  (a plateau can make the region larger than 20%), except a plateau at the map's
  minimum: when at least 80% of the pixels share the lowest value (ReLU zeros in a
  sparse Grad-CAM), the region is the pixels above it, which may be smaller than 20%,
  because the floor is not the "top" of anything. A constant map (an empty one
  included) has no top region: its IoU is 0.0 and it is flagged as constant.
- **Spearman's rank correlation**: 0.0 for a constant map, flagged the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.explain.errors import ExplainError

TOP_FRACTION = 0.2  # the "top 20%" of a map: pixels at or above its 80th percentile


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks, ties given their mean rank.
    A constant map (e.g. all zero after the ReLU) has no order, so it correlates with
    nothing: 0, not NaN, which reads right on the curve (the map no longer agrees)."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties averaged (scipy.stats.rankdata's 'average')."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2  # mean of the ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def constant(values: np.ndarray) -> bool:
    """True for a map with one value everywhere (an empty map included): it has no order
    and no top region."""
    values = np.asarray(values)
    return values.size == 0 or bool(values.max() == values.min())


def top_region(values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The map's top `fraction` as a boolean mask: pixels at or above its (1 - fraction)
    quantile; a plateau at the minimum is left out, and a constant map has none (see the
    module's docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if constant(values):
        return np.zeros(values.shape, dtype=bool)
    threshold = np.quantile(values, 1.0 - fraction)
    if threshold <= values.min():
        return values > values.min()
    return values >= threshold


def agreement(map_a: np.ndarray, map_b: np.ndarray) -> dict[str, Any]:
    """{"iou_top20", "spearman", "constant": [a is constant, b is constant]} of two maps
    of one study image (the same shape: both at the study's resolution)."""
    a, b = np.asarray(map_a, dtype=np.float64), np.asarray(map_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ExplainError(f"maps of different shapes {a.shape} and {b.shape}: compare "
                           "them at the study's resolution")
    flags = [constant(a), constant(b)]
    if any(flags):
        # Neither measure is defined for a map with no order: 0, flagged, never NaN.
        return {"iou_top20": 0.0, "spearman": 0.0, "constant": flags}
    top_a, top_b = top_region(a), top_region(b)
    union = np.logical_or(top_a, top_b).sum()
    iou = float(np.logical_and(top_a, top_b).sum() / union) if union else 0.0
    return {"iou_top20": iou, "spearman": spearman(a, b), "constant": flags}
