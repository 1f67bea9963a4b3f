"""The executor: runs jobs on a bounded pool of worker threads, reports their progress,
cancels them, and keeps their results under the key of their spec.

- `submit(job)` never blocks: it returns a `Handle` at once. The same spec submitted
  again (a page rerun, a second tab) gets the same handle, whether the job is queued,
  running or done: work is never restarted or done twice.
- A handle says where the job is (`state`, `progress`, `text`, its place in the queue)
  and holds its result or its error (one line).
- `cancel()` takes a queued job out of the queue, and stops a running one at its next
  progress report (the methods, the sanity check and the evaluations report often). A
  cancelled job's result is not kept: asking again starts it afresh.
- Finished results are kept, the least recently used dropped beyond `keep`.
- The executor owns the loaded built-in models (`core.models.load` keeps one per
  process); `warm()` loads them in the background when a server starts, so the first
  explanation does not wait for them.

The interface is the seam for a distributed engine: anything with `submit`, `get` and
`cancel` over the same `Job`s and `Handle`s can stand behind the pages.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.jobs.spec import Job, JobSpec
from core.progress import Cancelled, Progress

WORKERS_SETTING = "MEDLENS_JOB_WORKERS"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"

Runner = Callable[[Job, Progress], Any]
Listener = Callable[["Handle"], None]


@dataclass(eq=False)
class Handle:
    """One submitted job: where it is, and its result or error."""

    job: Job
    state: str = QUEUED
    progress: float = 0.0
    text: str = "queued"
    result: Any = field(default=None, repr=False)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    _dequeue: Callable[[Handle], None] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return self.job.key

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    @property
    def finished_ok(self) -> bool:
        return self.state == DONE

    @property
    def over(self) -> bool:
        """Done, failed or cancelled: nothing more will happen to it."""
        return self.state in (DONE, FAILED, CANCELLED)

    @property
    def seconds(self) -> float | None:
        """How long it ran (so far, while it runs)."""
        if self.started is None:
            return None
        return (self.finished or time.perf_counter()) - self.started

    def cancel(self) -> None:
        """Stop it: a queued job leaves the queue at once (its place is freed for the
        others); a running one stops at its next progress report."""
        self._cancel.set()
        if self._dequeue is not None and self.state == QUEUED:
            self._dequeue(self)

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it is over (True) or `timeout` seconds pass (False)."""
        return self._done.wait(timeout)

    def outcome(self, timeout: float | None = None) -> Any:
        """Its result, waiting for it; its error raised as a `JobError` (one line)."""
        if not self.wait(timeout):
            raise TimeoutError(f"{self.spec.title}: not finished after {timeout} s")
        if self.state == DONE:
            return self.result
        raise JobError(self.error or self.state)

    def listen(self, listener: Listener) -> None:
        """Call `listener(handle)` on every progress report and when the job is over."""
        self._listeners.append(listener)
        if self.over:
            listener(self)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)


class JobError(RuntimeError):
    """A job that failed or was cancelled; the message is its one line."""


class Executor:
    """Jobs on `workers` threads (default: MEDLENS_JOB_WORKERS, else 2), results kept by
    key. `runners` maps a job kind to the function that does it."""

    def __init__(self, runners: dict[str, Runner], workers: int | None = None,
                 keep: int = 256) -> None:
        if workers is None:
            workers = int(os.environ.get(WORKERS_SETTING, "2") or 2)
        self.workers = max(1, workers)
        self.keep = keep
        self._runners = dict(runners)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="medlens-job")
        self._lock = threading.Lock()
        self._handles: OrderedDict[str, Handle] = OrderedDict()
        self._queue: deque[Handle] = deque()
        self._warming: threading.Thread | None = None

    # -- the interface the pages use ----------------------------------------------------

    def submit(self, job: Job) -> Handle:
        """The job's handle: the existing one for the same key (queued, running or done),
        else a new one, queued. Never blocks."""
        if job.spec.kind not in self._runners:
            raise ValueError(f"unknown job kind '{job.spec.kind}' "
                             f"(kinds: {', '.join(sorted(self._runners))})")
        with self._lock:
            handle = self._handles.get(job.key)
            if handle is not None and handle.state != CANCELLED:
                self._handles.move_to_end(job.key)
                return handle
            handle = Handle(job, _dequeue=self._dequeue)
            self._handles[job.key] = handle
            self._queue.append(handle)
            self._forget_old()
        self._pool.submit(self._run, handle)
        return handle

    def get(self, key: str) -> Handle | None:
        """The handle for a spec's key, if it was submitted and is still known."""
        with self._lock:
            return self._handles.get(key)

    def cancel(self, key: str) -> bool:
        """Cancel the job with this key (False if none is queued or running)."""
        handle = self.get(key)
        if handle is None or handle.over:
            return False
        handle.cancel()
        return True

    def position(self, handle: Handle) -> int:
        """0 while it runs (or is over); n for the n-th job waiting for a worker."""
        with self._lock:
            for i, queued in enumerate(self._queue, start=1):
                if queued is handle:
                    return i
        return 0

    def run(self, job: Job, listener: Listener | None = None,
            timeout: float | None = None) -> Any:
        """Submit, wait and return the result (the CLI's way): `listener` sees every
        progress report; a failure is a JobError."""
        handle = self.submit(job)
        if listener is not None:
            handle.listen(listener)
        return handle.outcome(timeout)

    def running(self) -> list[Handle]:
        with self._lock:
            return [h for h in self._handles.values() if h.state == RUNNING]

    def queued(self) -> list[Handle]:
        with self._lock:
            return list(self._queue)

    # -- models ---------------------------------------------------------------------------

    def warm(self, load: Callable[[str], Any], model_ids: Iterable[str]) -> threading.Thread:
        """Load models in the background (once per executor), so the first job on them
        does not wait. Failures are left for the job that needs the model to report."""
        with self._lock:
            if self._warming is not None:
                return self._warming
            ids = list(model_ids)

            def work() -> None:
                for model_id in ids:
                    try:
                        load(model_id)
                    except Exception:  # noqa: BLE001  (the job that needs it says why)
                        continue

            self._warming = threading.Thread(target=work, name="medlens-warm", daemon=True)
        self._warming.start()
        return self._warming

    def shutdown(self) -> None:
        for handle in self.queued():
            handle.cancel()
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- inside -----------------------------------------------------------------------------

    def _dequeue(self, handle: Handle) -> None:
        """A queued job cancelled: out of the queue and over now, not when a worker frees."""
        with self._lock:
            if handle not in self._queue:
                return  # a worker has taken it: it stops at its next report
            self._queue.remove(handle)
            handle.state = CANCELLED  # under the lock: a worker taking it now sees it over
        self._end(handle, CANCELLED, error=f"{handle.spec.title}: cancelled")

    def _run(self, handle: Handle) -> None:
        with self._lock:
            if handle.over:
                return  # cancelled while it waited
            if handle in self._queue:
                self._queue.remove(handle)
        if handle.cancelling:
            self._end(handle, CANCELLED, error=f"{handle.spec.title}: cancelled")
            return
        handle.state, handle.started, handle.text = RUNNING, time.perf_counter(), "starting"
        handle._notify()

        def progress(done: float, text: str) -> None:
            if handle.cancelling:
                raise Cancelled(text)
            handle.progress, handle.text = min(max(float(done), 0.0), 1.0), text
            handle._notify()

        try:
            result = self._runners[handle.spec.kind](handle.job, progress)
        except Cancelled:
            self._end(handle, CANCELLED, error=f"{handle.spec.title}: cancelled")
        except Exception as exc:  # noqa: BLE001  (one line for the page; tests see the type)
            handle.exception = exc
            text = " ".join(str(exc).split()) or type(exc).__name__
            self._end(handle, FAILED, error=text[:400])
        else:
            handle.result = result
            self._end(handle, DONE)

    def _end(self, handle: Handle, state: str, error: str | None = None) -> None:
        handle.state, handle.error, handle.finished = state, error, time.perf_counter()
        if state == DONE:
            handle.progress, handle.text = 1.0, "done"
        elif state == CANCELLED:
            handle.text = "cancelled"
            with self._lock:  # not kept: asking again starts afresh
                if self._handles.get(handle.key) is handle:
                    del self._handles[handle.key]
        handle._done.set()
        handle._notify()

    def _forget_old(self) -> None:
        """Drop the least recently used finished results beyond `keep` (under the lock)."""
        over = [k for k, h in self._handles.items() if h.over]
        for key in over[: max(0, len(over) - self.keep)]:
            del self._handles[key]
