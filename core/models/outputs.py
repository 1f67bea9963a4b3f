"""From a model's outputs to probabilities and a predicted class: the one softmax, and
the one rule for "the class the model predicts".

A single output unit is two classes (0: negative, 1: positive): its score z gives
p(1) = sigmoid(z), and it predicts 1 where z > 0.
"""

from __future__ import annotations

import numpy as np

PREDICTED = -1  # a target meaning "the class the model predicts"


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the classes of (N, classes), the labels of a
    segmentation's (N, h, w, labels)), in float64 for the sums, returned as float32."""
    scores = np.asarray(scores, dtype=np.float64)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def sigmoid(scores: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-np.asarray(scores, dtype=np.float64)))).astype(np.float32)


def probabilities(scores: np.ndarray, head: str, single: bool = False) -> np.ndarray:
    """Class probabilities from scores as the model's head makes them: "softmax" (or
    "linear" or "logits": logits, as the built-in Xceptions give), "sigmoid" (multi-label),
    "probabilities" (already squashed: as given). A single unit gives (1 - p, p)."""
    if single:
        p = sigmoid(np.asarray(scores)[:, 0])
        return np.stack([1 - p, p], axis=1).astype(np.float32)
    if head == "sigmoid":
        return sigmoid(scores)
    if head in ("softmax", "linear", "logits"):
        return softmax(scores)
    return np.asarray(scores, dtype=np.float32)


def predicted_class(scores: np.ndarray, single: bool = False) -> np.ndarray:
    """The predicted class of each row of scores or probabilities."""
    scores = np.asarray(scores)
    if single:
        return (scores[:, 0] > 0).astype(np.int32)
    return scores.argmax(axis=1).astype(np.int32)


def with_predicted(target: np.ndarray, scores: np.ndarray, single: bool = False) -> np.ndarray:
    """`target` with PREDICTED replaced by the class the scores predict."""
    return np.where(np.asarray(target) < 0, predicted_class(scores, single),
                    target).astype(np.int32)
