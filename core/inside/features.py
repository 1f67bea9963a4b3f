"""Feature maps: what a layer outputs for an image, activation statistics per layer over
a set of images, and how well each layer's features tell the classes apart.

Every layer is reached through one probe: the model's graph run anew, symbolically, with
each wanted layer's output captured (a nested backbone swapped for a copy that also
returns its inner layers' outputs, as core.explain.backend.graph does for one layer), so
a layer inside "xception" is read in the same forward pass as the outer model's.

Separation (the teaching question "which block first separates glioma from the other
classes"): each layer's output averaged over its positions (global average pooling, the
same summary the classifier's head reads), each channel standardised over the images
(no labels used), then leave-one-out nearest-centroid classification (Tibshirani et al.
2002 without shrinkage; Hastie, Tibshirani and Friedman, "The Elements of Statistical
Learning", Sec. 18.2): each image is given the class whose centroid of the *other*
images is closest in Euclidean distance.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.explain.backend.graph import match_layer, spatial_layers
from core.explain.errors import ExplainError
from core.models.runtime.keras_private import graph as keras_graph
from core.models.runtime.keras_private import producer, run_through_graph
from core.progress import Progress, report

# model -> {paths: probe}: building a probe re-runs the graph symbolically (~0.1-0.5 s on
# the Xception); the page asks for one layer after another on the same model.
_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_paths(model, prefix: str = "") -> list[str]:
    """Every layer's path, nested models' layers included (after the nested model)."""
    found = []
    for layer in keras_graph(model).layers:
        path = f"{prefix}{layer.name}"
        found.append(path)
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            found += layer_paths(layer, f"{path}/")
    return found


def find_layer(model, layer: str) -> str:
    """The path of a layer given by path or by a name found once; ExplainError (one
    line, saying where the names are listed) otherwise."""
    found = match_layer(layer_paths(model), layer)
    if found is not None:
        return found
    raise ExplainError(f"no layer '{layer}' in the model (list them with `medlens models "
                       "show ID --layers`; inside a nested model, as xception/block1_conv1)")


def probe(model, paths: list[str] | tuple[str, ...]):
    """A Keras model with `model`'s inputs whose outputs are the outputs of the layers at
    `paths`, in that order. Cached per model."""
    import keras

    key = tuple(paths)
    try:
        cached = _PROBES.setdefault(model, {})
    except TypeError:  # not weakly referenceable: built each time
        cached = {}
    if key not in cached:
        inputs, found, _ = _capture(model, list(key))
        cached[key] = keras.Model(inputs, found)
    return cached[key]


def _capture(model, paths: list[str]):
    """(new inputs, [the output at each path], [the model's outputs]) of `model` run
    anew on new symbolic inputs."""
    import keras

    walked = keras_graph(model)
    found: list[Any] = [None] * len(paths)
    top: dict[int, list[int]] = {}
    nested: dict[int, list[tuple[str, int]]] = {}
    layers: dict[int, Any] = {}
    for i, path in enumerate(paths):
        head, _, rest = path.partition("/")
        try:
            layer = walked.get_layer(head)
        except ValueError:
            raise ExplainError(f"no layer '{head}' in {model.name}") from None
        layers[id(layer)] = layer
        (nested.setdefault(id(layer), []).append((rest, i)) if rest
         else top.setdefault(id(layer), []).append(i))
    inner: dict[int, tuple[Any, int]] = {}
    for key, items in nested.items():
        sub_inputs, sub_found, sub_outputs = _capture(layers[key], [r for r, _ in items])
        inner[key] = (keras.Model(sub_inputs, [*sub_found, *sub_outputs]), len(sub_found))

    def swap(operation):
        key = id(operation)
        if key in inner:
            copy, count = inner[key]

            def call_nested(*args, **kwargs):
                result = copy(*args, **kwargs)
                for (_, i), tensor in zip(nested[key], result[:count], strict=True):
                    found[i] = tensor
                outputs = result[count:]
                return outputs[0] if len(outputs) == 1 else outputs
            return call_nested
        if key in top:
            def call(*args, **kwargs):
                output = operation(*args, **kwargs)
                for i in top[key]:
                    found[i] = output
                return output
            return call
        return operation

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in walked.inputs]
    # An input layer is not an operation the graph runs: its output is the new input.
    for index, tensor in enumerate(walked.inputs):
        for i in top.get(id(producer(tensor)), []):
            found[i] = inputs[index]
    given = inputs if isinstance(walked.input, list | tuple | dict) else inputs[0]
    outputs = keras.tree.flatten(run_through_graph(walked, given, swap))
    missing = [paths[i] for i, f in enumerate(found) if f is None]
    if missing:
        raise ExplainError(f"layer '{missing[0]}' is not on the path from the inputs to the "
                           "outputs")
    return given, found, outputs


def _run(runner, data: Any, compiled: bool) -> list[np.ndarray]:
    """The probe's outputs on a batch, as a list.

    Compiled (`predict_on_batch`, for the passes over many images): its first call per
    batch shape traces the graph (~2 s on the Xception with every spatial layer), after
    which a batch runs in about half an eager call's time, and only the part of the graph
    the outputs need. Eager for one image's maps: a click on a new layer costs one
    forward pass (~0.3 s on the Xception), not a trace."""
    if isinstance(runner.input, list | tuple) and not isinstance(data, list | tuple):
        data = [data]  # a model saved with inputs=[x] takes a list of one
    outputs = runner.predict_on_batch(data) if compiled else runner(data, training=False)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list | tuple) else [outputs])]


def _batched(x: Any) -> Any:
    """One input (an array, or a list for a two-input model) as a batch of one."""
    if isinstance(x, list | tuple):
        return [np.asarray(a, dtype=np.float32)[None] for a in x]
    return np.asarray(x, dtype=np.float32)[None]


def channels_first(output: np.ndarray) -> np.ndarray:
    """One image's layer output with its channel (last) axis first: (h, w, C) -> (C, h, w),
    (T, dim) tokens -> (dim, T), and a vector (C,) -> (C, 1, 1)."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 1:
        return output[:, None, None]
    return np.ascontiguousarray(np.moveaxis(output, -1, 0))


def feature_maps(model, x: Any, layer: str) -> np.ndarray:
    """The output of `layer` for ONE input `x` (unbatched; a list of inputs for a
    two-input model), exactly as the layer gives it, channel axis first: (C, h, w)
    float32 for a spatial layer (see `channels_first` for the others)."""
    path = find_layer(model, layer)
    return channels_first(_run(probe(model, [path]), _batched(x), compiled=False)[0][0])


def token_grid(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A ViT layer's tokens (dim, 1 + rows * cols), channel first as `feature_maps` gives
    them, laid out on the patch grid: (dim, rows, cols), the class token left out (token
    1 + r * cols + c is the patch at row r, column c)."""
    rows, cols = grid
    if maps.ndim != 2 or maps.shape[1] != 1 + rows * cols:
        raise ExplainError(f"{maps.shape[1:]} tokens do not fill a {rows}x{cols} patch grid "
                           "after a class token")
    return np.ascontiguousarray(maps[:, 1:].reshape(len(maps), rows, cols))


def order_channels(maps: np.ndarray, by: str = "mean") -> np.ndarray:
    """Channel indices of (C, ...) maps: by "mean" or "max" activation (highest first,
    ties by index), or by "index"."""
    count = maps.shape[0]
    if by == "index":
        return np.arange(count)
    flat = np.asarray(maps, dtype=np.float64).reshape(count, -1)
    if by == "mean":
        values = flat.mean(axis=1)
    elif by == "max":
        values = flat.max(axis=1)
    else:
        raise ValueError(f"order channels by 'mean', 'max' or 'index', not '{by}'")
    return np.argsort(-values, kind="stable")


@dataclass
class LayerStats:
    """A layer's activations over a set of images. `sparsity`: the fraction of its
    outputs that are exactly zero (after a ReLU: the units it switched off); a dead
    channel is zero at every position on every image."""

    layer: str
    shape: tuple[int, ...]  # one image's output, channel axis first (as feature_maps)
    mean: float
    sparsity: float
    dead_channels: int
    dead: tuple[int, ...]
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "shape": list(self.shape), "mean": self.mean,
                "sparsity": self.sparsity, "dead_channels": self.dead_channels}


def map_stats(layer: str, maps: np.ndarray) -> LayerStats:
    """The statistics of one image's maps (C, ...), as `layer_stats` gives them over many."""
    maps = np.asarray(maps)
    values = maps.astype(np.float64)
    dead = tuple(int(c) for c in np.flatnonzero(~np.any(values.reshape(len(values), -1) != 0,
                                                        axis=1)))
    return LayerStats(layer=layer, shape=tuple(int(s) for s in maps.shape),
                      mean=float(values.mean()), sparsity=float(np.mean(values == 0)),
                      dead_channels=len(dead), dead=dead, images=1)


def _count(batch: Any) -> int:
    return len(batch[0]) if isinstance(batch, list | tuple) else len(batch)


def _slice(batch: Any, start: int, stop: int) -> Any:
    """Images start..stop, the last chunk padded to full size with copies of its first
    image (one batch shape: the compiled probe is traced once)."""
    def cut(array):
        part = np.asarray(array[start:stop], dtype=np.float32)
        missing = stop - start - len(part)
        return np.concatenate([part, np.repeat(part[:1], missing, axis=0)]) if missing else part

    return [cut(a) for a in batch] if isinstance(batch, list | tuple) else cut(batch)


def _passes(model, batch: Any, paths: list[str], chunk: int, progress: Progress | None,
            what: str):
    """Each chunk of images through one probe: yields the list of outputs per path."""
    runner = probe(model, paths)
    total = _count(batch)
    chunk = max(1, min(chunk, total))
    for start in range(0, total, chunk):
        report(progress, start / max(total, 1), f"{what}: images {start + 1}-"
               f"{min(start + chunk, total)} of {total}")
        kept = min(chunk, total - start)  # the padding's outputs are dropped
        yield [o[:kept] for o in _run(runner, _slice(batch, start, start + chunk), True)]
    report(progress, 1.0, f"{what}: {total} images")


# Augmentation layers pass an image through unchanged at inference (core.nets.preprocessing
# names them so): statistics over them repeat the input's.
AUGMENTATION_PREFIX = "augment_"


def statistics_layers(model) -> list[str]:
    """The layers the statistics and the separation read: every spatial layer but the
    augmentation ones, and for a ViT each block's output tokens (its only spatial layers
    are the patch embedding and the augmentation)."""
    from core.nets.vit import depth_of

    found = [p for p in spatial_layers(model)
             if not p.rsplit("/", 1)[-1].startswith(AUGMENTATION_PREFIX)]
    return found + [f"block{i}_add2" for i in range(1, depth_of(model) + 1)]


def _layers(model, layers: list[str] | None) -> list[str]:
    if layers is None:
        found = spatial_layers(model)
        if not found:
            raise ExplainError("the model has no layer with a spatial (h, w, channels) output")
        return found
    return [find_layer(model, layer) for layer in layers]


def layer_stats(model, batch: Any, layers: list[str] | None = None,
                progress: Progress | None = None, chunk: int = 4) -> list[LayerStats]:
    """Mean, sparsity and dead channels of each layer (default: every spatial layer,
    nested ones included) over `batch` (N images, as the model takes them), with one
    probe run on `chunk` images at a time."""
    paths = _layers(model, layers)
    total = _count(batch)
    if total == 0:
        raise ExplainError("no images to compute activation statistics over")
    sums = np.zeros(len(paths))
    zeros = np.zeros(len(paths))
    counts = np.zeros(len(paths))
    alive: list[np.ndarray | None] = [None] * len(paths)
    shapes: list[tuple[int, ...]] = [()] * len(paths)
    for outputs in _passes(model, batch, paths, chunk, progress, "activation statistics"):
        for i, output in enumerate(outputs):
            values = output.astype(np.float64)
            sums[i] += values.sum()
            zeros[i] += np.count_nonzero(values == 0)
            counts[i] += values.size
            # A channel lives if it is non-zero anywhere, on any image.
            lives = np.any(values.reshape(-1, values.shape[-1]) != 0, axis=0) \
                if values.ndim > 1 else values != 0
            alive[i] = lives if alive[i] is None else alive[i] | lives
            shapes[i] = channels_first(output[0]).shape
    found = []
    for i, path in enumerate(paths):
        dead = tuple(int(c) for c in np.flatnonzero(~alive[i]))  # type: ignore[operator]
        found.append(LayerStats(layer=path, shape=tuple(int(s) for s in shapes[i]),
                                mean=float(sums[i] / counts[i]),
                                sparsity=float(zeros[i] / counts[i]),
                                dead_channels=len(dead), dead=dead, images=total))
    return found


def pooled_features(model, batch: Any, layers: list[str] | None = None,
                    progress: Progress | None = None, chunk: int = 4) -> dict[str, np.ndarray]:
    """Each layer's output averaged over its positions: path -> (N, C)."""
    paths = _layers(model, layers)
    parts: list[list[np.ndarray]] = [[] for _ in paths]
    for outputs in _passes(model, batch, paths, chunk, progress, "pooled features"):
        for i, output in enumerate(outputs):
            axes = tuple(range(1, output.ndim - 1))
            parts[i].append(output.mean(axis=axes) if axes else output)
    return {path: np.concatenate(part).astype(np.float64) for path, part in zip(paths, parts,
                                                                                strict=True)}


def nearest_centroid_loo(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Leave-one-out nearest-centroid predictions (N,) over (N, C) features: each row
    standardised per column over all rows (no labels used), then given the label of the
    closest centroid of the other rows. A class with one image has no centroid when
    that image is left out: it cannot be predicted for it."""
    features = np.asarray(features, dtype=np.float64)
    spread = features.std(axis=0)
    z = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    labels = np.asarray(labels)
    classes = list(dict.fromkeys(labels.tolist()))
    totals = {c: z[labels == c].sum(axis=0) for c in classes}
    sizes = {c: int(np.sum(labels == c)) for c in classes}
    predicted = []
    for i in range(len(z)):
        best, best_distance = None, np.inf
        for c in classes:
            size = sizes[c] - (labels[i] == c)
            if size == 0:
                continue
            centroid = (totals[c] - (z[i] if labels[i] == c else 0)) / size
            distance = float(np.sum((z[i] - centroid) ** 2))
            if distance < best_distance:
                best, best_distance = c, distance
        predicted.append(best)
    return np.asarray(predicted, dtype=object)


INPUT_ROW = "input (mean of each channel)"


def separation(model, batch: Any, labels: np.ndarray, layers: list[str] | None = None,
               progress: Progress | None = None, with_input: bool = False
               ) -> list[dict[str, Any]]:
    """Per layer (default: every spatial layer), how well its pooled features tell each
    class from the others: leave-one-out nearest-centroid accuracy per class (the
    fraction of that class's images given their own class) and overall. One row per
    layer: {"layer", "channels", "accuracy", "classes": {label: accuracy}}. With
    `with_input`, a first row for the input image itself, each channel's mean: what the
    plainest statistic of the image already tells apart."""
    labels = np.asarray(labels)
    if len(labels) != _count(batch):
        raise ExplainError(f"{len(labels)} labels for {_count(batch)} images")
    if len(set(labels.tolist())) < 2:
        raise ExplainError("separation needs images of at least two classes")
    pooled = pooled_features(model, batch, layers, progress)
    if with_input:
        # The image itself, each channel averaged: a class told apart here is told apart
        # by its brightness, before any layer (a confound of the set, not a feature).
        images = np.asarray(batch[0] if isinstance(batch, list | tuple) else batch)
        pooled = {INPUT_ROW: images.mean(axis=(1, 2)).astype(np.float64), **pooled}
    classes = list(dict.fromkeys(labels.tolist()))
    rows = []
    for path, features in pooled.items():
        right = nearest_centroid_loo(features, labels) == labels
        rows.append({"layer": path, "channels": int(features.shape[1]),
                     "accuracy": float(right.mean()),
                     "classes": {str(c): float(right[labels == c].mean()) for c in classes}})
    return rows


def first_separating(rows: list[dict[str, Any]], label: str, at_least: float = 1.0,
                     ) -> str | None:
    """The first layer (in the rows' order) from which on `label` is told from the other
    classes at `at_least` accuracy in every later layer too; None if none."""
    found = None
    for row in reversed(rows):
        if row["classes"].get(label, 0.0) >= at_least:
            found = row["layer"]
        else:
            break
    return found
