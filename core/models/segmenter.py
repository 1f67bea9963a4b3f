"""`Segmenter`: a segmentation model with its card. It loads, verifies and runs exactly as
a `Classifier` does (the same file checks, runtimes and compiled forward pass); what it
gives is a label per pixel: probabilities (N, h, w, labels) instead of (N, classes).

A single sigmoid channel (N, h, w, 1) is two labels, background and the one segment, as a
single sigmoid unit is two classes for a classifier.
"""

from __future__ import annotations

import numpy as np

from core.models.cards import ModelError
from core.models.classifier import Classifier
from core.models.inputs import ModelInput
from core.models.outputs import sigmoid, softmax


class Segmenter(Classifier):
    """A loaded segmentation model: label probabilities for each pixel of prepared
    inputs. Whole studies are segmented by `core.segment.segment`."""

    def probabilities(self, batch: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """(N, h, w, labels) probabilities: softmax of logits, a sigmoid channel as
        (1 - p, p), or the model's own probabilities."""
        raw = np.asarray(self.outputs(batch))
        if raw.ndim != 4:
            raise ModelError(f"{self.card.id}: outputs of shape {raw.shape[1:]}, not "
                             "(h, w, labels): not a segmentation model")
        if raw.shape[-1] == 1:
            p = raw[..., 0] if self.card.outputs == "probabilities" else sigmoid(raw[..., 0])
            return np.stack([1 - p, p], axis=-1).astype(np.float32)
        if self.card.outputs == "probabilities":
            return raw.astype(np.float32)
        return softmax(raw)

    def labels(self, batch: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """(N, h, w) label indices at the model's output size (the most probable)."""
        return self.probabilities(batch).argmax(axis=-1).astype(np.uint8)

    def predict(self, model_input: ModelInput):  # noqa: D102 - a classifier's call
        raise ModelError(f"{self.card.id} is a segmentation model: it gives a mask, not "
                         "a class (segment the study: the Segment page, `medlens segment`)")
