"""What every explanation method shares.

- A model is seen as class scores (`ScoreModel`): its pre-softmax outputs where it has
  them, so gradient methods act on the score and not on a saturated probability. A
  final softmax or sigmoid (a Dense with that activation, or a Softmax/Activation layer)
  is stepped over. A single sigmoid unit is two classes: 1 scores z, 0 scores -z.
- Layers are named by path: "xception/block14_sepconv2_act" is a layer inside the nested
  backbone "xception". tf-keras-vis cannot reach such a layer ("Output ... is not
  connected to inputs"); here the outer graph is re-run once, symbolically, with the
  backbone swapped for a copy that also returns the layer's activations, which gives an
  ordinary connected model with two outputs: [activations, scores]. Sequential models
  are explained through the functional graph Keras builds for them.
- Models with several inputs are explained on their image input (the first of rank 4);
  the other inputs are held as given.
- Every gradient is computed in a `tf.function` traced once per model, method kind and
  layer, under one lock, and reused for every call. Guided Backprop's ReLU is swapped in
  only while its own function is traced.
- Models without gradients (ONNX through onnxruntime) are `ForwardModel`s: the methods
  that need only forward passes (occlusion, RISE) run on them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

Progress = Callable[[float, str], None]


class ExplainError(ValueError):
    """An explanation that cannot be made as asked. One line."""


# -- layers ------------------------------------------------------------------------------

def _submodels(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def _rank(layer) -> int:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return 0


def spatial_layers(model, prefix: str = "") -> list[str]:
    """Paths of every layer with a spatial (N, h, w, c) output, nested ones included."""
    found = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if _submodels(layer):
            found.extend(spatial_layers(layer, prefix=f"{path}/"))
        elif _rank(layer) == 4 and layer.__class__.__name__ != "InputLayer":
            found.append(path)
    return found


def last_spatial_layer(model) -> str:
    """The last layer with a spatial output, searching inside nested backbones."""
    layers = spatial_layers(model)
    if not layers:
        raise ExplainError("the model has no layer with a spatial (h, w, channels) output")
    return layers[-1]


def resolve_layer(model, layer: str | None) -> str:
    """A layer path from a path, a bare layer name, or None (the last spatial layer)."""
    if layer is None:
        return last_spatial_layer(model)
    layers = spatial_layers(model)
    if layer in layers:
        return layer
    matches = [p for p in layers if p.rsplit("/", 1)[-1] == layer]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ExplainError(f"no spatial layer named '{layer}' (try {layers[-1]})")
    raise ExplainError(f"layer name '{layer}' is ambiguous: {', '.join(matches)}")


def _graph(model):
    """The functional graph of a model: Sequential models keep one in `_functional`."""
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_run_through_graph"):
        raise ExplainError(f"{model.__class__.__name__} '{model.name}' has no layer graph "
                           "(a subclassed model): build it as a functional or Sequential model")
    return graph


def _final_operation(graph):
    history = getattr(graph.outputs[0], "_keras_history", None)
    return history.operation if history else None


def _squashing(operation) -> str | None:
    """'softmax' or 'sigmoid' when a final layer squashes scores into probabilities."""
    name = operation.__class__.__name__
    if name == "Softmax":
        return "softmax"
    activation = getattr(operation, "activation", None)
    activation = getattr(activation, "__name__", None)
    return activation if activation in ("softmax", "sigmoid") else None


def _linear_call(layer):
    """A callable that applies `layer` without its final activation. Layers with an
    `activation` attribute apply it in `call`, so it is swapped out while the call runs:
    that happens only while a score function is traced, under `_compiling`."""
    import keras

    if layer.__class__.__name__ in ("Softmax", "Activation"):
        return lambda x, *args, **kwargs: x

    class WithoutActivation(keras.layers.Layer):
        def call(self, x):
            saved = layer.activation
            layer.activation = keras.activations.linear
            try:
                return layer(x)
            finally:
                layer.activation = saved

    return WithoutActivation(name=f"{layer.name}_scores")


def score_model(model, path: str | None = None):
    """A Keras model with the same inputs: [activations at `path`, scores] or [scores].

    Scores are the outputs before a final softmax/sigmoid. `path` may name a layer inside
    a nested backbone ("xception/block14_sepconv2_act")."""
    import keras

    inputs, outputs = _rebuilt(model, path, strip=True)
    return keras.Model(inputs, outputs[:2] if path else outputs[0])


def _rebuilt(model, path: str | None, strip: bool):
    """(new inputs, [activations at `path` if any, *outputs]) of `model` run anew."""
    import keras

    graph = _graph(model)
    final = _final_operation(graph)
    squash = final if strip and final is not None and _squashing(final) else None
    head, _, rest = (path or "").partition("/")
    layer = graph.get_layer(head) if path else None
    inner = None
    if rest:
        inner_inputs, inner_outputs = _rebuilt(layer, rest, strip=False)
        inner = keras.Model(inner_inputs, inner_outputs)
    captured = []

    def swap(operation):
        if operation is layer:
            def call(*args, **kwargs):
                if inner is None:
                    captured.append(operation(*args, **kwargs))
                    return captured[-1]
                activations, *outputs = inner(*args, **kwargs)
                captured.append(activations)
                return outputs[0] if len(outputs) == 1 else outputs
            return call
        if operation is squash:
            return _linear_call(operation)
        return operation

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in graph.inputs]
    # Keras's own graph runner: every node of the model is applied in order, with the
    # backbone and the final squashing replaced. Run once, symbolically.
    outputs = keras.tree.flatten(graph._run_through_graph(
        inputs if isinstance(graph.input, list | tuple | dict) else inputs[0], operation_fn=swap
    ))
    if path and not captured:
        raise ExplainError(f"layer '{head}' is not on the path from the inputs to the outputs")
    return (inputs if len(inputs) > 1 else inputs[0]), captured[:1] + outputs


# -- the model as scores -----------------------------------------------------------------

_compiling = threading.RLock()


@contextlib.contextmanager
def _guided_relu():
    """Guided Backprop's ReLU (Springenberg et al. 2015, Eq. in Fig. 1): the gradient
    passes only where both the forward input and the incoming gradient are positive."""
    import tensorflow as tf
    from keras.src.backend import nn as backend_nn

    @tf.custom_gradient
    def guided(x):
        y = tf.nn.relu(x)

        def grad(dy):
            return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)

        return y, grad

    saved = backend_nn.relu
    backend_nn.relu = guided
    try:
        yield
    finally:
        backend_nn.relu = saved


def _select(scores, target, single: bool):
    """The score of each image's target class (a single unit: 1 -> z, 0 -> -z). A target
    of -1 is the predicted class, found in the same pass: no forward pass of its own."""
    import tensorflow as tf

    if single:
        z = scores[:, 0]
        target = tf.where(target < 0, tf.cast(z > 0, tf.int32), target)
        return tf.where(target == 1, z, -z)
    target = tf.where(target < 0, tf.argmax(scores, axis=1, output_type=tf.int32), target)
    return tf.gather(scores, target, batch_dims=1)


PREDICTED = -1  # a target meaning "the class the model predicts"


def predicted_from(scores: np.ndarray, single: bool) -> np.ndarray:
    """The predicted class of each row of scores (a single unit: 1 where z > 0)."""
    if single:
        return (scores[:, 0] > 0).astype(np.int32)
    return scores.argmax(axis=1).astype(np.int32)


def resolved(target: np.ndarray, scores: np.ndarray, single: bool) -> np.ndarray:
    """`target` with PREDICTED replaced by the class the scores predict."""
    return np.where(target < 0, predicted_from(scores, single), target).astype(np.int32)


def predicted(model, inputs: list[np.ndarray]) -> np.ndarray:
    """The class `model` (a ScoreModel or ForwardModel) predicts for each input: one
    forward pass."""
    return predicted_from(model.scores(inputs), model.single)


def concrete(model, inputs: list[np.ndarray], target: np.ndarray) -> np.ndarray:
    """`target` with PREDICTED replaced, by a forward pass where one is needed (methods
    that must know the class before they start)."""
    if (target >= 0).all():
        return target
    return resolved(target, model.scores(inputs), model.single)


@dataclass
class ScoreModel:
    """A Keras model seen as class scores, with its compiled gradient functions."""

    model: Any
    image_input: int = 0
    n_outputs: int = 0
    head: str = "linear"  # what the model applies to its scores: softmax, sigmoid, linear
    functions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        graph = _graph(self.model)
        if not graph.inputs:
            raise ExplainError(f"model '{self.model.name}' is not built (give it an Input)")
        ranks = [len(t.shape) for t in graph.inputs]
        if 4 not in ranks:
            raise ExplainError("the model has no image input (N, h, w, channels)")
        self.image_input = ranks.index(4)
        self.n_outputs = int(graph.outputs[0].shape[-1])
        final = _final_operation(graph)
        self.head = (final is not None and _squashing(final)) or "linear"
        self.specs = [(t.shape[1:], t.dtype) for t in graph.inputs]

    @property
    def single(self) -> bool:
        return self.n_outputs == 1

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
        """Trace `build()`'s tf.function once, under the lock (with patches in place)."""
        with _compiling:
            if key not in self.functions:
                fn = build()
                with _guided_relu() if guided else contextlib.nullcontext():
                    fn.get_concrete_function()
                self.functions[key] = fn
            return self.functions[key]

    def _signature(self, with_target: bool = True):
        import tensorflow as tf

        specs = [tf.TensorSpec([None, *shape], dtype) for shape, dtype in self.specs]
        return specs + ([tf.TensorSpec([None], tf.int32)] if with_target else [])

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
                return model(list(x) if len(x) > 1 else x[0], training=False)

            return scores

        fn = self._compile("scores", build)
        return np.concatenate([self._call(fn, part).numpy() for part in _batches(inputs, batch)])

    def probabilities(self, inputs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(N, classes) probabilities: softmax, sigmoid or (two classes) 1-p, p."""
        return probabilities_of(self.scores(inputs, batch), self.head, self.single)

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
                    activations, scores = model(list(x) if len(x) > 1 else x[0],
                                                training=False)
                    score = _select(scores, target, single)
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
                return model(list(x) if len(x) > 1 else x[0], training=False)[0]

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
                    scores = model(list(x) if len(x) > 1 else x[0], training=False)
                    score = _select(scores, target, single)
                return tape.gradient(score, x[image]), scores

            return gradients

        fn = self._compile(("input", guided), build, guided=guided)
        grads, scores = [], []
        target = target.astype(np.int32)
        for start, part in zip(range(0, len(target), batch), _batches(inputs, batch),
                               strict=True):
            g, s = self._call(fn, part, target[start:start + batch])
            grads.append(g.numpy())
            scores.append(s.numpy())
        return np.concatenate(grads), np.concatenate(scores)


@dataclass
class ForwardModel:
    """A model known only by its forward pass (an onnxruntime session, a function):
    `predict(batch) -> probabilities`. Enough for occlusion and RISE."""

    predict: Callable[[np.ndarray], np.ndarray]
    image_shape: tuple[int, int, int]
    n_classes: int

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


def probabilities_of(scores: np.ndarray, head: str, single: bool) -> np.ndarray:
    """Class probabilities from scores, as the model's head makes them."""
    scores = scores.astype(np.float64)
    if single:
        p = 1 / (1 + np.exp(-scores[:, 0]))
        return np.stack([1 - p, p], axis=1).astype(np.float32)
    if head == "sigmoid":
        return (1 / (1 + np.exp(-scores))).astype(np.float32)
    if head == "softmax" or head == "linear":
        # A linear head is taken to give logits (the built-in Xceptions do).
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return scores.astype(np.float32)


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
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # onnxruntime session
        return onnx_forward(model)
    with _compiling:
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
    """An onnxruntime session whose first output is probabilities (N, classes)."""
    first = session.get_inputs()[0]
    out = session.get_outputs()[0]
    name = first.name
    lock = threading.Lock()

    def predict(batch: np.ndarray) -> np.ndarray:
        with lock:
            return session.run(None, {name: batch.astype(np.float32)})[0]

    return ForwardModel(predict=predict, image_shape=tuple(int(d) for d in first.shape[1:]),
                        n_classes=int(out.shape[-1]))


def forward_function(model):
    """fn(x) -> model outputs (as the model gives them), compiled once per model."""
    import tensorflow as tf

    scores = as_score_model(model)

    def build():
        as_list = len(scores.specs) > 1

        @tf.function(input_signature=scores._signature(False))
        def forward(*x):
            return model(list(x) if as_list else x[0], training=False)

        return forward

    return scores._compile("forward", build)


# -- maps --------------------------------------------------------------------------------

def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum: [0, 1], zero where there is no positive evidence."""
    maps = np.maximum(np.nan_to_num(maps), 0).astype(np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    peak[peak == 0] = 1.0
    return maps / peak[:, None, None]


def resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a batch of 2-D maps."""
    if maps.shape[1:] == (height, width):
        return maps.astype(np.float32)
    return np.stack(
        [cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
         for m in maps]
    )


def channel_magnitude(gradients: np.ndarray) -> np.ndarray:
    """(N, h, w) from (N, h, w, c): the largest absolute value over the channels, as
    Simonyan et al. (2014, Sec. 3.1) reduce an RGB gradient to one map."""
    return np.abs(gradients).max(axis=-1)


# -- methods -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One parameter of a method: its default, its type and what it does."""

    default: Any
    help: str
    kind: type = float
    low: float | None = None
    high: float | None = None


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
    differentiable (Keras) model."""

    name: str
    title: str
    paper: str
    uses_layer: bool = False
    gradients: bool = True
    options: dict[str, Option] = {}

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


def target_probability(model, inputs: list[np.ndarray], target: int,
                       batch: int = 32) -> np.ndarray:
    """p(target | each input), in batches."""
    return model.probabilities(inputs, batch)[:, int(target)]


def report(progress: Progress | None, done: float, text: str) -> None:
    if progress is not None:
        progress(min(max(done, 0.0), 1.0), text)


class CAM(Method):
    """Class activation map: a layer's activations A^k combined with the gradients of the
    class score dy^c/dA^k, then ReLU. Most methods weight whole channels (`weights`);
    element-wise ones (Layer-CAM, HiRes-CAM) override `combine`."""

    uses_layer = True

    def weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, K) channel weights from activations and gradients (N, h, w, K)."""
        raise NotImplementedError

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, h, w) before the ReLU: sum_k w^k_c A^k."""
        return np.einsum("nhwk,nk->nhw", activations, self.weights(activations, gradients))

    def attribute(self, model, inputs, target, layer, progress, **options) -> Attribution:
        activations, gradients, scores = model.layer_gradients(inputs, target, layer)
        # L^c = ReLU(combination of A and dy^c/dA)
        return Attribution(np.maximum(self.combine(activations, gradients), 0),
                           resolved(target, scores, model.single))
