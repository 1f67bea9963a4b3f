"""Localisation: does the map find the lesion? The pointing game, the energy-based
pointing game and IoU, against a mask (ground truth or a segmenter's prediction).

- Pointing game: Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down Neural
  Attention by Excitation Backprop", ECCV 2016 / IJCV 2018, Sec. 5.1.
  https://arxiv.org/abs/1608.00507
- Energy-based pointing game: Wang et al., "Score-CAM: Score-Weighted Visual
  Explanations for Convolutional Neural Networks", CVPR workshops 2020, "Localization
  Evaluation".
  https://arxiv.org/abs/1910.01279

Each number comes with what a map that knows nothing would get (a uniform map's energy
share is the mask's area fraction; a point dropped at random hits with the share of
pixels within the tolerance of the mask), so a reader can judge it: CheXlocalize
(Saporta et al. 2022) found saliency maps localise worse than humans.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.explain.errors import ExplainError
from core.explain.method import Option

# -- localisation --------------------------------------------------------------------------

# Zhang et al. (Sec. 5.1) count a hit within 15 pixels of an annotated object, to allow
# for imprecise annotations.
POINTING_TOLERANCE = 15.0

# The options of the pointing games, declared as data for the CLI and the page.
OPTIONS = {
    "tolerance": Option(POINTING_TOLERANCE, "pointing game: a hit counts within this many "
                        "pixels of the mask, at the mask's resolution (Zhang et al.: 15)",
                        float, 0.0),
}


def _pair(saliency: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A map (h, w) and a non-empty boolean mask of the same size, or a one-line error."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim == 3 and len(saliency) == 1:
        saliency = saliency[0]
    if saliency.ndim != 2:
        raise ExplainError(f"saliency of shape {saliency.shape}, expected (h, w)")
    return np.nan_to_num(saliency), _region(saliency.shape, mask, None)


def _hit_area(region: np.ndarray, tolerance: float) -> np.ndarray:
    """The pixels within `tolerance` of the region (Euclidean, in pixels)."""
    if tolerance < 0:
        raise ExplainError("tolerance must be at least 0")
    outside = (~region).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= tolerance


def pointing_game(saliency: np.ndarray, mask: np.ndarray,
                  tolerance: float = POINTING_TOLERANCE) -> bool:
    """A hit when the map's maximum lies within `tolerance` pixels of the mask (Zhang et
    al. 2018, Sec. 5.1; map and mask the same size). The first maximum in raster order
    where several pixels share it (as np.argmax gives); an empty map (no positive value)
    points at nothing: a miss."""
    saliency, region = _pair(saliency, mask)
    return bool(saliency.max() > 0
                and _hit_area(region, tolerance).flat[np.argmax(saliency)])


def energy_pointing_game(saliency: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's mass inside the mask (Wang et al. 2020):
    sum(L * mask) / sum(L), with the map's negative values set to 0 first (the paper's
    maps are non-negative). NaN for an empty map, which has no mass to share."""
    saliency, region = _pair(saliency, mask)
    saliency = np.maximum(saliency, 0).astype(np.float64)
    total = saliency.sum()
    # Proportion = sum_{(i,j) in bbox} L_ij / sum_{(i,j)} L_ij
    return float(saliency[region].sum() / total) if total > 0 else float("nan")


def uniform_energy(mask: np.ndarray) -> float:
    """The energy share a uniform map would get: the mask's area fraction."""
    region = np.asarray(mask).astype(bool)
    return float(region.mean())


def random_hit(mask: np.ndarray, tolerance: float = POINTING_TOLERANCE) -> float:
    """The chance that a point dropped uniformly at random counts as a pointing-game hit:
    the share of pixels within `tolerance` of the mask."""
    region = np.asarray(mask).astype(bool)
    return float(_hit_area(region, tolerance).mean())


def localisation_report(maps: np.ndarray, mask: np.ndarray,
                        tolerance: float = POINTING_TOLERANCE) -> dict:
    """The pointing game and the energy-based pointing game of a batch of maps (N, h, w)
    (or one map) against one mask (h, w) or one per map (N, h, w), each beside what a
    map that knows nothing would get. Plain numbers and lists, for the CLI's JSON.

    Masks are at the maps' resolution: resize the maps to the mask (bilinear), never the
    mask to the maps, so the tolerance is in the mask's pixels as Zhang et al. count it."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    mask = np.asarray(mask)
    masks = np.broadcast_to(mask, maps.shape) if mask.ndim == 2 else mask
    if masks.shape != maps.shape:
        raise ExplainError(f"masks of shape {mask.shape} for maps of shape {maps.shape}")
    hits = [pointing_game(m, k, tolerance) for m, k in zip(maps, masks, strict=True)]
    energy = [energy_pointing_game(m, k) for m, k in zip(maps, masks, strict=True)]
    uniform = [uniform_energy(k) for k in masks]
    chance = [random_hit(k, tolerance) for k in masks]
    valid = [e for e in energy if np.isfinite(e)]
    return {
        "pointing_game": hits,
        "hit_rate": float(np.mean(hits)),
        "random_hit": chance,
        "energy": energy,
        "mean_energy": float(np.mean(valid)) if valid else float("nan"),
        "uniform_energy": uniform,
        "tolerance": float(tolerance),
    }


@dataclass(frozen=True)
class Localisation:
    """Does the map find the region? `pointing_hit`: its maximum lies in the region (with
    `tolerance` pixels of slack); `iou`: intersection over union of the map thresholded
    at `threshold` of its maximum and the region; `energy`: the share of the map's mass
    in the region, beside `uniform_energy`, a uniform map's share."""

    pointing_hit: bool
    iou: float
    threshold: float
    tolerance: float = POINTING_TOLERANCE
    energy: float = float("nan")  # the energy-based pointing game (NaN: empty map)
    uniform_energy: float = float("nan")  # what a uniform map gets: the region's area share

    def to_dict(self) -> dict[str, float | bool]:
        return {"pointing_hit": self.pointing_hit, "iou": self.iou,
                "threshold": self.threshold, "tolerance": self.tolerance,
                "energy": self.energy, "uniform_energy": self.uniform_energy}


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
    hit = pointing_game(saliency, region, tolerance)

    # IoU of {map >= threshold * max} and the region; an empty map (max 0) selects nothing.
    selected = saliency >= threshold * peak if peak > 0 else np.zeros_like(region)
    union = np.logical_or(selected, region).sum()
    iou = float(np.logical_and(selected, region).sum() / union)
    return Localisation(pointing_hit=hit, iou=iou, threshold=float(threshold),
                        tolerance=float(tolerance),
                        energy=energy_pointing_game(saliency, region),
                        uniform_energy=uniform_energy(region))


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


# -- a map against a study's mask ------------------------------------------------------------

def mask_region(mask, index: int, plane: str | None,
                segment: str | None = None) -> tuple[np.ndarray, str]:
    """One slice of a label map (`core.studies.masks.LabelMap`, fitted to the study) as a
    boolean region: the segment named `segment` (any case), or every segment for None;
    and what it is, in words. An unknown segment is a one-line error."""
    view = mask.view(index, plane)
    if segment is None:
        return view > 0, "every segment of the mask"
    for s in mask.segments:
        if s.name.casefold() == segment.casefold():
            return view == s.number, s.name
    names = ", ".join(s.name for s in mask.segments) or "none"
    raise ExplainError(f"{mask.name}: no segment '{segment}' (segments: {names})")


def against(saliency: np.ndarray, region: np.ndarray,
            tolerance: float = POINTING_TOLERANCE) -> dict[str, float | bool] | None:
    """One map (any size: resized bilinear to the region's, so the tolerance is in the
    region's pixels) against a boolean region: the pointing game and the energy-based
    pointing game, each beside what a map that knows nothing gets. None when the region
    is empty (nothing to find on this slice)."""
    region = np.asarray(region, dtype=bool)
    if not region.any():
        return None
    rows, cols = region.shape
    at = cv2.resize(np.asarray(saliency, np.float32), (cols, rows),
                    interpolation=cv2.INTER_LINEAR)
    report = localisation_report(at, region, tolerance)
    return {"pointing_game": bool(report["pointing_game"][0]),
            "random_hit": float(report["random_hit"][0]),
            "energy": float(report["energy"][0]),
            "uniform_energy": float(report["uniform_energy"][0]),
            "tolerance_px": float(report["tolerance"])}


def sentence(found: dict[str, float | bool] | None, what: str) -> str:
    """`against`'s figures in one sentence, `what` naming the region."""
    if found is None:
        return f"No {what} on this slice: localisation not measured."
    return (f"{found['energy']:.0%} of the map's energy lies inside {what} (a uniform map: "
            f"{found['uniform_energy']:.0%}); its peak is "
            f"{'inside' if found['pointing_game'] else 'outside'} it (pointing game, "
            f"{found['tolerance_px']:g} px tolerance; a random point: "
            f"{found['random_hit']:.0%}).")
