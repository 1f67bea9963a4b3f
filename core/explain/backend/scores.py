"""A model seen as class scores, with its compiled gradient functions.

- A Keras model is a `ScoreModel`: its pre-softmax outputs where it has them, so gradient
  methods act on the score and not on a saturated probability. A single sigmoid unit is
  two classes: 1 scores z, 0 scores -z.
- Models with several inputs are explained on their image input (the first of rank 4);
  the other inputs are held as given.
- Every gradient is computed in a `tf.function` traced once per model, method kind and
  layer (`core.models.runtime.keras.compiled`), and reused for every call. Guided
  Backprop's ReLU is swapped in only while its own function is traced.
- Models without gradients (ONNX through onnxruntime) are `ForwardModel`s: the methods
  that need only forward passes (occlusion, RISE) run on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.explain.backend.graph import keras_graph, score_model
from core.explain.errors import ExplainError
from core.explain.targets import class_score
from core.models.outputs import probabilities, with_predicted
from core.models.runtime.keras import as_arguments, compiled, input_specs, signature, tracing
from core.models.runtime.keras import head as keras_head
from core.models.runtime.keras_private import relu_replaced
from core.models.runtime.onnx import OnnxRunner, runner


@contextlib.contextmanager
def guided_relu():
    """Guided Backprop's ReLU (Springenberg et al. 2015, Eq. in Fig. 1): the gradient
    passes only where both the forward input and the incoming gradient are positive."""
    import tensorflow as tf

    @tf.custom_gradient
    def guided(x):
        y = tf.nn.relu(x)

        def grad(dy):
            return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)

        return y, grad

    with relu_replaced(guided):
        yield


@dataclass
class ScoreModel:
    """A Keras model seen as class scores, with its compiled gradient functions."""

    model: Any
    image_input: int = 0
    n_outputs: int = 0
    head: str = "linear"  # what the model applies to its scores: softmax, sigmoid, linear
    output_rank: int = 2  # 4 for a segmentation model: (N, h, w, labels)

    def __post_init__(self) -> None:
        graph = keras_graph(self.model)
        if not graph.inputs:
            raise ExplainError(f"model '{self.model.name}' is not built (give it an Input)")
        ranks = [len(t.shape) for t in graph.inputs]
        if 4 not in ranks:
            raise ExplainError("the model has no image input (N, h, w, channels)")
        self.image_input = ranks.index(4)
        self.n_outputs = int(graph.outputs[0].shape[-1])
        self.output_rank = len(graph.outputs[0].shape)
        self.head = keras_head(self.model)
        self.specs = input_specs(graph)

    @property
    def single(self) -> bool:
        return self.n_outputs == 1

    @property
    def segmentation(self) -> bool:
        """A model that scores every pixel (N, h, w, labels): explained by regions."""
        return self.output_rank == 4

    @property
    def n_classes(self) -> int:
        """A single sigmoid unit is two classes (0: negative, 1: positive)."""
        return 2 if self.single else self.n_outputs

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.specs[self.image_input][0])

    @property
    def gradients(self) -> bool:
        return True

    def inputs(self, x) -> list[np.ndarray]:
        """The model's inputs as a list in its order; `x` an array or a list of them."""
        arrays = list(x) if isinstance(x, list | tuple) else [x]
        if len(arrays) != len(self.specs):
            raise ExplainError(f"the model takes {len(self.specs)} inputs, {len(arrays)} given")
        out = []
        for array, (shape, dtype) in zip(arrays, self.specs, strict=True):
            array = np.asarray(array, dtype=dtype)
            if tuple(array.shape[1:]) != tuple(d for d in shape):
                raise ExplainError(f"input of shape {array.shape[1:]}, "
                                   f"the model expects {tuple(shape)}")
            out.append(array)
        if len({len(a) for a in out}) != 1:
            raise ExplainError("the inputs differ in batch size")
        return out

    def _compile(self, key, build: Callable[[], Callable], guided: bool = False):
        """Trace `build()`'s tf.function once per model (with Guided Backprop's ReLU in
        place while it is traced, where asked)."""
        return compiled(self.model, key, build, guided_relu if guided else nullcontext)

    def _signature(self, with_target: bool = True):
        return signature(self.model, with_target)

    def _call(self, fn, inputs, *extra):
        import tensorflow as tf

        args = [tf.constant(a) for a in inputs] + [tf.constant(e) for e in extra]
        return fn(*args)

    # The compiled functions. Each takes the model's inputs (and targets) in its order.

    def scores(self, inputs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(N, outputs) pre-softmax scores."""
        import tensorflow as tf

        def build():
            model = score_model(self.model)

            @tf.function(input_signature=self._signature(False))
            def scores(*x):
                return model(as_arguments(x), training=False)

            return scores

        fn = self._compile("scores", build)
        return np.concatenate([self._call(fn, part).numpy() for part in _batches(inputs, batch)])

    def probabilities(self, inputs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(N, classes) probabilities: softmax, sigmoid or (two classes) 1-p, p."""
        return probabilities(self.scores(inputs, batch), self.head, self.single)

    def layer_gradients(self, inputs: list[np.ndarray], target: np.ndarray, layer: str):
        """(activations A, dS_target/dA, scores) at `layer`, numpy arrays."""
        import tensorflow as tf

        single = self.single

        def build():
            model = score_model(self.model, layer)

            @tf.function(input_signature=self._signature())
            def gradients(*args):
                *x, target = args
                # The tape records through the weights it sees; only dS/dA is asked for,
                # so the weight gradients are pruned from the traced graph.
                with tf.GradientTape() as tape:
                    activations, scores = model(as_arguments(x), training=False)
                    score = class_score(scores, target, single)
                return activations, tape.gradient(score, activations), scores

            return gradients

        fn = self._compile(("layer", layer), build)
        return tuple(t.numpy() for t in self._call(fn, inputs, target.astype(np.int32)))

    def activations(self, inputs: list[np.ndarray], layer: str) -> np.ndarray:
        """Activations at `layer` (no gradients)."""
        import tensorflow as tf

        def build():
            model = score_model(self.model, layer)

            @tf.function(input_signature=self._signature(False))
            def activations(*x):
                return model(as_arguments(x), training=False)[0]

            return activations

        return self._call(self._compile(("activations", layer), build), inputs).numpy()

    def input_gradients(self, inputs: list[np.ndarray], target: np.ndarray,
                        guided: bool = False, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(dS_target/dx on the image input, scores), in batches of `batch` images."""
        import tensorflow as tf

        single, image = self.single, self.image_input

        def build():
            model = score_model(self.model)

            @tf.function(input_signature=self._signature())
            def gradients(*args):
                *x, target = args
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(x[image])
                    scores = model(as_arguments(x), training=False)
                    score = class_score(scores, target, single)
                return tape.gradient(score, x[image]), scores

            return gradients

        fn = self._compile(("input", guided), build, guided=guided)
        return gradients_in_batches(self._call, fn, inputs, target, batch)


@dataclass
class ForwardModel:
    """A model known only by its forward pass (an onnxruntime session, a function):
    `predict(batch) -> probabilities`. Enough for occlusion and RISE."""

    predict: Callable[[np.ndarray], np.ndarray]
    image_shape: tuple[int, int, int]
    n_classes: int
    segmentation: bool = False  # predict gives (N, h, w, labels): explained by regions

    @property
    def gradients(self) -> bool:
        return False

    image_input = 0
    single = False

    def inputs(self, x) -> list[np.ndarray]:
        x = np.asarray(x[0] if isinstance(x, list | tuple) else x, dtype=np.float32)
        if tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ExplainError(f"input of shape {x.shape[1:]}, the model expects "
                               f"{tuple(self.image_shape)}")
        return [x]

    def probabilities(self, inputs: list[np.ndarray], batch: int = 32) -> np.ndarray:
        return np.concatenate([np.asarray(self.predict(part[0]), dtype=np.float32)
                               for part in _batches(inputs, batch)])

    def scores(self, inputs: list[np.ndarray], batch: int = 32) -> np.ndarray:
        return self.probabilities(inputs, batch)


def gradients_in_batches(call, fn, inputs: list[np.ndarray], target: np.ndarray,
                         batch: int) -> tuple[np.ndarray, np.ndarray]:
    """A compiled (gradients, scores) function `fn` run through `call` over `inputs` in
    batches of `batch`, each with its images' int32 targets; the results concatenated."""
    grads, scores = [], []
    target = target.astype(np.int32)
    for start, part in zip(range(0, len(target), batch), _batches(inputs, batch), strict=True):
        g, s = call(fn, part, target[start:start + batch])
        grads.append(g.numpy())
        scores.append(s.numpy())
    return np.concatenate(grads), np.concatenate(scores)


def _batches(inputs: list[np.ndarray], size: int):
    for start in range(0, len(inputs[0]), size):
        yield [a[start:start + size] for a in inputs]


def as_score_model(model) -> ScoreModel | ForwardModel:
    """A Keras model (or a Classifier, or an onnxruntime session) as scores, made once
    per model and kept on the model itself, so it lives and dies with the model."""
    if isinstance(model, ScoreModel | ForwardModel):
        return model
    if hasattr(model, "card") and hasattr(model, "keras_model"):  # a core.models.Classifier
        if model.keras_model is not None:
            return as_score_model(model.keras_model)
        return _classifier_forward(model)
    if isinstance(model, OnnxRunner) or (hasattr(model, "get_inputs")
                                         and hasattr(model, "run")):  # onnxruntime
        return onnx_forward(model)
    with tracing:
        scores = model.__dict__.get(_KEPT)
        if scores is None:
            scores = ScoreModel(model)
            # Past Keras' attribute tracking: this is not a layer or a weight.
            object.__setattr__(model, _KEPT, scores)
        return scores


_KEPT = "_medlens_score_model"


def _classifier_forward(classifier) -> ForwardModel:
    c = classifier.card
    return ForwardModel(predict=classifier.probabilities, image_shape=tuple(c.input_shape),
                        n_classes=len(c.labels))


def onnx_forward(session) -> ForwardModel:
    """An onnxruntime session (or OnnxRunner) whose first output is probabilities (N,
    classes), or (N, h, w, labels) for a segmentation model, run through its one locked
    path."""
    onnx = runner(session)
    return ForwardModel(predict=onnx.run, image_shape=tuple(int(d) for d in onnx.input_shape[1:]),
                        n_classes=int(onnx.output_shape[-1]),
                        segmentation=len(onnx.output_shape) == 4)


def known_targets(model: ScoreModel | ForwardModel, inputs: list[np.ndarray],
                  target: np.ndarray) -> np.ndarray:
    """`target` with PREDICTED replaced, by a forward pass where one is needed (methods
    and measures that must know the class before they start)."""
    target = np.asarray(target, dtype=np.int32)
    if (target >= 0).all():
        return target
    return with_predicted(target, model.scores(inputs), model.single)
