"""A run's live record: what the Train page draws while the job runs (the curves per epoch
and per batch, the ETA, the GAN's sample grids) and the stop button's flag.

The executor's handle carries a job's progress fraction and one line of text; a training
run has more to show, so each run's `Live` is kept here under its job's key while the job
exists, and the page reads it by that key. Stopping is not cancelling: a stopped run ends
at the end of its current batch and keeps its best checkpoint; a cancelled one (the
queue's cancel) is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

KEEP = 64  # live records kept (a run's curves are small; its model lives in the result)


class Live:
    """The curves of one run so far; safe to read from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.epochs: list[dict[str, float]] = []  # {"epoch": 1, "seconds": .., metric: ..}
        self.batches: list[tuple[float, float]] = []  # (epoch as a fraction, loss)
        self.grids: list[tuple[int, np.ndarray]] = []  # (epoch, GAN samples (H, W) in [0, 1])
        self.best_epoch: int | None = None
        self.eta_s: float | None = None
        self.phase = "waiting for a free training slot"
        self.started: float | None = None
        self.total_epochs = 0

    # -- written by the run ---------------------------------------------------------------

    def begin(self, total_epochs: int) -> None:
        with self._lock:
            self.started, self.total_epochs = time.perf_counter(), total_epochs
            self.phase = "training"

    def batch(self, epoch: float, loss: float, eta_s: float | None) -> None:
        with self._lock:
            self.batches.append((round(epoch, 4), float(loss)))
            self.eta_s = eta_s

    def epoch(self, row: dict[str, float], best: bool) -> None:
        with self._lock:
            self.epochs.append(dict(row))
            if best:
                self.best_epoch = int(row["epoch"])

    def grid(self, epoch: int, picture: np.ndarray) -> None:
        with self._lock:
            self.grids.append((epoch, picture))

    def end(self, phase: str) -> None:
        with self._lock:
            self.phase, self.eta_s = phase, 0.0

    # -- the stop button ----------------------------------------------------------------------

    def stop(self) -> None:
        """End the run after its current batch, keeping the best checkpoint so far."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- read by the page -------------------------------------------------------------------

    def history(self) -> dict[str, list[float]]:
        """Each metric per epoch so far ({"loss": [...], "val_loss": [...], ...})."""
        with self._lock:
            rows = list(self.epochs)
        keys = [k for k in (rows[0] if rows else {}) if k not in ("epoch", "seconds")]
        return {k: [r.get(k, float("nan")) for r in rows] for k in keys}

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy for one drawing of the page."""
        with self._lock:
            return {"epochs": [dict(r) for r in self.epochs], "batches": list(self.batches),
                    "grids": list(self.grids), "best_epoch": self.best_epoch,
                    "eta_s": self.eta_s, "phase": self.phase,
                    "total_epochs": self.total_epochs,
                    "elapsed_s": (time.perf_counter() - self.started
                                  if self.started is not None else 0.0)}


_records: OrderedDict[str, Live] = OrderedDict()
_lock = threading.Lock()


def live(key: str) -> Live:
    """The live record of the run whose job has this key (made on first ask)."""
    with _lock:
        record = _records.get(key)
        if record is None:
            record = _records[key] = Live()
            while len(_records) > KEEP:
                _records.popitem(last=False)
        else:
            _records.move_to_end(key)
        return record
