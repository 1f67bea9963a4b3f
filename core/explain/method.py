"""What a method is: its options (declared as data, so the CLI, the page and the costs
read one truth), the raw maps it returns, and the helpers the methods share to build
their inputs (and the metrics, which take one image at a time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.explain.backend.scores import ForwardModel, ScoreModel
from core.explain.errors import ExplainError
from core.options import Option
from core.progress import Progress


@dataclass
class Attribution:
    """Raw maps (N, h, w) at any resolution, the class each explains, and what the
    method reports beside them."""

    maps: np.ndarray
    target: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class Method:
    """One explanation method. Subclasses set `name`, `title`, `options` and implement
    `attribute`; `uses_layer` methods read a spatial layer, `gradients` ones need a
    differentiable (Keras) model; `region_refusal` says why a method cannot explain a
    region of a segmentation (None: it can); `refusal(model)` why it cannot explain a
    model at all (the attention methods: a model without attention)."""

    name: str
    title: str
    paper: str
    uses_layer: bool = False
    gradients: bool = True
    options: dict[str, Option] = {}
    # Why the method cannot explain a region of a segmentation (a RegionTarget), or None
    # where it can: the API refuses with it, the CLI and the page read it to offer methods.
    region_refusal: str | None = None

    def refusal(self, model: Any, name: str | None = None) -> str | None:
        """Why the method cannot explain `model` (a Keras model, a Classifier or a
        ScoreModel) at all, in one line naming it `name`; None where it can. Only the
        attention methods refuse by model (a model without attention)."""
        return None

    @property
    def explains_regions(self) -> bool:
        return self.region_refusal is None

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """The options with their defaults; unknown names and bad values are errors."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ExplainError(f"{self.name}: unknown option '{unknown[0]}' (options: {known})")
        out = {}
        for key, option in self.options.items():
            value = given.get(key, option.default)
            if value is not None and option.kind in (int, float) and np.isscalar(value):
                value = option.kind(value)
                if option.low is not None and value < option.low:
                    raise ExplainError(f"{self.name}: {key} must be at least {option.low}")
                if option.high is not None and value > option.high:
                    raise ExplainError(f"{self.name}: {key} must be at most {option.high}")
            out[key] = value
        return out

    def attribute(self, model: ScoreModel | ForwardModel, inputs: list[np.ndarray],
                  target: np.ndarray, layer: str | None, progress: Progress | None,
                  **options) -> Attribution:
        raise NotImplementedError


def image_of(model, inputs: list[np.ndarray]) -> np.ndarray:
    return inputs[model.image_input]


def repeated(model, inputs: list[np.ndarray], images: np.ndarray,
             copies: int) -> list[np.ndarray]:
    """The batch of inputs repeated `copies` times (copy by copy), the image input replaced
    by `images` (copies x N images): noisy copies, points along a path."""
    out = [np.concatenate([a] * copies) for a in inputs]
    out[model.image_input] = images.astype(np.float32)
    return out


def with_image(model, inputs: list[np.ndarray], image: np.ndarray) -> list[np.ndarray]:
    """The inputs with the image replaced (a batch of any size: the other inputs of image
    0.. are repeated to match)."""
    out = list(inputs)
    out[model.image_input] = image.astype(np.float32)
    for i, a in enumerate(out):
        if i != model.image_input and len(a) != len(image):
            out[i] = np.repeat(a[:1], len(image), axis=0)
    return out


def target_probability(model, inputs: list[np.ndarray], target: int, batch: int = 32,
                       images: np.ndarray | None = None) -> np.ndarray:
    """p(target | each input), in batches; with `images`, of each image put in place of
    the image input (the other inputs held): a masked, occluded or deleted copy."""
    if images is not None:
        inputs = with_image(model, inputs, images)
    return model.probabilities(inputs, batch)[:, int(target)]


def one_input(model: ScoreModel | ForwardModel, x) -> list[np.ndarray]:
    """The model's inputs, a batch of one, from one image or a list of one input each (a
    leading batch axis of 1 is accepted too)."""
    arrays = list(x) if isinstance(x, list | tuple) else [x]
    if isinstance(model, ScoreModel):
        shapes = [tuple(shape) for shape, _ in model.specs]
    else:
        shapes = [tuple(model.image_shape)]
    if len(arrays) != len(shapes):
        raise ExplainError(f"the model takes {len(shapes)} inputs, {len(arrays)} given")
    batch = []
    for array, shape in zip(arrays, shapes, strict=True):
        array = np.asarray(array, dtype=np.float32)
        batch.append(array[None] if array.ndim == len(shape) else array)
    inputs = model.inputs(batch)
    if len(inputs[0]) != 1:
        raise ExplainError(f"one input at a time, {len(inputs[0])} given")
    return inputs
