"""What a unit wants to see: activation maximisation.

Erhan et al. 2009, "Visualizing Higher-Layer Features of a Deep Network"; regularised as
Olah et al. 2017, "Feature Visualization" (https://distill.pub/2017/feature-visualization/)
and tf-keras-vis recommend. Gradient ascent on the input image x:

    x* = argmax_x  a(x) - w_tv * TV(x) - w_norm * ||x||_1      (tf-keras-vis' loss)

with a(x) the unit's value: a class's score before the softmax (the logit: maximising a
probability would also push the other classes down), or a channel's mean activation. The
steps are tf-keras-vis 0.8.7's `ActivationMaximization` (it runs under Keras 3), with its
recommended regularisers `TotalVariation2D` and `Norm(p=1)` and input modifiers `Jitter`
and `Rotate2D`, whose defaults are tuned for inputs in 0-255: for another input range the
step size is rescaled (see `_settings`). Nested layers ("xception/block4_sepconv2_act") are
reached through `core.explain.backend.graph.score_model`, which tf-keras-vis alone cannot.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.explain.backend.graph import resolve_layer, score_model
from core.explain.errors import ExplainError
from core.models.inputs import SCALES
from core.progress import Progress, report

# The input range of each of MedLens' input scales (core.models.inputs.SCALES).

STEPS = 100


@dataclass(frozen=True)
class ClassUnit:
    """A class output: its score before the final softmax/sigmoid (the logit); for a
    segmentation model, that score averaged over the pixels."""

    index: int
    label: str | None = None

    @property
    def title(self) -> str:
        return f"class {self.label or self.index}"


@dataclass(frozen=True)
class ChannelUnit:
    """One channel of a layer (a path, nested ones included): its mean activation over
    the feature map's positions."""

    layer: str
    channel: int

    @property
    def title(self) -> str:
        return f"{self.layer} channel {self.channel}"


Unit = ClassUnit | ChannelUnit


@dataclass
class Maximised:
    """The image that maximises a unit (the best of the steps' images, each measured),
    and how far it got compared with real images."""

    unit: Unit
    image: np.ndarray  # (h, w, c) float32, in the model's input scale
    picture: np.ndarray  # (h, w, 3) uint8: the image stretched to its 1-99th percentiles
    activation: float  # the unit's value on `image`
    samples: np.ndarray  # the unit's value on each given sample (empty when none given)
    start: float  # the unit's value on the random image the ascent started from
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)  # the unit on each step's image

    @property
    def ratio_to_max(self) -> float | None:
        """activation / the samples' largest value (None without samples or when that is
        not positive)."""
        if not len(self.samples) or float(np.max(self.samples)) <= 0:
            return None
        return self.activation / float(np.max(self.samples))

    def to_dict(self) -> dict[str, Any]:
        samples = [float(v) for v in self.samples]
        return {"unit": self.unit.title, "activation": self.activation, "start": self.start,
                "samples_max": max(samples) if samples else None,
                "samples_mean": float(np.mean(samples)) if samples else None,
                "steps": self.steps, "seconds": self.seconds}


def input_range(scale: str) -> tuple[float, float]:
    """(low, high) of a model input scaled by `scale` ("xception", "unit", "none")."""
    if scale not in SCALES:
        raise ExplainError(f"unknown input scale '{scale}' (one of {', '.join(SCALES)})")
    # what the model's own scaling makes of the 8-bit range: one truth for both
    low, high = SCALES[scale][1](np.array([0.0, 255.0]))
    return float(low), float(high)


def unit_model(model, unit: Unit, fixed: list[np.ndarray] | None = None,
               grey: bool = False):
    """A Keras model with ONE image input (a list of one) whose output is the unit's
    value per image (N,). A model with more inputs (an image and a metadata vector) has
    the others held at `fixed` (zeros by default). With `grey`, an RGB model's input is
    one channel repeated three times, as a grey study is given to it: the ascent then
    stays among the images it can be shown."""
    import keras
    from keras import ops

    if isinstance(unit, ClassUnit):
        scores = score_model(model)
        classes = int(scores.outputs[0].shape[-1])
        if not 0 <= unit.index < classes:
            raise ExplainError(f"class {unit.index} is out of range: the model has "
                               f"{classes} outputs")
        index = int(unit.index)
    elif isinstance(unit, ChannelUnit):
        path = resolve_layer(model, unit.layer)
        scores = score_model(model, path)
        scores = keras.Model(scores.inputs, scores.outputs[0])
        channels = int(scores.outputs[0].shape[-1])
        if not 0 <= unit.channel < channels:
            raise ExplainError(f"channel {unit.channel} is out of range: {path} has "
                               f"{channels} channels")
        index = int(unit.channel)
    else:
        raise ExplainError(f"not a unit: {unit!r}")

    def value(outputs):
        # the class score or the channel, averaged over the positions where it has them (a
        # channel's map; a segmenter's class: its mean score over the pixels)
        picked = outputs[..., index]
        return ops.mean(picked, axis=tuple(range(1, len(picked.shape)))) \
            if len(picked.shape) > 1 else picked

    inputs = scores.inputs if isinstance(scores.inputs, list) else [scores.inputs]
    shape = tuple(inputs[0].shape[1:])
    grey = grey and shape[-1] == 3
    image = keras.Input(shape=(*shape[:-1], 1) if grey else shape, dtype=inputs[0].dtype,
                        name="image")
    feed = [keras.layers.Concatenate(axis=-1, name="grey_to_rgb")([image] * 3)
            if grey else image]
    for i, other in enumerate(inputs[1:]):
        held = np.zeros(other.shape[1:], np.float32) if not fixed else \
            np.asarray(fixed[i], np.float32).reshape(other.shape[1:])
        feed.append(_Held(held, name=f"held_{i}")(image))
    outputs = scores(feed if len(feed) > 1 else feed[0])
    return keras.Model([image], _Unit(value, name="unit")(outputs))


@functools.cache
def _layer_classes():
    """The two small layers `unit_model` adds, defined once (keras imported lazily)."""
    import keras

    class Held(keras.layers.Layer):
        """A constant input (a metadata vector), one per image of the batch."""

        def __init__(self, held: np.ndarray, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.held = held

        def call(self, image):
            from keras import ops

            batch = ops.shape(image)[0]
            return ops.broadcast_to(ops.convert_to_tensor(self.held)[None],
                                    (batch, *self.held.shape))

    class UnitValue(keras.layers.Layer):
        def __init__(self, value, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.value = value

        def call(self, outputs):
            return self.value(outputs)

    return Held, UnitValue


def _Held(held, name):  # noqa: N802 (a layer class, defined on first use)
    return _layer_classes()[0](held, name=name)


def _Unit(value, name):  # noqa: N802 (a layer class, defined on first use)
    return _layer_classes()[1](value, name=name)


def unit_values(probe, batch: np.ndarray, chunk: int = 16) -> np.ndarray:
    """The unit's value on each image of `batch` (N, h, w, c), through `unit_model`'s
    result, `chunk` images at a time."""
    batch = np.asarray(batch, np.float32)
    out = [np.asarray(probe([batch[i:i + chunk]], training=False), np.float32).reshape(-1)
           for i in range(0, len(batch), chunk)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _settings(low: float, high: float) -> dict[str, Any]:
    """tf-keras-vis' defaults: RMSprop(1.0, rho=0.999), TotalVariation2D(1.0),
    Norm(0.3, p=1), Jitter(4), Rotate2D(1). Its step size is in 0-255 units (RMSprop moves
    each pixel by about the learning rate whatever the gradient's size), so for x in
    [low, high] it is scaled by s = (high - low) / 255. The regularisers are kept at their
    weights: both are already divided by the number of pixels, and scaling them by 1/s
    as well (the same loss in 0-255 units) smothered the ascent, measured on the tiny
    model of tests/unit/test_maximise.py in [0, 1]: a class score fell from -0.77 to -1.15
    in 40 steps, where with these weights it rose to 2.1 (the images' largest: 0.78)."""
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter, Rotate2D
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D

    s = (high - low) / 255.0
    return {"learning_rate": 1.0 * s,
            "regularizers": [TotalVariation2D(weight=1.0), Norm(weight=0.3, p=1)],
            "modifiers": [Jitter(jitter=4), Rotate2D(degree=1.0)]}


def maximise(model, unit: Unit, steps: int = STEPS, seed: int = 0,
             progress: Progress | None = None, samples: np.ndarray | None = None,
             value_range: tuple[float, float] = (-1.0, 1.0),
             fixed: list[np.ndarray] | None = None, grey: bool = False) -> Maximised:
    """The input that maximises `unit`, found by `steps` of tf-keras-vis'
    ActivationMaximization from a random image (uniform in `value_range`, the model's
    input range: `input_range(card.input_spec.scale)`), seeded by `seed`.

    `samples` (N, h, w, c) in the same scale: real images to measure the unit on, so the
    result can be compared with what real images make it do. `fixed`: the other inputs of
    a model with several (held constant). `grey`: one channel repeated to an RGB model's
    three (a model shown grey studies: an ascent in colour would find colours it never
    sees). Progress is reported after every step; a progress that raises (a cancelled
    job) stops the ascent there."""
    import keras
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.callbacks import Callback

    if steps < 1:
        raise ExplainError(f"steps must be at least 1 (got {steps})")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ExplainError(f"input range ({low}, {high}) is empty")
    began = time.perf_counter()
    replicated = grey and int(model.inputs[0].shape[-1]) == 3
    probe = unit_model(model, unit, fixed, replicated)
    shape = tuple(int(d) for d in probe.inputs[0].shape[1:])
    if replicated and samples is not None and len(samples):
        samples = np.asarray(samples)[..., :1]  # grey replicated: one channel says it all
    measured = (unit_values(probe, samples) if samples is not None and len(samples)
                else np.zeros(0, np.float32))
    rng = np.random.default_rng(seed)
    start_image = rng.uniform(low, high, (1, *shape)).astype(np.float32)
    start = float(unit_values(probe, start_image)[0])

    settings = _settings(low, high)
    # tf-keras-vis clips only the image it returns; clipped before every step too, the
    # ascent stays inside the input range (projected gradient ascent), so the returned
    # image keeps what it gained: measured on braintumor-xception, unclipped steps reached
    # a glioma score of 20 that fell to 12.3 once the result was clipped.
    settings["modifiers"].append(_Clip(low, high))
    for modifier in settings["modifiers"]:
        if hasattr(modifier, "random_generator"):  # Rotate2D draws its own angles
            modifier.random_generator = np.random.default_rng(seed + 1)
    history: list[float] = []
    best: dict[str, Any] = {"value": -np.inf, "image": start_image[0]}
    title = unit.title

    class Report(Callback):
        def __call__(self, i, values, grads, scores, model_outputs, **kwargs) -> None:
            # The unit measured on this step's image (clipped, unjittered): the steps'
            # values swing with the random jitter and rotation, so the best one is kept.
            image = np.asarray(values[0], np.float32)
            history.append(float(unit_values(probe, image)[0]))
            if history[-1] > best["value"]:
                best.update(value=history[-1], image=image[0])
            report(progress, (i + 1) / steps,
                   f"{title}: step {i + 1} of {steps}, value {history[-1]:.3g}")

    saved = np.random.get_state()  # Jitter draws from numpy's global generator
    np.random.seed(seed)
    try:
        ActivationMaximization(probe, clone=False)(
            lambda outputs: outputs, seed_input=[start_image], input_range=(low, high),
            input_modifiers=settings["modifiers"], regularizers=settings["regularizers"],
            steps=int(steps),
            optimizer=keras.optimizers.RMSprop(settings["learning_rate"], rho=0.999),
            callbacks=[Report()])
    finally:
        np.random.set_state(saved)
    image = np.asarray(best["image"], np.float32)
    if replicated:
        image = np.repeat(image, 3, axis=-1)  # as the model is given it
    activation = float(best["value"])
    return Maximised(unit=unit, image=image, picture=picture(image), activation=activation,
                     samples=measured, start=start, steps=int(steps),
                     seconds=time.perf_counter() - began, history=history)


class _Clip:
    """An input modifier (tf-keras-vis calls it before each step): x clipped to the range."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, x):
        from keras import ops

        return ops.clip(x, self.low, self.high)


def picture(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 of an image in any range: stretched between its 1st and 99th
    percentiles (a maximised image rarely fills the input range; stretched, its pattern
    shows), one channel repeated as grey."""
    image = np.asarray(image, np.float32)
    low, high = np.percentile(image, [1, 99])
    scaled = np.clip((image - low) / max(float(high - low), 1e-12), 0.0, 1.0)
    if scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    elif scaled.shape[-1] != 3:
        scaled = np.repeat(scaled.mean(axis=-1, keepdims=True), 3, axis=-1)
    return np.round(scaled * 255).astype(np.uint8)
