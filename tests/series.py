"""DICOM series for tests and benchmarks, made from a real CT slice.

No multi-file series ships in pydicom or pydicom-data, so one is written here: the real
512x512 head CT of pydicom-data's 693_UNCR.dcm, shifted one row further per slice (so
every slice differs and the order can be checked), with its own ImagePositionPatient,
InstanceNumber and UIDs. The files are written in shuffled order under shuffled names,
so a reader has to sort them by geometry. The pixels are real; the geometry is made.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

SOURCE = "693_UNCR.dcm"

# Direction cosines (row, column) of common acquisitions, DICOM LPS.
ORIENTATIONS = {
    "axial": ([1, 0, 0], [0, 1, 0]),
    "coronal": ([1, 0, 0], [0, 0, -1]),
    "sagittal": ([0, 1, 0], [0, 0, -1]),
}


def write_series(folder: Path, slices: int = 12, spacing: float = 2.5,
                 orientation: str = "axial", size: int | None = None, seed: int = 0,
                 positions: bool = True) -> list[Path]:
    """Write a series of `slices` single-frame CT files; returns them in true order.

    Slice k holds the real CT slice rolled down by k rows (stored values), so
    `stored[k] == np.roll(source, k, axis=0)`. `size` crops the slice to size x size.
    Without `positions`, ImagePositionPatient/ImageOrientationPatient are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(get_testdata_file(SOURCE))
    base = source.pixel_array
    if size:
        base = base[:size, :size]
    row, col = (np.array(v, dtype=float) for v in ORIENTATIONS[orientation])
    normal = np.cross(row, col)
    series_uid, frame_uid = generate_uid(), generate_uid()
    order = list(range(slices))
    random.Random(seed).shuffle(order)
    written: dict[int, Path] = {}
    for k in order:
        ds = source.copy()
        pixels = np.ascontiguousarray(np.roll(base, k, axis=0)).astype(base.dtype)
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.tobytes()
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.SliceThickness = ds.SpacingBetweenSlices = spacing
        if positions:
            origin = np.array([-120.0, -130.0, -200.0]) + normal * spacing * k
            ds.ImagePositionPatient = [f"{v:.3f}" for v in origin]
            ds.ImageOrientationPatient = [f"{v:g}" for v in (*row, *col)]
            ds.SliceLocation = f"{origin @ normal:.3f}"
        else:
            for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "SliceLocation"):
                if keyword in ds:
                    delattr(ds, keyword)
        path = folder / f"IM{order.index(k):04d}"
        ds.save_as(path, enforce_file_format=True)
        written[k] = path
    return [written[k] for k in range(slices)]


def stored_slices(slices: int, size: int | None = None) -> np.ndarray:
    """The stored values `write_series` puts in each slice, in true order."""
    base = pydicom.dcmread(get_testdata_file(SOURCE)).pixel_array
    if size:
        base = base[:size, :size]
    return np.stack([np.roll(base, k, axis=0) for k in range(slices)])
