"""Comparing a predicted mask with a ground truth: Dice, IoU and the 95th-percentile
Hausdorff distance (HD95), per label and per slice, with MONAI's conventions.

- Dice (Dice 1945, https://doi.org/10.2307/1932409): 2|P∩T| / (|P| + |T|).
- IoU (Jaccard 1912, https://doi.org/10.1111/j.1469-8137.1912.tb05611.x): |P∩T| / |P∪T|.
- HD95 (Huttenlocher et al. 1993, https://doi.org/10.1109/34.232073; as MONAI's
  `compute_hausdorff_distance(percentile=95)`, monai/metrics/hausdorff_distance.py and
  `get_surface_distance` in monai/metrics/utils.py):
  the surfaces ∂P, ∂T are each mask minus its erosion (scipy's default cross-shaped
  structure, as MONAI's `get_mask_edges`); d(∂P→∂T) is the Euclidean distance in mm from
  every voxel of ∂P to the nearest voxel of ∂T; HD95 = max(P95 d(∂P→∂T), P95 d(∂T→∂P)).
  MONAI takes the 95th percentile of each direction, then the larger of the two; not the
  percentile of the pooled distances. Percentiles interpolate linearly (torch.quantile,
  numpy's default).

Empty masks, as MONAI's defaults (MONAI 1.6.1 source):
- Dice and IoU (`DiceMetric`/`MeanIoU`, ignore_empty=True): an empty truth gives NaN
  whatever the prediction; an empty prediction of a non-empty truth gives 0.
- HD95 (`compute_hausdorff_distance(percentile=95)`): NaN when either mask is empty.
  MONAI's surface distances are inf when only one mask is empty, but the percentile of
  infinities interpolates inf - inf (torch.quantile, as np.percentile): MONAI 1.6.1
  returns NaN there, checked by bench/monai_agreement.py (only its plain Hausdorff
  distance, percentile=None, returns inf). The missed label shows as Dice 0.
NaN is "undefined": left out of every mean.

The background (label 0) is never scored here: the named segments are. MONAI's
`HausdorffDistanceMetric` excludes the background by default, its `DiceMetric` includes
it; one rule for all three measures is easier to read, and the background's Dice says
little (it is near 1 for any mask on a large volume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from core.studies.masks import LabelMap
from core.studies.study import PLANES, StudyError

# The one sentence pages and the CLI print beside the numbers.
CONVENTION = (
    "Per named label, background excluded, as MONAI computes them: an empty ground truth "
    "gives no Dice or IoU (NaN, ignore_empty=True, left out of means) and a missed label "
    "Dice 0; HD95 is the larger of the two directed 95th percentiles of surface distances "
    "in mm, undefined (NaN) when either mask is empty."
)
PERCENTILE = 95.0
# Two label maps' spacings may differ by rounding (a NIfTI's float32 header), not more.
SPACING_TOLERANCE = 0.01


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks of different shapes: {pred.shape} and {truth.shape}")
    return pred, truth


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P| + |T|) of two boolean masks; NaN when the truth is empty."""
    pred, truth = _pair(pred, truth)
    t = int(np.count_nonzero(truth))
    if t == 0:
        return math.nan
    both = int(np.count_nonzero(pred & truth))
    return 2.0 * both / (int(np.count_nonzero(pred)) + t)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU = |P∩T| / |P∪T| of two boolean masks; NaN when the truth is empty."""
    pred, truth = _pair(pred, truth)
    if not truth.any():
        return math.nan
    return int(np.count_nonzero(pred & truth)) / int(np.count_nonzero(pred | truth))


def surface(mask: np.ndarray) -> np.ndarray:
    """The voxels of `mask` with a face-neighbour outside it (mask XOR its erosion; the
    array's edge counts as outside, as scipy's border_value=0)."""
    return mask ^ ndimage.binary_erosion(mask)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """HD95 in mm of two boolean masks (2-D or 3-D): max(P95 d(∂P→∂T), P95 d(∂T→∂P)).

    `spacing`: the distance between neighbours along each array axis, in mm (None: 1).
    NaN when either mask is empty (MONAI's value)."""
    pred, truth = _pair(pred, truth)
    if spacing is not None and len(spacing) != pred.ndim:
        raise ValueError(f"{len(spacing)} spacings for a {pred.ndim}-D mask")
    if not (pred.any() and truth.any()):
        return math.nan
    # Only the union's bounding box matters (every surface voxel lies in it); a margin
    # of one keeps each surface's outside neighbours, as MONAI's crop does.
    where = np.nonzero(pred | truth)
    box = tuple(slice(max(int(axis.min()) - 1, 0), int(axis.max()) + 2) for axis in where)
    edges_p, edges_t = surface(pred[box]), surface(truth[box])
    scale = np.ones(pred.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    points_p = np.argwhere(edges_p) * scale  # surface voxels in mm
    points_t = np.argwhere(edges_t) * scale
    # The directed surface distances: from each surface voxel to the nearest one of the
    # other surface. A k-d tree over the surface voxels, as MONAI 1.6 does on the CPU; the
    # same Euclidean distances as scipy's distance_transform_edt(~edges, sampling=spacing)
    # read at the other surface (older MONAI), at a fifth of the time on a brain volume.
    to_truth = cKDTree(points_t, leafsize=32).query(points_p, k=1)[0]
    to_pred = cKDTree(points_p, leafsize=32).query(points_t, k=1)[0]
    return float(max(np.percentile(to_truth, PERCENTILE), np.percentile(to_pred, PERCENTILE)))


def per_slice_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice of each slice along axis 0 of two (n, rows, cols) boolean masks; NaN where
    the truth slice is empty."""
    pred, truth = _pair(pred, truth)
    axes = tuple(range(1, pred.ndim))
    t = np.count_nonzero(truth, axis=axes).astype(np.float64)
    p = np.count_nonzero(pred, axis=axes).astype(np.float64)
    both = np.count_nonzero(pred & truth, axis=axes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t > 0, 2.0 * both / (p + t), np.nan)


def _number(value: float) -> float | str | None:
    """A measure for JSON: NaN as null (undefined); inf (no measure here gives it, but no
    value may break strict JSON) as the string "inf"."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


@dataclass
class Comparison:
    """A predicted label map against a ground truth, label by label (matched by name).

    `dice`, `iou`, `hd95_mm`: name -> value (NaN where undefined, see `convention`);
    `per_slice`: name -> (n,) Dice along the stored slice axis (NaN where the truth
    slice is empty); `unmatched`: name -> "prediction only" or "truth only"."""

    labels: tuple[str, ...]
    dice: dict[str, float]
    iou: dict[str, float]
    hd95_mm: dict[str, float]
    per_slice: dict[str, np.ndarray] = field(repr=False)
    unmatched: dict[str, str] = field(default_factory=dict)
    spacing: tuple[float, ...] | None = None
    convention: str = CONVENTION
    notes: tuple[str, ...] = ()

    def worst_slice(self, label: str) -> int | None:
        """The stored slice with the lowest Dice for `label`; None when no slice has one."""
        values = self.per_slice[self._name(label)]
        if values.size == 0 or np.all(np.isnan(values)):
            return None
        return int(np.nanargmin(values))

    def mean(self, measure: str) -> float:
        """The mean over labels of "dice", "iou" or "hd95_mm", NaN left out (NaN when
        none is defined)."""
        values = [v for v in getattr(self, measure).values() if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    def to_dict(self) -> dict:
        """JSON-safe: NaN as null, inf as "inf"; per-slice Dice as lists."""
        return {
            "labels": list(self.labels),
            "dice": {k: _number(v) for k, v in self.dice.items()},
            "iou": {k: _number(v) for k, v in self.iou.items()},
            "hd95_mm": {k: _number(v) for k, v in self.hd95_mm.items()},
            "per_slice_dice": {k: [_number(float(x)) for x in v]
                               for k, v in self.per_slice.items()},
            "worst_slice": {k: self.worst_slice(k) for k in self.labels},
            "unmatched": dict(self.unmatched),
            "spacing_mm": None if self.spacing is None else list(self.spacing),
            "convention": self.convention,
            "notes": list(self.notes),
        }

    def _name(self, label: str) -> str:
        for name in self.labels:
            if name.casefold() == label.casefold():
                return name
        raise KeyError(f"no label '{label}' in the comparison ({', '.join(self.labels)})")


def _spacing(labels: LabelMap) -> tuple[float, ...] | None:
    """(slice, row, column) mm for a volume, (row, column) for one image; None unknown."""
    if labels.pixel_spacing is None:
        return None
    rows, cols = (float(s) for s in labels.pixel_spacing)
    if labels.labels.shape[0] == 1:
        return (rows, cols)
    if labels.slice_spacing is None:
        return None
    return (float(labels.slice_spacing), rows, cols)


def compare(pred: LabelMap, truth: LabelMap) -> Comparison:
    """Each segment of `truth` against the segment of `pred` with the same name (case
    ignored; their numbers may differ). StudyError (one line) when the maps do not
    share a shape or spacing."""
    if pred.labels.shape != truth.labels.shape:
        raise StudyError(
            f"{pred.name} ({'x'.join(map(str, pred.labels.shape))}) and {truth.name} "
            f"({'x'.join(map(str, truth.labels.shape))}): label maps of different shapes")
    spacing_p, spacing_t = _spacing(pred), _spacing(truth)
    if spacing_p and spacing_t and not np.allclose(spacing_p, spacing_t,
                                                   rtol=SPACING_TOLERANCE):
        raise StudyError(f"{pred.name} and {truth.name}: different voxel spacings "
                         f"({spacing_p} and {spacing_t} mm)")
    spacing = spacing_t or spacing_p
    notes = []
    if spacing is None:
        notes.append("voxel spacing unknown (or no slice spacing): HD95 not computed")
    if pred.labels.ndim == 3 and pred.labels.shape[0] == 1:
        volume_p, volume_t = pred.labels[0], truth.labels[0]  # one image: a 2-D comparison
    else:
        volume_p, volume_t = pred.labels, truth.labels
    by_name = {s.name.casefold(): s for s in pred.segments}
    truth_names = {s.name.casefold() for s in truth.segments}
    unmatched = {s.name: "truth only" for s in truth.segments
                 if s.name.casefold() not in by_name}
    unmatched.update({s.name: "prediction only" for s in pred.segments
                      if s.name.casefold() not in truth_names})
    labels: list[str] = []
    dices: dict[str, float] = {}
    ious: dict[str, float] = {}
    hds: dict[str, float] = {}
    slices: dict[str, np.ndarray] = {}
    for segment in truth.segments:
        other = by_name.get(segment.name.casefold())
        if other is None:
            continue
        p, t = volume_p == other.number, volume_t == segment.number
        name = segment.name
        labels.append(name)
        dices[name], ious[name] = dice(p, t), iou(p, t)
        hds[name] = hd95(p, t, spacing) if spacing is not None else math.nan
        slices[name] = per_slice_dice(pred.labels == other.number, truth.labels == segment.number)
    if unmatched:
        notes.append("not compared: " + ", ".join(f"{k} ({v})" for k, v in unmatched.items()))
    return Comparison(tuple(labels), dices, ious, hds, slices, unmatched, spacing,
                      CONVENTION, tuple(notes))


@dataclass(frozen=True)
class SliceScores:
    """One label's Dice on each slice of a plane (NaN where the truth slice is empty),
    the slice to look at first (the lowest Dice), and the label's colour."""

    values: np.ndarray
    worst: int | None
    colour: tuple[int, int, int]


def slice_scores(pred: LabelMap, truth: LabelMap, plane: str | None) -> dict[str, SliceScores]:
    """Per-slice Dice of every label both maps name (matched by name, case-insensitive),
    along the slices of `plane` as the viewer shows them, so a chart's slice is the
    slider's. `pred` and `truth` must be fitted to the same study."""
    count = pred.count(plane)
    pred_views = np.stack([pred.view(i, plane) for i in range(count)])
    truth_views = np.stack([truth.view(i, plane) for i in range(count)])
    by_name = {s.name.casefold(): s for s in truth.segments}
    out: dict[str, SliceScores] = {}
    for segment in pred.segments:
        other = by_name.get(segment.name.casefold())
        if other is None:
            continue
        values = per_slice_dice(pred_views == segment.number, truth_views == other.number)
        worst = None if np.isnan(values).all() else int(np.nanargmin(values))
        out[segment.name] = SliceScores(values, worst, segment.colour)
    return out


@dataclass(frozen=True)
class Scores:
    """A predicted map against its ground truth: the comparison, and the per-slice Dice
    in every plane the study can be viewed in (None: frames of an image)."""

    comparison: Comparison
    slices: dict[str | None, dict[str, SliceScores]]


def score(pred: LabelMap, truth: LabelMap) -> Scores:
    """`compare` and `slice_scores` in every plane, once (a volume's comparison takes
    seconds: the page keeps it, scrolling reads it)."""
    planes = PLANES if pred.is_volume else (None,)
    return Scores(compare(pred, truth), {p: slice_scores(pred, truth, p) for p in planes})
