"""Jobs: specs named by their content, one run per key, progress, cancel, queue order
and keep, on a real executor with plain runners (the explain kind on the real model is in
tests/slow/test_jobs_on_models.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    Executor,
    Job,
    JobError,
    JobSpec,
    digest,
)
from core.progress import report


def _slow(job: Job, progress) -> int:
    """Counts to `steps`, reporting each step; its result is the count."""
    steps = job.spec.params["steps"]
    for i in range(steps):
        time.sleep(job.spec.params.get("pause", 0.01))
        report(progress, (i + 1) / steps, f"step {i + 1} of {steps}")
    return steps


def _fails(job: Job, progress) -> None:
    raise ValueError("the input\nis wrong")


def _executor(workers: int = 1, **runners) -> Executor:
    return Executor({"slow": _slow, "fails": _fails, **runners}, workers=workers)


def test_a_spec_is_named_by_its_content_and_round_trips_as_json():
    a = Job.make("slow", {"steps": 3, "method": "rise"}, image=np.zeros((4, 4), np.float32))
    same = Job.make("slow", {"method": "rise", "steps": 3}, image=np.zeros((4, 4), np.float32))
    other_input = Job.make("slow", {"steps": 3, "method": "rise"},
                           image=np.ones((4, 4), np.float32))
    other_param = Job.make("slow", {"steps": 4, "method": "rise"},
                           image=np.zeros((4, 4), np.float32))
    assert a.key == same.key
    assert len({a.key, other_input.key, other_param.key}) == 3
    assert JobSpec.from_json(a.spec.to_json()) == a.spec
    assert a.spec.inputs["image"] == digest(np.zeros((4, 4), np.float32))
    # A dtype or shape is content too.
    assert digest(np.zeros((4, 4), np.float64)) != digest(np.zeros((4, 4), np.float32))
    assert digest(np.zeros((2, 8), np.float32)) != digest(np.zeros((4, 4), np.float32))


def test_params_that_are_not_json_are_refused_where_given():
    with pytest.raises(TypeError, match="not JSON"):
        Job.make("slow", {"steps": object()})


def test_the_same_spec_runs_once_and_later_asks_get_the_result():
    calls = []

    def counted(job, progress):
        calls.append(job.key)
        return _slow(job, progress)

    pool = _executor(counted=counted)
    job = Job.make("counted", {"steps": 5})
    first = pool.submit(job)
    again = pool.submit(Job.make("counted", {"steps": 5}))  # a rerun: same key
    assert again is first
    assert first.outcome(10) == 5
    assert pool.submit(job) is first and first.state == DONE
    assert calls == [job.key]
    assert first.progress == 1.0 and first.seconds is not None


def test_progress_is_reported_and_listened_to():
    pool = _executor()
    seen: list[tuple[str, float]] = []
    result = pool.run(Job.make("slow", {"steps": 4}),
                      listener=lambda h: seen.append((h.state, h.progress)))
    assert result == 4
    fractions = [p for state, p in seen if state == "running"]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert seen[-1][0] == DONE


def test_cancel_stops_a_running_job_at_its_next_report_and_is_not_kept():
    pool = _executor()
    job = Job.make("slow", {"steps": 500, "pause": 0.01})
    handle = pool.submit(job)
    while handle.progress < 0.01:
        time.sleep(0.01)
    started = time.perf_counter()
    assert pool.cancel(job.key)
    assert handle.wait(5)
    assert time.perf_counter() - started < 1.0
    assert handle.state == CANCELLED and handle.progress < 1.0
    with pytest.raises(JobError, match="cancelled"):
        handle.outcome(0)
    # Asking again starts afresh rather than serving the cancelled one.
    fresh = pool.submit(job)
    assert fresh is not handle
    fresh.cancel()
    fresh.wait(5)


def test_queued_jobs_wait_in_order_and_a_cancelled_one_never_runs():
    pool = _executor(workers=1)
    first = pool.submit(Job.make("slow", {"steps": 30, "pause": 0.01}))
    second = pool.submit(Job.make("slow", {"steps": 2}))
    third = pool.submit(Job.make("slow", {"steps": 3}))
    assert pool.position(second) == 1 and pool.position(third) == 2
    second.cancel()
    # Out of the queue at once: the one behind moves up while the first still runs.
    assert second.state == CANCELLED and second.wait(0)
    assert pool.position(third) == 1 and not first.over
    assert third.outcome(10) == 3
    assert second.state == CANCELLED and second.started is None
    assert first.outcome(10) == 30


def test_a_failure_is_one_line_and_kept():
    pool = _executor()
    handle = pool.submit(Job.make("fails", {}))
    handle.wait(5)
    assert handle.state == FAILED
    assert handle.error == "the input is wrong"
    assert isinstance(handle.exception, ValueError)
    with pytest.raises(JobError, match="^the input is wrong$"):
        handle.outcome()
    with pytest.raises(ValueError, match="unknown job kind 'nope'"):
        pool.submit(Job.make("nope", {}))


def test_two_workers_run_two_jobs_at_once():
    gate = threading.Barrier(2, timeout=5)

    def meet(job, progress):
        gate.wait()  # both must be running at once, or this times out
        return job.spec.params["n"]

    pool = _executor(workers=2, meet=meet)
    a, b = pool.submit(Job.make("meet", {"n": 1})), pool.submit(Job.make("meet", {"n": 2}))
    assert (a.outcome(10), b.outcome(10)) == (1, 2)


def test_old_results_are_dropped_beyond_keep():
    pool = Executor({"slow": _slow}, workers=1, keep=2)
    handles = [pool.submit(Job.make("slow", {"steps": 1, "n": n})) for n in range(4)]
    for h in handles:
        h.wait(5)
    pool.submit(Job.make("slow", {"steps": 1, "n": 9})).wait(5)
    assert pool.get(handles[0].key) is None
    assert pool.get(handles[-1].key) is handles[-1]


def test_warm_loads_each_model_once_in_the_background():
    loaded = []
    pool = _executor()
    thread = pool.warm(loaded.append, ["a", "b"])
    thread.join(5)
    assert loaded == ["a", "b"]
    assert pool.warm(loaded.append, ["c"]) is thread
