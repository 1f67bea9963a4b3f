"""What a model is made of: its layers (Keras) or nodes (ONNX) as a table, and a summary.

A Keras table has one row per layer, nested models included: the `xception` backbone
that the built-in Xception models use as a single layer is one row (depth 0, with
children) followed by its own layers (depth 1, path "xception/block14_sepconv2_act").
The parameter counts of the depth-0 rows add up to `model.count_params()`, because a
nested model's row already holds its layers' weights.

An ONNX table has one row per graph node, with the output shape ONNX shape inference
finds (where it finds one) and the initializers the node reads; each initializer is
counted once, on the first node that reads it, so the rows add up to the file's
initializers (what `Classifier.parameters` counts).

Nothing here imports TensorFlow: a Keras table is read from a model already loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.models.cards import ModelCard, ModelError
from core.models.classifier import Classifier
from core.models.inputs import SCALES
from core.models.metadata import Field
from core.models.runtime.keras_private import calls_in, producer

Shape = tuple[int | str | None, ...]


@dataclass(frozen=True)
class Layer:
    """One row of the table: a Keras layer or an ONNX node."""

    name: str
    path: str  # the names of the models it sits in, then its own: "xception/block1_conv1"
    type: str  # the Keras class, or the ONNX op type
    output_shape: str  # "(None, 5, 5, 2048)"; words where there is no single shape
    parameters: int
    trainable: int | None  # None for ONNX nodes: an ONNX file does not record it
    depth: int  # 0 at the top level, 1 inside a nested model, ...
    children: bool  # a nested model, whose layers follow it in the table


@dataclass(frozen=True)
class Tensor:
    """A model input or output."""

    name: str
    shape: Shape  # None or a symbolic name where the size is not fixed (the batch)

    @property
    def text(self) -> str:
        return shape_text(self.shape)


@dataclass(frozen=True)
class Architecture:
    """A model's layer or node table with its totals."""

    model_id: str
    runtime: str  # "keras" (a Keras model or the Keras port of an ONNX file) or "onnx"
    layers: tuple[Layer, ...]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    parameters: int
    trainable: int | None  # None for ONNX
    file_bytes: int
    opset: int | None = None  # ONNX only
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def top_level(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.depth == 0)

    @property
    def nested(self) -> tuple[Layer, ...]:
        """The top-level rows that are models of their own (the backbones)."""
        return tuple(layer for layer in self.top_level if layer.children)

    def inside(self, parent: Layer) -> tuple[Layer, ...]:
        """Every row inside the nested model `parent`, at any depth, in table order."""
        prefix = parent.path + "/"
        return tuple(layer for layer in self.layers if layer.path.startswith(prefix))

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "runtime": self.runtime,
            "parameters": self.parameters,
            "trainable": self.trainable,
            "layers": len(self.top_level),
            "layers_nested": len(self.layers) - len(self.top_level),
            "kind": "nodes" if self.runtime == "onnx" else "layers",
            "inputs": [{"name": t.name, "shape": list(t.shape)} for t in self.inputs],
            "outputs": [{"name": t.name, "shape": list(t.shape)} for t in self.outputs],
            "file_bytes": self.file_bytes,
            **({"opset": self.opset} if self.opset is not None else {}),
            **({"notes": list(self.notes)} if self.notes else {}),
        }

    def summary_text(self) -> str:
        """One sentence: parameters, layers, inputs, outputs, file size."""
        s = self.summary()
        count = (f"{s['layers']} nodes" if s["kind"] == "nodes" else
                 f"{s['layers']} layers" + (f" ({s['layers_nested']} more inside nested "
                                            "models)" if s["layers_nested"] else ""))
        trainable = "" if self.trainable is None else f" ({self.trainable:,} trainable)"
        words = [f"{self.parameters:,} parameters{trainable}", count,
                 "input " + ", ".join(f"{t.name} {t.text}" for t in self.inputs),
                 "output " + ", ".join(f"{t.name} {t.text}" for t in self.outputs),
                 f"file {self.file_bytes / 1e6:.1f} MB"]
        if self.opset is not None:
            words.append(f"opset {self.opset}")
        return "; ".join(words)

    def records(self, rows: tuple[Layer, ...] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (a dataframe's records, or JSON)."""
        return [asdict(layer) for layer in (self.layers if rows is None else rows)]

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        return {"summary": self.summary(), **({"layers": self.records()} if layers else {})}


def shape_text(shape: Shape | None) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def architecture(classifier: Classifier) -> Architecture:
    """The table of a loaded model: its Keras model's layers when it has one (a Keras
    file, or the Keras port of an ONNX file), else its ONNX file's nodes."""
    if classifier.keras_model is not None:
        return keras_architecture(classifier.keras_model, classifier.card.id,
                                  classifier.file_bytes)
    return onnx_architecture(Path(classifier.path), classifier.card.id,
                             classifier.card.source["sha256"])


# -- Keras --------------------------------------------------------------------------------

def _size(weights) -> int:
    return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in weights))


def _tensor_shape(tensor) -> str:
    return shape_text(tuple(tensor.shape))


def _flat(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def keras_output_shape(layer, model=None) -> str:
    """`layer.output.shape`, or words where a layer has no single output shape: called
    several times (a shared layer), several outputs, or never called. Only the calls
    inside `model`'s own graph count: calling a model again elsewhere (as explanation
    wrappers do) adds calls to its layers that are not part of this architecture."""
    calls = calls_in(layer, model)
    if len(calls) > 1:
        # Keras' `layer.output` is the first call's only: name every call's shapes.
        shapes = [", ".join(_tensor_shape(t) for t in _flat(node.output_tensors))
                  for node in calls]
        if len(set(shapes)) == 1:
            return f"{shapes[0]} (called {len(calls)} times)"
        return f"called {len(calls)} times: " + "; ".join(shapes)
    try:
        outputs = _flat(layer.output)
    except (AttributeError, ValueError):
        return "not defined (never called)"
    if len(outputs) == 1 and hasattr(outputs[0], "shape"):
        return _tensor_shape(outputs[0])
    shapes = [_tensor_shape(t) if hasattr(t, "shape") else type(t).__name__ for t in outputs]
    return f"{len(outputs)} outputs: " + ", ".join(shapes)


def _is_model(layer) -> bool:
    """A layer that is a model of its own (Functional, Sequential) with layers inside."""
    import keras

    return isinstance(layer, keras.Model) and bool(getattr(layer, "layers", None))


def keras_layers(model, prefix: str = "", depth: int = 0) -> list[Layer]:
    """Every layer of a Keras model, depth first: a nested model's row, then its layers."""
    rows: list[Layer] = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        nested = _is_model(layer)
        rows.append(Layer(
            name=layer.name, path=path, type=type(layer).__name__,
            output_shape=keras_output_shape(layer, model),
            parameters=_size(layer.weights), trainable=_size(layer.trainable_weights),
            depth=depth, children=nested,
        ))
        if nested:
            rows += keras_layers(layer, prefix=f"{path}/", depth=depth + 1)
    return rows


def _keras_tensor_name(tensor, fallback: str) -> str:
    """The name of the layer that makes `tensor` ("dense_1"): a Keras 3 output tensor's
    own name is a counter ("keras_tensor_283") that means nothing to a reader."""
    return getattr(producer(tensor), "name", None) or getattr(tensor, "name", None) or fallback


def keras_architecture(model, model_id: str, file_bytes: int) -> Architecture:
    """The layer table of a loaded Keras model."""
    if not hasattr(model, "layers"):
        raise ModelError(f"{model_id}: not a Keras model with layers")
    inputs = tuple(Tensor(_keras_tensor_name(t, f"input {i}"), tuple(t.shape))
                   for i, t in enumerate(_flat(model.inputs)))
    outputs = tuple(Tensor(_keras_tensor_name(t, f"output {i}"), tuple(t.shape))
                    for i, t in enumerate(_flat(model.outputs)))
    return Architecture(
        model_id=model_id, runtime="keras", layers=tuple(keras_layers(model)),
        inputs=inputs, outputs=outputs, parameters=int(model.count_params()),
        trainable=_size(model.trainable_weights), file_bytes=int(file_bytes),
    )


# -- ONNX ---------------------------------------------------------------------------------

def _onnx_shape(value_info) -> Shape | None:
    """A tensor's shape as shape inference left it: None where it found none."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in tensor_type.shape.dim)


@lru_cache(maxsize=8)
def _onnx_cached(path: str, sha256: str, model_id: str, file_bytes: int) -> Architecture:
    # Keyed by the file's sha256 too: loading and inferring the VGG16 take ~1.3 s.
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{model_id}: cannot read {Path(path).name} as ONNX ({exc})") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a help, not a need: the table stands without shapes
        inferred = model
    graph = inferred.graph
    initializers = {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in graph.initializer}
    known = {v.name: v for v in (*graph.input, *graph.value_info, *graph.output)}
    counted: set[str] = set()
    rows = []
    for index, node in enumerate(graph.node):
        own = [i for i in dict.fromkeys(node.input) if i in initializers and i not in counted]
        counted.update(own)
        shapes = [shape_text(_onnx_shape(known[o])) if o in known else "unknown"
                  for o in node.output if o]
        name = node.name or f"{node.op_type}_{index}"
        rows.append(Layer(
            name=name, path=name, type=node.op_type,
            output_shape=shapes[0] if len(shapes) == 1 else
            f"{len(shapes)} outputs: " + ", ".join(shapes),
            parameters=sum(initializers[i] for i in own), trainable=None, depth=0,
            # If/Loop/Scan carry subgraphs: said, not expanded.
            children=any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute),
        ))
    notes = []
    unread = sorted(set(initializers) - counted)
    if unread:
        notes.append(f"{len(unread)} initializers read by no node "
                     f"({sum(initializers[i] for i in unread):,} values)")
    unknown = sum(r.output_shape == "unknown" for r in rows)
    if unknown:
        notes.append(f"shape inference found no shape for {unknown} of {len(rows)} nodes")
    # Older files list their initializers among the inputs: those are weights, not inputs.
    inputs = tuple(Tensor(v.name, _onnx_shape(v) or ()) for v in graph.input
                   if v.name not in initializers)
    outputs = tuple(Tensor(v.name, _onnx_shape(v) or ()) for v in graph.output)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return Architecture(
        model_id=model_id, runtime="onnx", layers=tuple(rows), inputs=inputs,
        outputs=outputs, parameters=sum(initializers.values()), trainable=None,
        file_bytes=file_bytes, opset=opset, notes=tuple(notes),
    )


def onnx_architecture(path: Path, model_id: str, sha256: str = "") -> Architecture:
    """The node table of an ONNX file."""
    path = Path(path)
    return _onnx_cached(str(path), sha256, model_id, path.stat().st_size)


# -- the card in words ------------------------------------------------------------------

def _field_words(f: Field) -> str:
    if f.kind == "one-hot":
        return f"{f.name} ({', '.join(f.values)})"
    missing = ", or unknown" if f.missing_flag else ""
    return f"{f.name} ({f.low:g}-{f.high:g} {f.unit}{missing})".replace(" )", ")")


def card_facts(card: ModelCard) -> dict[str, str]:
    """A model card as (heading, words) in reading order: the zoo page and
    `medlens models show` print the same facts."""
    spec = card.input_spec
    labels = ", ".join(f"{label} ({card.label_names[label]})" if label in card.label_names
                       else label for label in card.labels)
    source = card.source
    where = " ".join(p for p in (source.get("package", ""), source.get("version", "")) if p)
    facts = {
        "Task": f"{card.task}: {card.purpose}",
        "Labels": f"{labels}; the model gives {card.outputs}",
        "Input": (f"{spec.height}x{spec.width}, {spec.channels} channel"
                  f"{'s' if spec.channels != 1 else ''} "
                  f"({card.preprocessing.get('channels', 'rgb')}), resize {spec.resize}, "
                  f"scale {spec.scale}: {SCALES[spec.scale][0]}"),
        "Preprocessing": card.preprocessing.get("note", ""),
    }
    if card.metadata is not None:
        facts["Metadata"] = (f"a second input of {card.metadata.width} values: "
                             + "; ".join(_field_words(f) for f in card.metadata.fields))
    if "package" in source:
        origin = "; ".join(p for p in (
            where, source.get("file", ""), f"sha256 {source.get('sha256', '')}",
            f"author {source.get('author') or 'not stated'}",
            f"reported: {source.get('reported') or 'none'}") if p)
    else:  # trained in MedLens: the data, the split and the seed say what it learnt
        origin = "; ".join(p for p in (
            card.origin, source.get("file", ""), f"sha256 {source.get('sha256', '')}",
            f"data: {source.get('data', 'not stated')}",
            f"split: {split_words(source.get('split'))}",
            f"seed {source.get('seed', 'not stated')}",
            f"re-train: {source['command']}" if source.get("command") else "") if p)
    facts |= {
        "Architecture": card.architecture,
        "Source": origin,
        "Runtimes": ", ".join(f"{r} (default)" if r == card.runtime else r
                              for r in card.runtimes),
        **({"Plane": f"{card.plane} slices"} if card.plane else {}),
        **({"Held-out": held_out(card)} if card.evaluation else {}),
        "Licence": card.license,
        "Intended use": card.intended_use,
    }
    return facts


def held_out(card: ModelCard) -> str:
    """A segmentation card's held-out figures in one line: Dice, IoU and HD95 per label."""
    evaluation = card.evaluation
    scores = evaluation.get("held_out", {})
    parts = []
    for label in scores.get("dice", {}):
        hd = scores.get("hd95_mm", {}).get(label)
        parts.append(f"{label}: Dice {scores['dice'][label]:.3f}, "
                     f"IoU {scores.get('iou', {}).get(label, float('nan')):.3f}"
                     + (f", HD95 {hd:.2f} mm" if isinstance(hd, int | float) else ""))
    held = card.held_out_slices
    where = (f" ({evaluation.get('plane', '')} slices {held[0] + 1}-{held[1] + 1}, "
             "never seen in training)" if held else "")
    return "; ".join(parts) + where


def split_words(split: object) -> str:
    """A card's split in words: the slabs of slices (1-based, inclusive) of each role."""
    if not isinstance(split, dict):
        return str(split) if split else "not stated"
    parts = []
    for role in ("train", "validation", "test"):
        slabs = split.get(role) or []
        if slabs:
            parts.append(f"{role} " + ", ".join(f"{a + 1}-{b}" for a, b in slabs))
    guard = split.get("guard_slices")
    return (f"{split.get('plane', '')} slices: " + "; ".join(parts)
            + (f" ({guard}+ slices discarded between roles)" if guard else ""))
