"""Jobs: the seam for long work.

A `Job` is a serialisable spec (`JobSpec`: kind, params, input digests) with its inputs;
an `Executor` runs it on a bounded pool of workers, reports progress, cancels, and keeps
the result under the spec's key. The pages and the CLI build jobs with the builders in
`core.jobs.kinds` and submit them to the process's executor (`executor()`); nothing
else in MedLens runs long work itself.

    from core.jobs import executor, explain_job
    handle = executor().submit(explain_job(classifier, model_input, "rise"))
    handle.progress, handle.text, handle.state   # while it runs
    handle.cancel()                              # stops it at its next report
    handle.outcome()                             # the Explanation (waits)
"""

from __future__ import annotations

import os
import threading

from core.jobs.executor import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    WORKERS_SETTING,
    Executor,
    Handle,
    JobError,
)
from core.jobs.kinds import (
    RUNNERS,
    TRAIN_RUNNERS,
    compare_job,
    data_randomisation_job,
    evaluate_job,
    explain_job,
    explain_region_job,
    faithfulness_job,
    inside_stats_job,
    maximise_job,
    predict_job,
    sanity_job,
    score_job,
    segment_job,
    train_job,
    trust_job,
)
from core.jobs.spec import Job, JobSpec, digest

__all__ = [
    "CANCELLED", "DONE", "FAILED", "QUEUED", "RUNNERS", "RUNNING", "TRAIN_RUNNERS",
    "TRAIN_SLOTS_SETTING", "WORKERS_SETTING", "Executor", "Handle", "Job", "JobError",
    "JobSpec", "compare_job", "data_randomisation_job", "digest", "evaluate_job",
    "executor", "explain_job", "explain_region_job", "faithfulness_job", "inside_stats_job",
    "maximise_job", "predict_job", "sanity_job", "score_job", "segment_job", "train_job",
    "trainer", "trust_job",
]

_executor: Executor | None = None
_trainer: Executor | None = None
# How many trainings run at once on this server (a class shares its cores): the rest
# wait in the trainer's queue, each student shown their place.
TRAIN_SLOTS_SETTING = "MEDLENS_TRAIN_SLOTS"
_creating = threading.Lock()


def executor() -> Executor:
    """The process's executor (made on first use): every session of a server shares it,
    so the same work asked in two tabs is done once."""
    global _executor
    with _creating:
        if _executor is None:
            _executor = Executor(RUNNERS)
        return _executor


def trainer() -> Executor:
    """The process's trainer: training runs on their own executor with
    MEDLENS_TRAIN_SLOTS slots (default 1), so a class's trainings queue among themselves
    and never take the workers that explanations need."""
    global _trainer
    with _creating:
        if _trainer is None:
            slots = int(os.environ.get(TRAIN_SLOTS_SETTING, "1") or 1)
            _trainer = Executor(TRAIN_RUNNERS, workers=slots, keep=64)
        return _trainer
