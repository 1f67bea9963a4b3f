"""Keras models: the one loader (safe mode), TensorFlow imported quietly, and compiled
functions traced once per model.

TensorFlow is imported only when a Keras model is loaded or run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.models.cards import ModelError
from core.models.runtime.keras_private import final_operation, graph

UNSAFE_SETTING = "MEDLENS_ALLOW_UNSAFE_MODELS"

# One lock for every trace: tracing patches Keras globals (Guided Backprop's ReLU).
tracing = threading.RLock()
_COMPILED = "_medlens_compiled"
_TRACING = "_medlens_tracing_seconds"


def import_tensorflow():
    """Import TensorFlow without its C++ start-up lines on stderr.

    absl logs them before TF_CPP_MIN_LOG_LEVEL is read, so file descriptor 2 is pointed
    at /dev/null for the import only; stderr stays for the user's errors.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import keras  # noqa: F401  (keras imports tensorflow's C++ core too)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def register_layers() -> None:
    """Imports the modules whose custom layers MedLens' trained models hold (each
    registers its layers with Keras), so those models load in safe mode."""
    import importlib

    import core.nets.blocks  # noqa: F401
    for module in ("core.nets.preprocessing", "core.nets.recurrent", "core.nets.dcgan"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing module is skipped; a broken one is not
                raise


def load_keras(path: Path, name: str, allow_unsafe: bool = False):
    """A .keras file in safe mode (no serialised Python code) unless `allow_unsafe`, which
    only the server's administrator sets (MEDLENS_ALLOW_UNSAFE_MODELS). Errors are one
    line naming `name`."""
    import_tensorflow()
    import keras

    register_layers()
    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe, compile=False)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise ModelError(
                f"{name}: refused: the file holds Python code (a Lambda layer or "
                "similar), which safe mode does not run; the server's administrator can "
                f"allow such models with {UNSAFE_SETTING}=1") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ModelError(f"{name}: not a loadable Keras model ({first[:200]})") from None


def compiled(model: Any, key: Any, build: Callable[[], Any],
             context: Callable[[], Any] = contextlib.nullcontext):
    """`build()`'s tf.function for `model`, traced once (under `context`, inside the one
    tracing lock) and kept on the model itself, so it lives and dies with the model."""
    with tracing:
        functions = model.__dict__.get(_COMPILED)
        if functions is None:
            functions = {}
            # Past Keras' attribute tracking: this is not a layer or a weight.
            object.__setattr__(model, _COMPILED, functions)
        if key not in functions:
            started = time.perf_counter()
            fn = build()
            with context():
                fn.get_concrete_function()
            functions[key] = fn
            # What tracing has cost this model so far: a run's time less it is the run.
            spent = model.__dict__.get(_TRACING, 0.0) + time.perf_counter() - started
            object.__setattr__(model, _TRACING, spent)
        return functions[key]


def tracing_seconds(model: Any) -> float:
    """The seconds `compiled` has spent tracing functions for `model` so far (0 for None
    or a model it never traced)."""
    return float(getattr(model, "__dict__", {}).get(_TRACING, 0.0))


def input_specs(model) -> list[tuple[tuple, Any]]:
    """(shape without the batch axis, dtype) of each input, in the model's order."""
    return [(tuple(t.shape[1:]), t.dtype) for t in graph(model).inputs]


def signature(model, with_target: bool = False) -> list:
    """A tf.function input signature for the model's inputs (and an int32 target)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None, *shape], dtype) for shape, dtype in input_specs(model)]
    return specs + ([tf.TensorSpec([None], tf.int32)] if with_target else [])


def as_arguments(x: list) -> Any:
    """A model's call argument from its inputs in order: the list, or the one tensor."""
    return list(x) if len(x) > 1 else x[0]


def forward_function(model):
    """fn(*inputs) -> the model's outputs as it gives them, compiled once per model: the
    one forward pass the classifier and the explainers share."""
    import tensorflow as tf

    def build():
        @tf.function(input_signature=signature(model))
        def forward(*x):
            return model(as_arguments(x), training=False)

        return forward

    return compiled(model, "forward", build)


def squashing(operation) -> str | None:
    """'softmax' or 'sigmoid' when a final layer squashes scores into probabilities (a
    Softmax layer, or a layer whose activation is softmax or sigmoid)."""
    name = operation.__class__.__name__
    if name == "Softmax":
        return "softmax"
    activation = getattr(operation, "activation", None)
    activation = getattr(activation, "__name__", None)
    return activation if activation in ("softmax", "sigmoid") else None


def head(model) -> str:
    """What the model applies to its scores last: "softmax", "sigmoid" or "linear"."""
    final = final_operation(graph(model))
    return (final is not None and squashing(final)) or "linear"
