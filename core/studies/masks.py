"""Label maps: a mask per voxel (0 = nothing, k = segment k), with the segments' names
and colours, aligned with the study they belong to.

A `LabelMap`'s `labels` has the same layout as `Study.pixels` (frame or slice axis
first, then rows and columns) and the same geometry (affine, spacing), so it is shown,
measured and written through the study's own views. Label maps come from NIfTI, DICOM
SEG (highdicom), PNG, or a segmentation model's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Segment:
    """One label of a label map: its value in `LabelMap.labels`, name and display colour."""

    number: int  # 1..255 (0 is "no segment")
    name: str
    colour: tuple[int, int, int]  # RGB 0-255


@dataclass
class LabelMap:
    """Which segment each voxel belongs to, aligned with a study.

    `labels`: (n, rows, cols) uint8 or uint16, n frames or slices as in `Study.pixels`.
    `affine`, `pixel_spacing`, `slice_spacing` as `Study`'s (None when unknown).
    `source`: "NIfTI", "DICOM SEG", "PNG" or "model" (a prediction).
    """

    name: str
    labels: np.ndarray
    segments: tuple[Segment, ...]
    source: str
    affine: np.ndarray | None = field(default=None, repr=False)
    pixel_spacing: tuple[float, float] | None = None
    slice_spacing: float | None = None
    notes: tuple[str, ...] = ()
