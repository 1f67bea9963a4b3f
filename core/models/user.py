"""The user's own model: a .keras or .onnx file, its labels and how to feed it.

The file is checked before anything runs on it: Keras files load in safe mode (a Lambda
layer or other serialised Python code is refused unless the server sets
MEDLENS_ALLOW_UNSAFE_MODELS=1), the model must take one image input (N, h, w, c), and its
outputs must match the labels: (N, classes) for a classifier, (N, h, w, labels) for a
segmentation model (one sigmoid channel: two labels, background first). The card it gets
is marked as uploaded: its id starts with "user:", so it can never replace a built-in
model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from core.models.cards import INTENDED_USE, USER_PREFIX, ModelCard, ModelError
from core.models.classifier import Classifier
from core.models.inputs import RESIZES, SCALES
from core.models.registry import sha256
from core.models.runtime.keras import UNSAFE_SETTING, load_keras
from core.models.runtime.keras import head as keras_head
from core.models.runtime.keras_private import KerasGraphError
from core.models.runtime.onnx import OnnxRunner, runner
from core.models.segmenter import Segmenter

SUFFIXES = (".keras", ".onnx")
PREPROCESS_KEYS = {
    "scale": tuple(SCALES),
    "resize": RESIZES,
    "channels": ("rgb", "grey"),
    "outputs": ("auto", "logits", "probabilities"),
}
PREPROCESS_DEFAULTS = {"scale": "unit", "resize": "bilinear", "channels": "rgb",
                       "outputs": "auto"}


def unsafe_allowed() -> bool:
    """Whether this server loads Keras files with serialised code (its administrator's
    choice, in the environment; never the uploader's)."""
    return os.environ.get(UNSAFE_SETTING, "").strip().lower() in ("1", "true", "yes")


def parse_preprocess(text: str | dict[str, Any] | None) -> dict[str, str]:
    """'scale=xception,resize=nearest,size=224x224' (the CLI's --preprocess) checked, with
    defaults for what is not given."""
    given = dict(text) if isinstance(text, dict) else {}
    if isinstance(text, str):
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ModelError(f"preprocess: '{part}' is not KEY=VALUE")
            given[key.strip()] = value.strip()
    out = dict(PREPROCESS_DEFAULTS)
    for key, value in given.items():
        if key == "size":
            try:
                h, w = (int(v) for v in str(value).lower().split("x"))
            except ValueError:
                raise ModelError(f"preprocess size: '{value}' is not HxW (e.g. 224x224)"
                                 ) from None
            out["size"] = f"{h}x{w}"
        elif key not in PREPROCESS_KEYS:
            known = ", ".join([*PREPROCESS_KEYS, "size"])
            raise ModelError(f"preprocess: unknown key '{key}' (known: {known})")
        elif value not in PREPROCESS_KEYS[key]:
            raise ModelError(f"preprocess {key}: '{value}' is not one of "
                             f"{', '.join(PREPROCESS_KEYS[key])}")
        else:
            out[key] = value
    return out


def parse_labels(text: str | list[str]) -> tuple[str, ...]:
    labels = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    labels = [s for s in labels if s]
    if len(labels) < 2:
        raise ModelError("labels: give at least two, comma-separated")
    if len(set(labels)) != len(labels):
        raise ModelError("labels: a label is given twice")
    return tuple(labels)


def load_user_model(source: Path | bytes, labels: str | list[str],
                    preprocess: str | dict[str, Any] | None = None, name: str | None = None,
                    license: str = "", allow_unsafe: bool | None = None) -> Classifier:
    """A Classifier for the user's model file (a path, or the bytes of an upload named
    `name`), checked against its labels before anything runs on it."""
    filename = name or (source.name if isinstance(source, Path) else "model")
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ModelError(f"{filename}: a model must be a .keras or .onnx file"
                         + (" (re-save an .h5 file as .keras)" if suffix == ".h5" else ""))
    labels = parse_labels(labels)
    chosen = parse_preprocess(preprocess)
    allow = unsafe_allowed() if allow_unsafe is None else allow_unsafe
    if isinstance(source, Path):
        if not source.is_file():
            raise ModelError(f"{source}: no such file")
        return _load(source, filename, labels, chosen, license, allow)
    # The upload's file lives as long as its classifier (the Zoo reads an ONNX graph from
    # it), and goes with it: nothing is left behind when the session ends.
    folder = tempfile.mkdtemp(prefix="medlens-model-")
    path = Path(folder) / f"upload{suffix}"
    try:
        path.write_bytes(source)
        classifier = _load(path, filename, labels, chosen, license, allow)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(classifier, shutil.rmtree, folder, ignore_errors=True)
    return classifier


def _load(path: Path, filename: str, labels: tuple[str, ...], chosen: dict[str, str],
          license: str, allow_unsafe: bool) -> Classifier:
    digest = sha256(path)
    runtime = "onnx" if path.suffix.lower() == ".onnx" else "keras"
    if runtime == "keras":
        model, session = _keras(path, filename, allow_unsafe), None
        shape, outputs, head, architecture = _keras_facts(model, filename)
    else:
        model, session = None, _onnx(path, filename)
        shape, outputs, architecture = _onnx_facts(session, path, filename)
        head = None
    height, width, channels = shape
    if "size" in chosen:
        h, w = (int(v) for v in chosen["size"].split("x"))
        if (height or h, width or w) != (h, w):
            raise ModelError(f"{filename}: size {h}x{w} given, but the model takes "
                             f"{height}x{width}")
        height, width = h, w
    if not height or not width:
        raise ModelError(f"{filename}: the model's input size is not fixed: give it "
                         "(preprocess size=HxW)")
    if channels not in (1, 3):
        raise ModelError(f"{filename}: the image input has {channels} channels "
                         "(1 or 3 expected, channels last)")
    task, outputs = outputs
    # A single sigmoid channel is two labels (background, the segment), as a single
    # sigmoid unit is two classes.
    if outputs != len(labels) and not (task == "segmentation" and outputs == 1
                                        and len(labels) == 2):
        what = "label channels" if task == "segmentation" else "outputs"
        raise ModelError(f"{filename}: the model has {outputs} {what} but "
                         f"{len(labels)} labels were given ({', '.join(labels)})")
    kind = chosen["outputs"]
    note = "As given by the user who uploaded the model."
    if kind == "auto":
        kind = _detect_outputs(head, session if runtime == "onnx" else None,
                               (height, width, channels))
        note += f" Outputs read as {kind} ({_DETECTED[kind]})."
    c = ModelCard(
        id=f"{USER_PREFIX}{Path(filename).stem}-{digest[:8]}",
        name=Path(filename).name,
        task=task,
        purpose=f"The user's own {task} model (uploaded)",
        labels=labels,
        input_shape=(height, width, channels),
        architecture=architecture,
        runtime=runtime,
        outputs=kind,
        preprocessing={
            "channels": "grey" if channels == 1 else "rgb",
            "resize": chosen["resize"],
            "scale": chosen["scale"],
            "note": note,
        },
        source={"package": "uploaded by the user", "version": "", "file": Path(filename).name,
                "sha256": digest, "author": "not stated"},
        license=f"as stated by the uploader: {license}" if license else "not stated",
        intended_use=INTENDED_USE,
    )
    kind = Segmenter if task == "segmentation" else Classifier
    return kind(c, path, loaded=model if runtime == "keras" else session)


_DETECTED = {"logits": "detected: the outputs are not probabilities",
             "probabilities": "detected: softmax or sigmoid outputs"}


def _keras(path: Path, filename: str, allow_unsafe: bool):
    return load_keras(path, filename, allow_unsafe)


def _keras_facts(model, filename: str) -> tuple[tuple[int | None, ...], int, str, str]:
    if len(model.inputs) != 1:
        raise ModelError(f"{filename}: the model takes {len(model.inputs)} inputs; an "
                         "uploaded model must take one image (N, h, w, c)")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ModelError(f"{filename}: the input has shape {shape}; an image input "
                         "(h, w, channels) is expected")
    if len(model.outputs) != 1:
        raise ModelError(f"{filename}: the model has {len(model.outputs)} outputs; one "
                         "(N, classes) is expected")
    try:
        head = keras_head(model)
    except KerasGraphError as exc:
        raise ModelError(f"{filename}: {exc}") from None
    outputs = _output_kind(tuple(model.outputs[0].shape[1:]), filename)
    architecture = (f"{type(model).__name__} '{model.name}': {len(model.layers)} layers, "
                    f"{model.count_params():,} parameters (uploaded .keras file)")
    return shape, outputs, head, architecture


def _output_kind(shape: tuple, filename: str) -> tuple[str, int]:
    """("classification", classes) for (N, classes) outputs, ("segmentation", labels) for
    a mask (N, h, w, labels); anything else is refused."""
    if len(shape) == 1:
        return "classification", int(shape[0])
    if len(shape) == 3:
        return "segmentation", int(shape[-1])
    raise ModelError(f"{filename}: the output has shape {shape}; (N, classes) for a "
                     "classifier or (N, h, w, labels) for a segmentation model is expected")


def _onnx(path: Path, filename: str):
    try:
        return OnnxRunner.open(path).session
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{filename}: not a loadable ONNX model ({first[:200]})") from None


def _onnx_facts(session, path: Path, filename: str) -> tuple[tuple[int | None, ...], int, str]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"{filename}: the model takes {len(inputs)} inputs; an uploaded "
                         "model must take one image (N, h, w, c)")
    dims = [d if isinstance(d, int) else None for d in inputs[0].shape]
    if len(dims) != 4:
        raise ModelError(f"{filename}: the input has shape {inputs[0].shape}; "
                         "(N, h, w, c) is expected")
    if dims[1] in (1, 3) and dims[3] not in (1, 3):
        raise ModelError(f"{filename}: the input {inputs[0].shape} looks channels-first; "
                         "MedLens feeds (N, h, w, c)")
    if not isinstance(outputs[0].shape[-1], int):
        raise ModelError(f"{filename}: the number of outputs is not fixed "
                         f"({outputs[0].shape})")
    out = _output_kind(tuple(outputs[0].shape[1:]), filename)
    architecture = (f"ONNX graph ({path.stat().st_size / 1e6:.1f} MB, input "
                    f"'{inputs[0].name}' {inputs[0].shape}, output '{outputs[0].name}' "
                    f"{outputs[0].shape}; uploaded .onnx file)")
    return tuple(dims[1:]), out, architecture


def _detect_outputs(head: str | None, session, shape: tuple[int, int, int]) -> str:
    """'probabilities' where the model squashes its scores (Keras: a final softmax or
    sigmoid; ONNX: outputs in [0, 1] summing to 1 on a mid-grey and a noise image)."""
    if head is not None:
        return "probabilities" if head in ("softmax", "sigmoid") else "logits"
    probe = np.stack([np.full(shape, 0.5, np.float32),
                      np.random.default_rng(0).random(shape, dtype=np.float32)])
    try:
        out = runner(session).run(probe).astype(np.float64)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"the model fails on a {shape} input ({first[:200]})") from None
    squashed = (out.min() >= 0 and out.max() <= 1
                and np.allclose(out.sum(axis=-1), 1, atol=1e-3))
    return "probabilities" if squashed else "logits"


CARD_NAMES = ("card.json",)  # beside a model file; also "<stem>.card.json"


def card_beside(path: Path) -> Path | None:
    """The card file that goes with a model file: `<stem>.card.json`, else `card.json`
    in the same folder (as `medlens train --out DIR` and the Train page's download write
    them); None where there is none."""
    for candidate in (path.with_name(f"{path.stem}.card.json"), path.parent / "card.json"):
        if candidate.is_file():
            return candidate
    return None


def load_carded(source: Path | bytes, card: Path | bytes | dict[str, Any],
                name: str | None = None, allow_unsafe: bool | None = None) -> Classifier:
    """A model trained in MedLens with its card (the .keras file and the card.json its
    download or `medlens train` wrote). The card is read as data and checked: it must be
    a MedLens card of this very file (its sha256), and its id is kept among the user's
    ("user:..."), so a card can never pose as a built-in model."""
    import json

    filename = name or (source.name if isinstance(source, Path) else "model.keras")
    try:
        raw = card if isinstance(card, dict) else json.loads(
            card.read_bytes() if isinstance(card, Path) else card)
        c = ModelCard.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, KeyError) \
            else f"no '{exc.args[0]}'"
        raise ModelError(f"{filename}: its card is not a MedLens model card ({what})"[:300]
                         ) from None
    if Path(filename).suffix.lower() != ".keras" or c.runtime != "keras":
        raise ModelError(f"{filename}: a card goes with a .keras model trained in MedLens")
    if len(c.input_shape) != 3:
        raise ModelError(f"{filename}: a volume model (input {c.input_shape}) runs on the "
                         "Train page only")
    if not c.id.startswith(USER_PREFIX):
        from dataclasses import replace

        c = replace(c, id=f"{USER_PREFIX}{c.id}")
    allow = unsafe_allowed() if allow_unsafe is None else allow_unsafe
    folder = None
    if isinstance(source, bytes):
        folder = tempfile.mkdtemp(prefix="medlens-model-")
        path = Path(folder) / "upload.keras"
        path.write_bytes(source)
    else:
        path = source
        if not path.is_file():
            raise ModelError(f"{path}: no such file")
    try:
        digest = sha256(path)
        if digest != c.source.get("sha256"):
            raise ModelError(f"{filename}: the card is for another file (sha256 "
                             f"{str(c.source.get('sha256'))[:12]}..., this file "
                             f"{digest[:12]}...)")
        model = _keras(path, filename, allow_unsafe=allow)
        shape = tuple(model.inputs[0].shape[1:])
        if shape != tuple(c.input_shape):
            raise ModelError(f"{filename}: the model takes {shape}, its card says "
                             f"{tuple(c.input_shape)}")
        kind = Segmenter if c.task == "segmentation" else Classifier
        classifier = kind(c, path, loaded=model)
    except BaseException:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if folder:
        weakref.finalize(classifier, shutil.rmtree, folder, ignore_errors=True)
    return classifier
