"""ONNX models through onnxruntime: one session per file, one locked run path that the
classifier and the forward-only explainers share."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import ModuleType

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
        ort = onnxruntime()
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in ort.get_available_providers()]
        return runner(ort.InferenceSession(str(path), providers=providers))

    @property
    def device(self) -> str:
        return "GPU" if "CUDAExecutionProvider" in self.session.get_providers() else "CPU"

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]


def onnxruntime() -> ModuleType:
    """The onnxruntime module, imported with its telemetry off.

    onnxruntime (1.32 on Linux) starts Microsoft's 1DS telemetry as the library loads: it
    writes a device id and a queue of events (the interpreter's path, OS, CPU, container)
    to ~/.cache/Microsoft/DeveloperTools/.onnxruntime (or $XDG_CACHE_HOME's) and uploads
    them to mobile.events.data.microsoft.com. ORT_DISABLE_TELEMETRY is read at that load,
    so it must be set before the first import: every import goes through here."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    # The Python API's switch too, where the build has it (events only: too late for files).
    getattr(ort, "disable_telemetry_events", lambda: None)()
    return ort


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
