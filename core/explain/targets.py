"""Targets: what an explanation explains, as objects (in the manner of pytorch-grad-cam's
`model_targets.py`).

- `ClassTarget(index)`: one class's score; a single sigmoid unit is two classes (1
  scores z, 0 scores -z).
- `PredictedClass()`: the class the model predicts, found in the same compiled pass as
  the gradients (no forward pass of its own).

The compiled gradient functions take one int32 per image (`PREDICTED`, -1, for the
predicted class): `as_indices` turns targets into those.
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
