"""The built-in models, each loaded once per process on each runtime: a `Classifier`, or
a `Segmenter` for a segmentation model."""

from __future__ import annotations

import threading

from core.models.cards import card
from core.models.classifier import Classifier, check_runtime
from core.models.segmenter import Segmenter

_loaded: dict[tuple[str, str], Classifier] = {}
_loading = threading.Lock()


def load(model_id: str, runtime: str | None = None) -> Classifier:
    """A built-in model on a runtime, loaded once per process: a `Classifier`, or a
    `Segmenter` for a segmentation model."""
    c = card(model_id)
    key = (c.id, check_runtime(c, runtime))
    kind = Segmenter if c.task == "segmentation" else Classifier
    with _loading:
        if key not in _loaded:
            _loaded[key] = kind(c, runtime=key[1])
        return _loaded[key]
