"""Progress of long work: one callable type, `Progress(done, text)`, with `done` in
[0, 1]. Explanations, evaluations, comparisons and jobs all report through it; a job's
progress callback raises `Cancelled` when the user has cancelled, which ends the work at
its next report.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """The work was cancelled by whoever asked for it (raised from a progress report)."""


def report(progress: Progress | None, done: float, text: str) -> None:
    """Tell `progress` (if any) how far the work is, clipped to [0, 1]."""
    if progress is not None:
        progress(min(max(float(done), 0.0), 1.0), text)


def part(progress: Progress | None, start: float, end: float,
         prefix: str = "") -> Progress | None:
    """A progress for one part of the work that fills [start, end] of the whole, its
    texts led by `prefix` (which model, which step)."""
    if progress is None:
        return None

    def inner(done: float, text: str) -> None:
        report(progress, start + (end - start) * done, prefix + text)

    return inner
