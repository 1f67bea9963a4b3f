"""Explaining a segmentation on one slice: Seg-Grad-CAM (Vinogradova, Dibrov and Myers
2020, https://arxiv.org/abs/2002.11434) and the other methods that take a region target,
for one label over a region of the slice, with the map laid over the slice and measured
against a mask (the pointing game and the energy-based pointing game).

The region is given in words (`REGIONS`): the model's own mask of the label on that
slice, a box in the slice's pixels, or the whole slice; it becomes a
`core.explain.RegionTarget` at the model's input size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.explain import METHODS, ExplainError, RegionTarget, attribute
from core.explain.metrics.localisation import against, sentence
from core.explain.overlay import overlay as blend
from core.models import Segmenter
from core.models.inputs import ModelInput
from core.progress import Progress

REGIONS = {
    "predicted": "the model's mask of the label",
    "box": "a box",
    "image": "the whole slice",
}


def region_methods() -> tuple[str, ...]:
    """The methods that explain a region of a segmentation (the others say why not)."""
    return tuple(name for name, m in METHODS.items() if m.explains_regions)


def region_target(segmenter: Segmenter, model_input: ModelInput, label: int, region: str,
                  box: tuple[int, int, int, int] | None = None) -> RegionTarget:
    """`label` over `region` of the slice, as a target at the model's input size. A box
    is (x0, y0, x1, y1) in the pixels of the slice as shown (`model_input.source_shape`),
    x1 and y1 excluded."""
    height, width = model_input.array.shape[:2]
    if region == "image":
        return RegionTarget(label)
    if region == "predicted":
        predicted = segmenter.labels(model_input.batch)[0]
        if predicted.shape != (height, width):
            predicted = cv2.resize(predicted, (width, height), interpolation=cv2.INTER_NEAREST)
        mask = predicted == label
        if not mask.any():
            raise ExplainError(f"{segmenter.card.labels[label]}: the model marks no pixel of "
                               "it on this slice; explain a box or the whole slice")
        return RegionTarget(label, mask)
    if region == "box":
        if box is None:
            raise ExplainError("a box region needs x0,y0,x1,y1")
        rows, cols = model_input.source_shape
        x0, y0, x1, y1 = (int(v) for v in box)
        if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
            raise ExplainError(f"box {x0},{y0},{x1},{y1} is not inside the {cols} x {rows} "
                               "slice as x0,y0,x1,y1")
        # The slice's pixels to the input's: the whole field of view is resized.
        scaled = (int(x0 * width / cols), int(y0 * height / rows),
                  max(int(np.ceil(x1 * width / cols)), int(x0 * width / cols) + 1),
                  max(int(np.ceil(y1 * height / rows)), int(y0 * height / rows) + 1))
        return RegionTarget.box(label, scaled, (height, width))
    raise ExplainError(f"unknown region '{region}' (regions: {', '.join(REGIONS)})")


@dataclass(frozen=True)
class RegionExplanation:
    """A map of what raised one label's score over a region of one slice."""

    method: str
    label: str
    region: str  # a key of REGIONS
    layer: str | None
    input_map: np.ndarray  # (h, w) in [0, 1] at the model's input size
    target: np.ndarray = field(repr=False)  # (h, w) bool: the region explained
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return METHODS[self.method].title

    def at_size(self, rows: int, cols: int) -> np.ndarray:
        """The map resized (bilinear) to a picture of the slice."""
        return cv2.resize(self.input_map, (cols, rows), interpolation=cv2.INTER_LINEAR)

    def overlay(self, picture: np.ndarray, opacity: float = 0.4,
                colormap: str = "jet") -> np.ndarray:
        """The map over the slice's picture (`Study.display`)."""
        return blend(picture, self.at_size(*picture.shape[:2]), opacity, colormap)

    def localisation(self, region: np.ndarray) -> dict[str, Any] | None:
        """The pointing game and the energy-based pointing game of the map against a
        boolean region of the slice (any size), each beside what a map that knows
        nothing gets; None when the region is empty."""
        return against(self.input_map, region)

    def localisation_text(self, region: np.ndarray, what: str) -> str:
        """The localisation in one sentence, `what` naming the region."""
        return sentence(self.localisation(region), what)


def explain_region(segmenter: Segmenter, model_input: ModelInput, method: str, label: int,
                   region: str = "predicted", box: tuple[int, int, int, int] | None = None,
                   layer: str | None = None, progress: Progress | None = None,
                   **options: Any) -> RegionExplanation:
    """`method`'s map for `label` over `region` of one slice (Seg-Grad-CAM for the CAM
    methods); the layer defaults to the U-Net's bottleneck."""
    if segmenter.keras_model is None:
        raise ExplainError(f"{segmenter.card.id} runs on ONNX: explaining a segmentation "
                           "needs a Keras model")
    start = time.perf_counter()
    target = region_target(segmenter, model_input, label, region, box)
    found = attribute(segmenter.keras_model, model_input.batch, method, target, layer,
                      progress, **options)
    height, width = model_input.array.shape[:2]
    explained = (np.ones((height, width), bool) if target.region is None
                 else np.asarray(target.region, dtype=bool))
    return RegionExplanation(method=method, label=segmenter.card.labels[label], region=region,
                             layer=found.info.get("layer"), input_map=found.maps[0],
                             target=explained, seconds=time.perf_counter() - start,
                             info=found.info)
