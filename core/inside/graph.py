"""A Keras model as a graph of layers: each tensor's shape, each layer's parameters, and
the receptive field of each spatial layer, with nested backbones foldable.

Receptive fields follow Araujo, Norris and Sim 2019, "Computing Receptive Fields of
Convolutional Neural Networks", Distill (https://distill.pub/2019/computing-receptive-fields/).
Per axis, for a layer of kernel k, stride s and dilation d over an input whose units
see r_in pixels and sit j_in pixels apart (Eq. 1-2, with k_eff = d (k - 1) + 1):

    r_out = r_in + (k_eff - 1) j_in        j_out = j_in s
    c_out = c_in + ((k_eff - 1) / 2 - p) j_in     (c: centre of the first unit's field,
                                                   p: padding before the first row)

Pooling is a kernel without weights; ZeroPadding2D and Cropping2D move c only;
UpSampling2D and Conv2DTranspose divide the jump by their factor (a transposed kernel of
size k reaches ceil(k / s) input units). Where paths merge (a residual Add, a
Concatenate) the field is the largest over the inputs (Araujo et al. Sec. "Handling
multi-path networks"); a globally pooled side branch (squeeze-and-excitation) is left out
of that maximum, or every later layer would see the whole image. Layers that change the
tensor's rank (Flatten, global pooling, Dense) see the whole image: their `receptive` is
None, as it is for a layer whose spatial arithmetic is unknown here (a custom layer that
changes the map's size). Layers that keep the map's size (BatchNormalization,
activations, 1x1 mixing) pass the field on.

Nothing here imports TensorFlow; the graph is read from a model already loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.models.architecture import keras_output_shape, shape_text
from core.models.runtime.keras_private import fed_by, producer
from core.models.runtime.keras_private import graph as keras_graph


@dataclass(frozen=True)
class Receptive:
    """The patch of the model's input one output unit sees, per axis (rows, columns).

    `size`: its height and width in input pixels (it may exceed the input: the part
    beyond the border is padding); `jump`: pixels between neighbouring units; `start`:
    the centre of the top-left unit's patch, in input pixels (0 = the first pixel's
    centre). Unit (i, j) sees the patch centred on start + (i, j) * jump."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def covers(self, height: int, width: int) -> bool:
        """Whether one unit sees the whole height x width input."""
        return self.size[0] >= height and self.size[1] >= width

    def box(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom and right exclusive, of unit (row, col)'s
        patch, cut to the height x width input."""
        edges = []
        for index, size, jump, start, limit in zip((row, col), self.size, self.jump,
                                                  self.start, (height, width), strict=True):
            centre = start + index * jump
            low = math.ceil(centre - (size - 1) / 2 - 1e-9)
            edges.append((max(0, low), min(limit, low + int(round(size)))))
        (top, bottom), (left, right) = edges
        return top, left, bottom, right

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [_number(v) for v in getattr(self, k)] for k in ("size", "jump", "start")}

    def text(self, height: int, width: int) -> str:
        """"31x31", or "1083x1083 (the whole 150x150 input)" where one unit sees it all."""
        words = f"{_number(self.size[0])}x{_number(self.size[1])}"
        return words + (f" (the whole {height}x{width} input)"
                        if self.covers(height, width) else "")


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)


INPUT_FIELD = Receptive((1.0, 1.0), (1.0, 1.0), (0.0, 0.0))


def millimetres(receptive: Receptive, mm_per_px: tuple[float, float]) -> tuple[float, float]:
    """A receptive field's (height, width) in mm of the study, given the mm per pixel of
    the model input (`input_pixel_mm`)."""
    return (receptive.size[0] * mm_per_px[0], receptive.size[1] * mm_per_px[1])


def input_pixel_mm(study: Any, model_input: Any) -> tuple[float, float] | None:
    """(row, column) mm per pixel of the model input: the study view's spacing times its
    size over the input's size (the image is resized whole to the input); None when the
    study has no spacing (a JPEG, a DICOM without PixelSpacing)."""
    view = study.view(model_input.frame, model_input.plane)
    if view.spacing is None:
        return None
    rows, cols = view.values.shape[:2]
    height, width = model_input.array.shape[:2]
    return (float(view.spacing[0]) * rows / height, float(view.spacing[1]) * cols / width)


@dataclass(frozen=True)
class Node:
    """One layer. `path` is "name" at the top, "xception/block1_conv1" inside a nested
    model; `inputs` are the paths of the layers feeding it inside the same model (a
    nested model's own input layer feeds its first layers)."""

    path: str
    name: str
    type: str
    output_shape: tuple[int | None, ...] | None  # without the batch axis
    shape_text: str
    parameters: int
    trainable: int
    depth: int
    nested: bool  # a model of its own, whose layers follow it
    parent: str | None  # the path of the nested model it sits in
    inputs: tuple[str, ...]
    receptive: Receptive | None

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["output_shape"] = None if self.output_shape is None else list(self.output_shape)
        found["inputs"] = list(self.inputs)
        found["receptive"] = None if self.receptive is None else self.receptive.to_dict()
        return found


@dataclass(frozen=True)
class Graph:
    """Layers in topological order and the edges between them.

    `layer_graph` gives every layer: each nested model's node (holding all its weights)
    followed by its own layers, with edges inside each model and edges from and to the
    nested model's node outside it. Draw `folded()` (nested models as one node) or
    `folded({"xception"})` (its layers in place of its node, the edges rewired to its
    input layer and from its output layer)."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    # nested model path -> (its input layers' paths, the paths of the layers making its
    # outputs): where its edges go when it is unfolded.
    ports: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)

    def node(self, path: str) -> Node:
        for n in self.nodes:
            if n.path == path:
                return n
        raise KeyError(path)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(n.path for n in self.nodes)

    def folded(self, unfold: set[str] | frozenset[str] = frozenset()) -> Graph:
        """The graph with every nested model not in `unfold` as one node."""
        unfold = set(unfold)
        by_path = {n.path: n for n in self.nodes}

        def shown(n: Node) -> bool:
            parent = n.parent
            while parent is not None:
                if parent not in unfold:
                    return False
                parent = by_path[parent].parent
            return not (n.nested and n.path in unfold)

        def sources(path: str) -> list[str]:  # what stands for `path` as an edge's start
            if path in unfold and path in self.ports:
                return [p for exit_ in self.ports[path][1] for p in sources(exit_)]
            return [path]

        def targets(path: str) -> list[str]:
            if path in unfold and path in self.ports:
                return [p for entry in self.ports[path][0] for p in targets(entry)]
            return [path]

        nodes = tuple(n for n in self.nodes if shown(n))
        kept = {n.path for n in nodes}
        edges = dict.fromkeys((a, b) for src, dst in self.edges
                              for a in sources(src) for b in targets(dst)
                              if a in kept and b in kept and a != b)
        return Graph(nodes, tuple(edges), {k: v for k, v in self.ports.items() if k in kept})

    def layout(self) -> dict[str, tuple[float, float]]:
        """(x, y) of each node: y its place in topological order, x its branch column.

        Columns are lanes, as in a drawing of a version history: a layer continues in
        the lane of the input that reserved it (each layer reserves its lane for its
        first consumer), a branch's other consumers open the lowest free lane, and a
        merge keeps the lowest of its inputs' lanes and frees the others; so the two
        sides of a residual block stand side by side."""
        order = {n.path: i for i, n in enumerate(self.nodes)}
        consumers: dict[str, list[str]] = {p: [] for p in order}
        feeders: dict[str, list[str]] = {p: [] for p in order}
        for a, b in self.edges:
            if a in order and b in order:
                consumers[a].append(b)
                feeders[b].append(a)
        lanes: list[str | None] = []  # lane -> the node it is reserved for, or None (free)
        place: dict[str, tuple[float, float]] = {}
        for n in self.nodes:
            mine = [i for i, owner in enumerate(lanes) if owner == n.path]
            if mine:
                lane = mine[0]
                for other in mine[1:]:
                    lanes[other] = None
            else:
                free = [i for i, owner in enumerate(lanes) if owner is None]
                lane = free[0] if free else len(lanes)
                if not free:
                    lanes.append(None)
            later = sorted(consumers[n.path], key=order.__getitem__)
            lanes[lane] = later[0] if later else None
            place[n.path] = (float(lane), float(order[n.path]))
        return place

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [n.to_dict() for n in self.nodes],
                "edges": [list(e) for e in self.edges]}


# -- reading a Keras model ----------------------------------------------------------------

def _size(weights) -> int:
    return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in weights))


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model) and bool(getattr(layer, "layers", None))


def _shape(layer) -> tuple[int | None, ...] | None:
    """The layer's single output shape without the batch axis, or None."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(output, list | tuple) and len(output) == 1:  # a nested model's output
        output = output[0]
    if isinstance(output, list | tuple) or not hasattr(output, "shape"):
        return None
    dims = tuple(output.shape)[1:]
    return tuple(None if d is None else int(d) for d in dims)


def layer_graph(model) -> Graph:
    """The graph of a loaded Keras model (functional or Sequential), nested models walked
    through, with the receptive field of every spatial layer (see the module's note)."""
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    ports: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    _walk(model, "", None, 0, None, nodes, edges, ports)
    return Graph(tuple(nodes), tuple(dict.fromkeys(edges)), ports)


def _walk(model, prefix: str, parent: str | None, depth: int,
          given: list[Receptive | None] | None, nodes: list[Node],
          edges: list[tuple[str, str]], ports: dict) -> Receptive | None:
    """Add `model`'s layers; `given`: the fields of what feeds its inputs (None at the
    top: the model's own input). Returns the field of its (first) output."""
    walked = keras_graph(model)
    fields: dict[int, Receptive | None] = {}
    shapes: dict[int, tuple | None] = {}
    paths: dict[int, str] = {}
    inputs = [producer(t) for t in walked.inputs]
    for layer in walked.layers:
        path = f"{prefix}{layer.name}"
        paths[id(layer)] = path
        feeding = [op for op in fed_by(layer, walked) if id(op) in paths]
        shape = _shape(layer)
        nested = _is_model(layer)
        position = len(nodes)  # a nested model's node goes before its layers
        if layer in inputs:
            outer = given[inputs.index(layer)] if given is not None else INPUT_FIELD
            field_ = outer if shape is not None and len(shape) == 3 else None
        elif nested:
            field_ = _walk(layer, f"{path}/", path, depth + 1,
                           [fields.get(id(op)) for op in feeding], nodes, edges, ports)
            inner = keras_graph(layer)
            ports[path] = (tuple(f"{path}/{producer(t).name}" for t in inner.inputs),
                           tuple(f"{path}/{producer(t).name}" for t in inner.outputs))
        else:
            field_ = _receptive(layer, shape, [fields.get(id(op)) for op in feeding],
                                [shapes.get(id(op)) for op in feeding])
        fields[id(layer)], shapes[id(layer)] = field_, shape
        nodes.insert(position, Node(
            path=path, name=layer.name, type=type(layer).__name__, output_shape=shape,
            shape_text=shape_text(shape) if shape is not None else
            keras_output_shape(layer, walked),
            parameters=_size(layer.weights), trainable=_size(layer.trainable_weights),
            depth=depth, nested=nested, parent=parent,
            inputs=tuple(paths[id(op)] for op in feeding), receptive=field_,
        ))
        edges.extend((paths[id(op)], path) for op in feeding)
    outputs = [producer(t) for t in walked.outputs]
    return fields.get(id(outputs[0])) if outputs else None


def _pair(value, default: int = 1) -> tuple[int, int]:
    if value is None:
        return (default, default)
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    return (int(value[0]), int(value[-1])) if value else (default, default)


def _padding_before(padding: str, size: int | None, kernel: int, stride: int) -> int:
    """Pixels of padding before the first row (column) for 'same', as TensorFlow pads:
    the total needed for ceil(n / s) outputs, the smaller half first."""
    if padding != "same":
        return 0
    if size is None:
        total = max(kernel - stride, 0)
    else:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2


def _receptive(layer, shape, fields: list[Receptive | None],
               in_shapes: list[tuple | None]) -> Receptive | None:
    if shape is None or len(shape) != 3:
        return None  # Flatten, global pooling, Dense...: the whole image (or not an image)
    spatial = [(f, s) for f, s in zip(fields, in_shapes, strict=True)
               if f is not None and s is not None and len(s) == 3]
    if not spatial:
        return None
    kind = type(layer).__name__
    if len(spatial) > 1:  # a merge: the largest field over its spatial inputs
        best = max(spatial, key=lambda fs: fs[0].size[0] * fs[0].size[1])[0]
        size = tuple(max(f.size[a] for f, _ in spatial) for a in (0, 1))
        jump = tuple(max(f.jump[a] for f, _ in spatial) for a in (0, 1))
        return Receptive(size, jump, best.start)  # type: ignore[arg-type]
    source, in_shape = spatial[0]
    if kind == "Conv2DTranspose":
        return _transposed(layer, source)
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):  # Conv, Separable...
        return _window(source, in_shape, _pair(layer.kernel_size), _pair(layer.strides),
                       _pair(getattr(layer, "dilation_rate", 1)), layer.padding)
    if hasattr(layer, "pool_size"):  # MaxPooling2D, AveragePooling2D
        pool = _pair(layer.pool_size)
        strides = _pair(layer.strides) if layer.strides is not None else pool
        return _window(source, in_shape, pool, strides, (1, 1), layer.padding)
    if kind == "ZeroPadding2D":
        (top, _), (left, _) = layer.padding
        return Receptive(source.size, source.jump, (source.start[0] - top * source.jump[0],
                                                    source.start[1] - left * source.jump[1]))
    if kind == "Cropping2D":
        (top, _), (left, _) = layer.cropping
        return Receptive(source.size, source.jump, (source.start[0] + top * source.jump[0],
                                                    source.start[1] + left * source.jump[1]))
    if kind == "UpSampling2D":
        factor = _pair(layer.size)
        jump = tuple(j / f for j, f in zip(source.jump, factor, strict=True))
        start = tuple(c - (f - 1) / 2 * j
                      for c, f, j in zip(source.start, factor, jump, strict=True))
        return Receptive(source.size, jump, start)  # type: ignore[arg-type]
    if tuple(shape[:2]) == tuple(in_shape[:2]):
        return source  # the map's size kept: BatchNormalization, activations, Dropout...
    return None  # the size changes in a way not known here


def _window(source: Receptive, in_shape: tuple, kernel: tuple[int, int],
            strides: tuple[int, int], dilation: tuple[int, int], padding: str) -> Receptive:
    size, jump, start = [], [], []
    for axis in (0, 1):
        k_eff = dilation[axis] * (kernel[axis] - 1) + 1
        before = _padding_before(padding, in_shape[axis], k_eff, strides[axis])
        size.append(source.size[axis] + (k_eff - 1) * source.jump[axis])
        jump.append(source.jump[axis] * strides[axis])
        start.append(source.start[axis] + ((k_eff - 1) / 2 - before) * source.jump[axis])
    return Receptive(tuple(size), tuple(jump), tuple(start))  # type: ignore[arg-type]


def _transposed(layer, source: Receptive) -> Receptive:
    kernel, strides = _pair(layer.kernel_size), _pair(layer.strides)
    size, jump, start = [], [], []
    for axis in (0, 1):
        k, s = kernel[axis], strides[axis]
        reach = math.ceil(k / s)  # input units that reach one output unit
        before = max(k - s, 0) // 2 if layer.padding == "same" else k - 1
        size.append(source.size[axis] + (reach - 1) * source.jump[axis])
        jump.append(source.jump[axis] / s)
        start.append(source.start[axis] + (before - (k - 1) / 2) / s * source.jump[axis])
    return Receptive(tuple(size), tuple(jump), tuple(start))  # type: ignore[arg-type]
