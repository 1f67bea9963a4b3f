"""Every use of Keras' private API in MedLens, in one place.

Keras 3 offers no public way to do these; each is named here with what it is for, and
`check()` (run by tests/unit/test_keras_private.py) fails loudly, naming the attribute,
when a Keras release moves one. Nothing else in the tree may touch `keras.src` or a
`_private` attribute of a Keras object.

- `Sequential._functional`: the functional graph a Sequential model builds for itself.
- `Functional._run_through_graph(inputs, operation_fn)`: re-runs a model's graph with
  some operations swapped (a nested backbone that also returns a layer's activations, a
  final softmax stepped over).
- `KerasTensor._keras_history.operation`: the layer that made a tensor.
- `Operation._inbound_nodes`, `Functional._nodes`, `keras.src.ops.function.make_node_key`:
  which calls of a layer belong to one model's graph; `Node.input_tensors`: what feeds
  one of those calls (the layer graph of core.inside).
- `keras.src.backend.nn.relu`: swapped for Guided Backprop's ReLU while its gradient
  function is traced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class KerasGraphError(ValueError):
    """A model whose layer graph cannot be read (a subclassed model). One line."""


def graph(model):
    """The functional graph of a model: Sequential models keep one in `_functional`."""
    found = getattr(model, "_functional", None) or model
    if not hasattr(found, "_run_through_graph"):
        raise KerasGraphError(f"{model.__class__.__name__} '{model.name}' has no layer graph "
                              "(a subclassed model): build it as a functional or Sequential "
                              "model")
    return found


def producer(tensor) -> Any:
    """The operation (layer) that made a symbolic tensor, or None."""
    history = getattr(tensor, "_keras_history", None)
    return getattr(history, "operation", None)


def final_operation(model_graph) -> Any:
    """The layer that makes a graph's first output."""
    return producer(model_graph.outputs[0])


def run_through_graph(model_graph, inputs, operation_fn: Callable[[Any], Callable]):
    """Keras' own graph runner: every node applied in order, each operation replaced by
    `operation_fn(operation)`. Run on symbolic inputs it builds a new connected graph."""
    return model_graph._run_through_graph(inputs, operation_fn=operation_fn)


def calls_in(layer, model) -> list:
    """The calls (nodes) of `layer` that are part of `model`'s own graph; every call where
    the model keeps no node list."""
    calls = getattr(layer, "_inbound_nodes", None) or []
    own = getattr(model, "_nodes", None)
    if own is None:
        return list(calls)
    from keras.src.ops.function import make_node_key

    return [node for i, node in enumerate(calls) if make_node_key(layer, i) in own]


def fed_by(layer, model) -> list:
    """The operations (layers) whose outputs feed `layer`'s first call inside `model`, in
    the order of its inputs, once each. A nested model's call is its outer call: fed by
    the outer model's layers, not by its own input layer."""
    calls = calls_in(layer, model)
    if not calls:
        return []
    found = [producer(t) for t in getattr(calls[0], "input_tensors", ())]
    return list(dict.fromkeys(op for op in found if op is not None))


@contextlib.contextmanager
def relu_replaced(relu: Callable) -> Iterator[None]:
    """Keras' backend ReLU replaced by `relu` while the block runs (used only while a
    function is traced, under the tracing lock)."""
    from keras.src.backend import nn as backend_nn

    saved = backend_nn.relu
    backend_nn.relu = relu
    try:
        yield
    finally:
        backend_nn.relu = saved


def check() -> list[str]:
    """What this module relies on that the installed Keras no longer has or does (empty:
    all there), each named. Checked through the functions above on small models built
    here, so a Keras release that moves one shows up here, and not as a wrong map."""
    import keras
    import numpy as np

    inputs = keras.Input((4, 4, 1))
    hidden = keras.layers.Conv2D(2, 3)(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(hidden))
    functional = keras.Model(inputs, outputs)
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    conv = functional.layers[1]
    conv(keras.Input((4, 4, 1)))  # called once more outside the model: not one of its calls

    def rerun() -> bool:
        again = run_through_graph(functional, keras.Input((4, 4, 1)), lambda op: op)
        return tuple(keras.tree.flatten(again)[0].shape) == (None, 2)

    def relu_swapped() -> bool:
        with relu_replaced(lambda x: x * 0 + 7):
            return float(np.asarray(keras.activations.relu(np.array([-1.0], "float32")))[0]) == 7

    probes = {
        "Sequential._functional._run_through_graph":
            lambda: hasattr(getattr(sequential, "_functional", None), "_run_through_graph"),
        "Functional._run_through_graph(inputs, operation_fn)": rerun,
        "KerasTensor._keras_history.operation":
            lambda: producer(functional.outputs[0]) is functional.layers[-1],
        "Operation._inbound_nodes, Functional._nodes, keras.src.ops.function.make_node_key":
            lambda: len(calls_in(conv, None)) > len(calls_in(conv, functional)) == 1,
        "keras.src.backend.nn.relu (as keras.activations.relu calls it)": relu_swapped,
        "Node.input_tensors": lambda: fed_by(functional.layers[2], functional)
            == [conv] and fed_by(functional.layers[0], functional) == [],
    }
    missing = []
    for name, probe in probes.items():
        try:
            kept = probe()
        except Exception:  # a moved attribute may raise rather than answer: missing too
            kept = False
        if not kept:
            missing.append(name)
    return missing
