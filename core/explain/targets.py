"""Targets: what an explanation explains, as objects (in the manner of pytorch-grad-cam's
`model_targets.py`).

- `ClassTarget(index)`: one class's score; a single sigmoid unit is two classes (1
  scores z, 0 scores -z).
- `PredictedClass()`: the class the model predicts, found in the same compiled pass as
  the gradients (no forward pass of its own).

- `RegionTarget(label, region)`: a segmentation's label summed over a region of pixels
  (Seg-Grad-CAM).

The compiled gradient functions take one int32 per image (`PREDICTED`, -1, for the
predicted class): `as_indices` turns targets into those; `as_regions` gives a
segmentation's labels and regions (the regions enter the compiled functions as a tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.explain.errors import ExplainError
from core.models.outputs import PREDICTED


@dataclass(frozen=True)
class ClassTarget:
    """The score of class `index`."""

    index: int

    def as_index(self) -> int:
        return int(self.index)


@dataclass(frozen=True)
class PredictedClass:
    """The score of whichever class the model predicts for the image."""

    def as_index(self) -> int:
        return PREDICTED


Target = ClassTarget | PredictedClass


def as_indices(target: Any, count: int, n_classes: int) -> np.ndarray:
    """One class index per image (PREDICTED where the model's own class is meant) from
    None, an int, a Target, or one of those per image; out-of-range classes are one-line
    errors."""
    if target is None:
        target = PredictedClass()
    items = list(target) if isinstance(target, list | tuple | np.ndarray) else [target]
    indices = [t.as_index() if isinstance(t, ClassTarget | PredictedClass) else int(t)
               for t in items]
    out = np.broadcast_to(np.asarray(indices, dtype=np.int32), (count,)).astype(np.int32)
    if ((out < 0) & (out != PREDICTED)).any() or out.max() >= n_classes:
        raise ExplainError(f"target class out of range (the model has {n_classes} classes)")
    return out


def class_score(scores, target, single: bool):
    """In a compiled function: the score of each image's target class (a single unit: 1
    -> z, 0 -> -z). PREDICTED is the predicted class, taken in the same pass."""
    import tensorflow as tf

    if single:
        z = scores[:, 0]
        target = tf.where(target < 0, tf.cast(z > 0, tf.int32), target)
        return tf.where(target == 1, z, -z)
    target = tf.where(target < 0, tf.argmax(scores, axis=1, output_type=tf.int32), target)
    return tf.gather(scores, target, batch_dims=1)


# -- regions of a segmentation --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegionTarget:
    """Seg-Grad-CAM's target (Vinogradova, Dibrov and Myers 2020, Sec. 2,
    https://arxiv.org/abs/2002.11434): the sum of label `label`'s logit (the pre-softmax
    score) over the pixels of `region`, as pytorch-grad-cam's
    `SemanticSegmentationTarget` computes `(output[c] * mask).sum()`.

    `region`: bool (h, w) at the model's input size (the predicted mask of the label, a
    box, any set of pixels); None for the whole image. A single sigmoid unit is two labels
    (1 scores z, 0 scores -z)."""

    label: int
    region: np.ndarray | None = None

    @classmethod
    def box(cls, label: int, box: tuple[int, int, int, int],
            size: tuple[int, int]) -> RegionTarget:
        """The pixels of `box` (x0, y0, x1, y1 in the model input's pixels, x1 and y1
        excluded as in slicing) on an image of `size` (h, w)."""
        height, width = (int(v) for v in size)
        x0, y0, x1, y1 = (int(v) for v in box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ExplainError(f"box {x0},{y0},{x1},{y1} is not inside the "
                               f"{width} x {height} input as x0,y0,x1,y1")
        region = np.zeros((height, width), bool)
        region[y0:y1, x0:x1] = True
        return cls(int(label), region)


def as_regions(target: Any, count: int, n_classes: int,
               size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) int32, regions (N, h, w) float32 of 0 and 1) for a segmentation model
    from a RegionTarget, a label (the whole image), or one of those per image; a region of
    another size, an empty region or a label out of range is a one-line error."""
    if target is None:
        raise ExplainError("a segmentation model needs a target: a label, and a region "
                           "(RegionTarget(label, region)) or none for the whole image")
    items = list(target) if isinstance(target, list | tuple) else [target]
    if len(items) not in (1, count):
        raise ExplainError(f"{len(items)} targets for {count} images")
    labels, regions = [], []
    for item in items:
        if isinstance(item, ClassTarget):
            item = RegionTarget(item.index)
        elif isinstance(item, PredictedClass):
            raise ExplainError("a segmentation model has no single predicted class: name "
                               "the label to explain")
        elif not isinstance(item, RegionTarget):
            item = RegionTarget(int(item))
        if not 0 <= int(item.label) < n_classes:
            raise ExplainError(f"label {item.label} out of range (the model has "
                               f"{n_classes} labels)")
        if item.region is None:
            region = np.ones(size, np.float32)
        else:
            region = np.asarray(item.region)
            if region.shape != tuple(size):
                raise ExplainError(f"region of shape {region.shape}, the model's input is "
                                   f"{size[0]} x {size[1]}")
            region = (region != 0).astype(np.float32)
            if not region.any():
                raise ExplainError("the region is empty: there is nothing to explain")
        labels.append(int(item.label))
        regions.append(region)
    labels_out = np.broadcast_to(np.asarray(labels, np.int32), (count,)).astype(np.int32)
    regions_out = np.broadcast_to(np.stack(regions), (count, *size)).astype(np.float32)
    return labels_out, regions_out


def region_scores(logits, region, single: bool):
    """In a compiled function: (N, labels) region scores, sum_ij logits[n, i, j, c] *
    region[n, i, j] for every label c (Seg-Grad-CAM's y^c = sum_{(i,j) in M} y^c_ij); a
    single sigmoid unit gives the two labels (-z, z)."""
    import tensorflow as tf

    summed = tf.einsum("nhwc,nhw->nc", logits, tf.cast(region, logits.dtype))
    return tf.concat([-summed, summed], axis=1) if single else summed


def region_probabilities(logits, region, head: str, single: bool):
    """In a compiled function: (N, labels) each label's mean probability over the region
    (the model's own softmax or sigmoid applied to the logits; a single unit gives 1 - p,
    p). What perturbation methods compare, as they compare a classifier's probability:
    bounded and positive, where a logit sum can be negative for every masked image (and
    Score-CAM's ReLU then leaves nothing)."""
    import tensorflow as tf

    if single:
        p = tf.sigmoid(logits)
        p = tf.concat([1 - p, p], axis=-1)
    else:
        p = tf.sigmoid(logits) if head == "sigmoid" else tf.nn.softmax(logits, axis=-1)
    region = tf.cast(region, p.dtype)
    area = tf.maximum(tf.reduce_sum(region, axis=[1, 2]), 1.0)
    return tf.einsum("nhwc,nhw->nc", p, region) / area[:, None]


def region_score(logits, target, region, single: bool):
    """In a compiled function: each image's region score of its target label (N,)."""
    import tensorflow as tf

    scores = region_scores(logits, region, single)
    return tf.gather(scores, target, batch_dims=1)
