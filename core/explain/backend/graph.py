"""Layers of a Keras model by path, and the model rebuilt as [activations, scores].

- Layers are named by path: "xception/block14_sepconv2_act" is a layer inside the nested
  backbone "xception". tf-keras-vis cannot reach such a layer ("Output ... is not
  connected to inputs"); here the outer graph is re-run once, symbolically, with the
  backbone swapped for a copy that also returns the layer's activations, which gives an
  ordinary connected model with two outputs: [activations, scores]. Sequential models
  are explained through the functional graph Keras builds for them.
- Scores are the outputs before a final softmax or sigmoid (a Dense with that
  activation, or a Softmax/Activation layer), which is stepped over.

The private Keras calls this needs are in `core.models.runtime.keras_private`.
"""

from __future__ import annotations

from core.explain.errors import ExplainError
from core.models.runtime.keras import squashing
from core.models.runtime.keras_private import KerasGraphError, final_operation, run_through_graph
from core.models.runtime.keras_private import graph as _private_graph
from core.nets.unet import BOTTLENECK


def keras_graph(model):
    """The functional graph of a model (ExplainError for a subclassed model)."""
    try:
        return _private_graph(model)
    except KerasGraphError as exc:
        raise ExplainError(str(exc)) from None


def _submodels(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def _rank(layer) -> int:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return 0


def spatial_layers(model, prefix: str = "") -> list[str]:
    """Paths of every layer with a spatial (N, h, w, c) output, nested ones included."""
    return [path for path, _ in _spatial(model, prefix)]


def _spatial(model, prefix: str = "") -> list[tuple[str, object]]:
    found = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if _submodels(layer):
            found.extend(_spatial(layer, prefix=f"{path}/"))
        elif _rank(layer) == 4 and layer.__class__.__name__ != "InputLayer":
            found.append((path, layer))
    return found


def segmentation_layers(model) -> list[str]:
    """The layers to offer for Seg-Grad-CAM on a segmentation model (an encoder-decoder
    such as core.nets.unet), the bottleneck first: Vinogradova et al. 2020 (Sec. 3) found
    it gave the most telling maps; then the last layer at each resolution on the way back
    up (the U-Net's `dec3_conv2` .. `dec1_conv2`), deepest first.

    The bottleneck is the layer named `bottleneck_conv2` where there is one, else the
    last layer of smallest spatial size (dropout, an identity at inference, skipped). The
    output layers (the logits and a squashing layer after them) are not offered: a map
    there is the region itself."""
    layers = [(path, layer) for path, layer in _spatial(model)
              if "Dropout" not in layer.__class__.__name__]
    if not layers:
        raise ExplainError("the model has no layer with a spatial (h, w, channels) output")
    graph = keras_graph(model)
    final = final_operation(graph)
    # A standalone Softmax/Activation squashes the logits layer's output: both go.
    squashed = (final.input if final is not None
                and final.__class__.__name__ in ("Softmax", "Activation") else None)
    layers = [(path, layer) for path, layer in layers
              if layer is not final and (squashed is None or layer.output is not squashed)]
    if not layers:
        raise ExplainError("the model has no spatial layer before its output")
    areas = [_area(layer) for _, layer in layers]
    names = [path.rsplit("/", 1)[-1] for path, _ in layers]
    if BOTTLENECK in names:
        start = names.index(BOTTLENECK)
    else:
        smallest = min(areas)
        start = max(i for i, a in enumerate(areas) if a == smallest)
    chosen = [layers[start][0]]
    # After the bottleneck: the last layer before each change of resolution, and the last.
    for i in range(start + 1, len(layers)):
        if i == len(layers) - 1 or areas[i + 1] != areas[i]:
            if areas[i] > areas[start]:
                chosen.append(layers[i][0])
    return chosen


def _area(layer) -> int:
    _, height, width, _ = layer.output.shape
    return int(height or 0) * int(width or 0)


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
    found = match_layer(layers, layer)
    if found is None:
        raise ExplainError(f"no spatial layer named '{layer}' (try {layers[-1]})")
    return found


def match_layer(paths: list[str], layer: str) -> str | None:
    """The path among `paths` that `layer` names: the path itself, or a bare name found
    once ("block1_conv1" for "xception/block1_conv1"); None where none does, ExplainError
    where several do."""
    if layer in paths:
        return layer
    matches = [p for p in paths if p.rsplit("/", 1)[-1] == layer]
    if len(matches) > 1:
        raise ExplainError(f"layer name '{layer}' is ambiguous: {', '.join(matches)}")
    return matches[0] if matches else None


def _linear_call(layer):
    """A callable that applies `layer` without its final activation. Layers with an
    `activation` attribute apply it in `call`, so it is swapped out while the call runs:
    that happens only while a score function is traced, under the tracing lock."""
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

    graph = keras_graph(model)
    final = final_operation(graph)
    squash = final if strip and final is not None and squashing(final) else None
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
    # Every node of the model applied in order, with the backbone and the final
    # squashing replaced. Run once, symbolically.
    outputs = keras.tree.flatten(run_through_graph(
        graph, inputs if isinstance(graph.input, list | tuple | dict) else inputs[0], swap
    ))
    if path and not captured:
        raise ExplainError(f"layer '{head}' is not on the path from the inputs to the outputs")
    return (inputs if len(inputs) > 1 else inputs[0]), captured[:1] + outputs
