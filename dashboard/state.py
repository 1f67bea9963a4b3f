"""Every value this dashboard keeps in a browser session, behind typed accessors.

Streamlit keeps a session's values in `st.session_state`, a dict by string key; the pages
never touch it themselves. Each entry is read and written here, under one key named
once, with its type: a mistyped key or a value of the wrong kind is found in one place.
(Widget `key=` arguments stay on the widgets: Streamlit owns those values.)

Long work is not kept here: its results live in the job store (`core.jobs.executor()`),
shared by every session of the server and named by the job's spec. A session keeps only
what is its own: its uploads, the Viewer's hand-over, the jobs it started by a button,
and the jobs it cancelled.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.jobs import Handle
from core.models import Classifier
from core.studies import Study, Window
from core.studies.viewing import Uploads

# The session-state keys, each named once. "user_models" is also what tests preload.
USER_MODELS = "user_models"
VIEWER_SELECTION = "viewer_selection"
VIEWER_UPLOADS = "viewer_uploads"
KEPT_PREFIX = "_kept_"
SANITY = "explain_sanity"
CANCELLED = "cancelled_jobs"
EVALUATION = "evaluate_result"
CLICKED_PREFIX = "_clicked_"


# -- the Viewer's hand-over to Explain ------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """What the Viewer hands to Explain: a study and which image of it, in which window."""

    study: Study
    index: int
    plane: str | None
    window: Window | None
    serial: str  # new for every hand-over, so Explain starts from it afresh

    @property
    def label(self) -> str:
        return f"{self.study.name}, {self.study.view(self.index, self.plane).label}"


def viewer_selection() -> Selection | None:
    """The image the Viewer last sent to Explain in this session, if any."""
    return st.session_state.get(VIEWER_SELECTION)


def set_viewer_selection(selection: Selection) -> None:
    st.session_state[VIEWER_SELECTION] = selection


# -- the Viewer's uploads -------------------------------------------------------------------

def viewer_uploads(token: tuple[str, ...]) -> Uploads | None:
    """The uploads opened for this set of files (their file ids), if they still are."""
    held = st.session_state.get(VIEWER_UPLOADS)
    return held[1] if held is not None and held[0] == token else None


def set_viewer_uploads(token: tuple[str, ...], uploads: Uploads) -> None:
    st.session_state[VIEWER_UPLOADS] = (token, uploads)


def forget_viewer_uploads() -> None:
    st.session_state.pop(VIEWER_UPLOADS, None)


# -- widget values kept across pages ----------------------------------------------------------

def _remember(key: str) -> None:
    st.session_state[KEPT_PREFIX + key] = st.session_state[key]


def kept(key: str) -> dict[str, Any]:
    """Widget arguments (`key`, `on_change`, `args`) that keep its value across a visit
    to another page.

    Streamlit forgets a widget's value once a run on another page leaves it out; a plain
    session value (set on every change) survives and is put back first.
    """
    if key not in st.session_state and KEPT_PREFIX + key in st.session_state:
        st.session_state[key] = st.session_state[KEPT_PREFIX + key]
    return {"key": key, "on_change": _remember, "args": (key,)}


def follow_click(widget_key: str, clicked: Hashable | None, allowed: Any) -> None:
    """Point the widget `widget_key` at `clicked` when a new click came in (one that is
    in `allowed`); between clicks the widget stays the user's to change."""
    if clicked != st.session_state.get(CLICKED_PREFIX + widget_key):
        st.session_state[CLICKED_PREFIX + widget_key] = clicked
        if clicked is not None and clicked in allowed:
            st.session_state[widget_key] = clicked


# -- uploaded models --------------------------------------------------------------------------

def user_models() -> dict[str, Classifier]:
    """The models uploaded in this session, by id ("user:..."): never seen by others."""
    return st.session_state.setdefault(USER_MODELS, {})


# -- jobs this session started by a button, or cancelled ----------------------------------------

def sanity_check() -> Handle | None:
    """The sanity check this session last started on Explain."""
    return st.session_state.get(SANITY)


def set_sanity_check(handle: Handle) -> None:
    st.session_state[SANITY] = handle


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """The evaluation started by the Evaluate button: its number in this session (charts
    are keyed by it, so a new run starts with no cell picked) and its job."""

    number: int
    handle: Handle


def evaluation() -> EvaluationRun | None:
    return st.session_state.get(EVALUATION)


def start_evaluation(handle: Handle) -> EvaluationRun:
    """Record a new evaluation run (the next number) and return it."""
    previous = evaluation()
    run = EvaluationRun((previous.number if previous else 0) + 1, handle)
    st.session_state[EVALUATION] = run
    return run


def keep_evaluation(handle: Handle) -> EvaluationRun:
    """The evaluation run, now on `handle` (a new one only if the job had to be asked
    again: cancelled and run again, or dropped from the job store)."""
    run = evaluation()
    if run is None or run.handle is not handle:
        run = EvaluationRun(run.number if run else 1, handle)
        st.session_state[EVALUATION] = run
    return run


def _cancelled() -> dict[str, Handle]:
    return st.session_state.setdefault(CANCELLED, {})


def cancelled(key: str) -> Handle | None:
    """The handle of a job this session cancelled (by its spec's key): a rerun shows it
    cancelled instead of submitting it again."""
    return _cancelled().get(key)


def remember_cancelled(handle: Handle) -> None:
    _cancelled()[handle.key] = handle


def forget_cancelled(key: str) -> None:
    """Asked to run again: the next run submits the job afresh."""
    _cancelled().pop(key, None)


# -- training runs (the Train page) -------------------------------------------------------------

TRAINING_RUNS = "training_runs"
SESSION_OWNER = "session_owner"


def owner() -> str:
    """This session's name on the shared trainer: its runs are its own."""
    import uuid

    return st.session_state.setdefault(SESSION_OWNER, uuid.uuid4().hex)


def training_runs() -> list[Handle]:
    """The training runs this session started, oldest first (no one else's)."""
    return st.session_state.setdefault(TRAINING_RUNS, [])


TRAINED_MODELS = "trained_models"


def trained_models() -> dict[str, Any]:
    """The models this session trained (core.train.fit.Trained), by card id: what the
    data-randomisation test on Explain retrains with shuffled labels."""
    return st.session_state.setdefault(TRAINED_MODELS, {})
