"""ONNX models through onnxruntime: one session per file, one locked run path that the
classifier and the forward-only explainers share."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


class OnnxRunner:
    """An onnxruntime session on the GPU where there is one, else the CPU, run from any
    thread: `run(batch)` gives the first output for the first input."""

    def __init__(self, session) -> None:
        self.session = session
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = tuple(first.shape)
        self.output_shape = tuple(session.get_outputs()[0].shape)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> OnnxRunner:
        import onnxruntime as ort

        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in ort.get_available_providers()]
        return runner(ort.InferenceSession(str(path), providers=providers))

    @property
    def device(self) -> str:
        return "GPU" if "CUDAExecutionProvider" in self.session.get_providers() else "CPU"

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]


_KEPT = "_medlens_runner"


def runner(session_or_runner) -> OnnxRunner:
    """The one OnnxRunner (so the one lock) of an onnxruntime session."""
    if isinstance(session_or_runner, OnnxRunner):
        return session_or_runner
    found = getattr(session_or_runner, _KEPT, None)
    if found is None:
        found = OnnxRunner(session_or_runner)
        setattr(session_or_runner, _KEPT, found)
    return found


def onnx_session(path: Path):
    """An onnxruntime session for `path` (GPU where there is one)."""
    return OnnxRunner.open(path).session
