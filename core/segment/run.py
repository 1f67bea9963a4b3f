"""Segmenting a study: every slice of a volume (or every frame, or one image) through a
segmentation model, batched, in the plane the model was trained in, and the labels put
back into the study's own layout as a `LabelMap`, so the mask is shown, measured and
written through the study's geometry.

study -> [slice in the model's plane] -> model input (card.prepare: window, resize,
scale, recorded) -> probabilities (h, w, labels) -> resized to the slice (bilinear on
probabilities) -> the most probable label -> LabelMap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.models import ModelCard, ModelError, Segmenter
from core.progress import Progress, report
from core.studies import Study
from core.studies.masks import LabelMap, Segment, default_colour, from_views

# Slices per forward pass: batching is what makes a volume cheaper than its slices one
# by one (bench/segment_speed.py), and 16 slices of 128x128 hold little memory.
BATCH = 16


def segments_of(card: ModelCard) -> tuple[Segment, ...]:
    """A segmentation model's labels as segments: label k of its output is segment k;
    label 0 is the background (no segment)."""
    return tuple(
        Segment(k, name, tuple(card.label_colours.get(name, default_colour(k))))
        for k, name in enumerate(card.labels) if k > 0)


@dataclass
class Segmentation:
    """A model's mask of a study, and how it was made."""

    model: str  # the model's id
    mask: LabelMap
    plane: str | None  # the plane the slices were cut in (None: frames of an image)
    indices: tuple[int, ...]  # the slices (in `plane`) the model was run on
    steps: tuple[str, ...]  # what the model was given, as for a classifier's input
    seconds: float

    def volumes_ml(self) -> dict[str, float]:
        return self.mask.volumes_ml()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "labels": [s.name for s in self.mask.segments],
                "plane": self.plane, "slices": len(self.indices),
                "volumes_ml": {k: round(v, 3) for k, v in self.volumes_ml().items()},
                "seconds": round(self.seconds, 3)}


def model_plane(card: ModelCard, study: Study, plane: str | None = None) -> str | None:
    """The plane to cut a study in for this model: the one asked for, else the model's
    own (the plane it was trained in) for a volume; None for images and cines."""
    if not study.is_volume:
        return None
    return plane or card.plane or study.acquired_plane


def segment(segmenter: Segmenter, study: Study, plane: str | None = None,
            indices: Sequence[int] | None = None, batch: int = BATCH,
            progress: Progress | None = None) -> Segmentation:
    """`study` segmented by `segmenter`: every slice in `plane` (the model's own plane by
    default), or only `indices`; slices not run on are left empty."""
    start = time.perf_counter()
    card = segmenter.card
    if card.task != "segmentation":
        raise ModelError(f"{card.id} is a {card.task} model: it gives no mask")
    plane = model_plane(card, study, plane)
    count = study.count(plane)
    chosen = list(range(count)) if indices is None else [int(i) for i in indices]
    for i in chosen:
        if not 0 <= i < count:
            what = f"{plane} slice" if plane else "frame"
            raise ModelError(f"{study.name}: {what} {i} is out of range (0..{count - 1})")
    labels: np.ndarray | None = None
    steps: tuple[str, ...] = ()
    for first in range(0, len(chosen), batch):
        part = chosen[first:first + batch]
        inputs = [card.prepare(study, frame=i, plane=plane) for i in part]
        steps = steps or inputs[0].steps
        probabilities = segmenter.probabilities(np.stack([x.array for x in inputs]))
        for i, p in zip(part, probabilities, strict=True):
            rows, cols = study.view(i, plane).values.shape[:2]
            label = at_size(p, rows, cols).argmax(axis=-1).astype(np.uint8)
            if labels is None:
                labels = np.zeros((count, rows, cols), np.uint8)
            labels[i] = label
        report(progress, (first + len(part)) / len(chosen),
               f"{card.id}: {first + len(part)} of {len(chosen)} "
               f"{'slices' if plane else 'images'}")
    assert labels is not None  # a study has at least one image
    mask = from_views(study, plane, labels, segments_of(card), name=f"{card.id} on {study.name}",
                      source="model")
    shown = tuple(s for s in steps if not s.startswith(f"{plane} ")) if plane else steps
    return Segmentation(model=card.id, mask=mask, plane=plane, indices=tuple(chosen),
                        steps=shown, seconds=time.perf_counter() - start)


def at_size(probabilities: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(h, w, labels) probabilities resized to (rows, cols, labels), bilinear: the
    model's output laid back over the slice it was given (its whole field of view)."""
    if probabilities.shape[:2] == (rows, cols):
        return probabilities
    out = cv2.resize(np.ascontiguousarray(probabilities, dtype=np.float32), (cols, rows),
                     interpolation=cv2.INTER_LINEAR)
    return out.reshape(rows, cols, probabilities.shape[-1])
