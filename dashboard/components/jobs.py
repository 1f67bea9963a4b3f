"""Long work on a page: submit a job, show its progress (with Cancel) while it runs, and
its outcome once it is over. The page itself never waits for a job.

A page calls `submit(job)` on every run: the executor gives back the same handle for the
same spec (queued, running or done), so a rerun for a widget that does not change the
spec (a colormap, an opacity, another method added beside) neither restarts nor
recomputes anything. A job is drawn with `show(handle, title)`: its result when done;
else a progress bar that a fragment redraws every `POLL_S` seconds, which reruns the
page once the job is over; else why it ended.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.jobs import CANCELLED, DONE, Handle, Job, executor
from dashboard import state
from dashboard.components.text import literal, show_error

# How often a running job's progress is redrawn (and its end noticed): often enough that a
# finished Grad-CAM appears at once, rarely enough to cost the server nothing.
POLL_S = 0.5


def submit(job: Job) -> Handle:
    """This session's handle for `job`: the one it cancelled, if it did (a rerun must not
    start it again), else the executor's (the same one for the same spec)."""
    held = state.cancelled(job.key)
    return held if held is not None else executor().submit(job)


def show(handle: Handle, title: str, expected: tuple[type[BaseException], ...] = (),
         key: str = "", on: Any = None) -> Any | None:
    """The job's result once it is done; until then its progress, and after a failure or
    a cancel why it ended (None). A failure of one of the `expected` kinds (the method
    cannot explain this model...) is a note, any other an error; both are one line.
    `title` may name a file: it is drawn literally, as the job's own lines are."""
    if handle.state == DONE:
        return handle.result
    if not handle.over:
        _watch(handle, title, key, on or executor())
    elif handle.state == CANCELLED:
        _cancelled(handle, title, key)
    elif isinstance(handle.exception, expected):
        st.info(literal(f"{title}: {handle.error}"), icon=":material/info:")
    else:
        show_error(f"{title}: {handle.error}")
    return None


@st.fragment(run_every=POLL_S)
def _watch(handle: Handle, title: str, key: str, on: Any) -> None:
    # Redrawn alone every POLL_S; the whole page reruns once, when the job is over.
    if handle.over:
        st.rerun()
    bar = st.empty()  # above the Cancel button, drawn once its click is known
    if handle.cancelling or st.button("Cancel", key=f"cancel_{key}{handle.key}",
                                      icon=":material/stop_circle:",
                                      help="Stop this work; nothing of it is kept."):
        # Cancelled here or in another tab: it stops at its next progress report.
        handle.cancel()
        state.remember_cancelled(handle)
        bar.progress(handle.progress, text=literal(f"{title}: cancelling…"))
        return
    place = on.position(handle)
    if place:
        text = f"{title}: queued, number {place} in line for a worker"
    else:
        # The work's own line often names it already ("RISE: 96 of 500 masks").
        said = handle.text if handle.text.startswith(title) else f"{title}: {handle.text}"
        text = said + (f" · {handle.seconds:.0f} s" if handle.seconds else "")
    bar.progress(handle.progress, text=literal(text))


def _cancelled(handle: Handle, title: str, key: str) -> None:
    after = f" after {handle.seconds:.1f} s" if handle.seconds else " before it started"
    st.info(literal(f"{title}: cancelled{after}."), icon=":material/stop_circle:")
    if st.button("Run again", key=f"again_{key}{handle.key}", icon=":material/replay:"):
        state.forget_cancelled(handle.key)
        st.rerun()
