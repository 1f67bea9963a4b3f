"""The study a page runs a model on, picked in the sidebar: the image the Viewer sent, a
built-in labelled sample, or an upload; then which image of it (plane, slice or frame).
Explain and Inside share it, so the model input on Inside is exactly the one on Explain."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import models
from core.models import ModelCard
from core.models.samples import all_samples, samples
from core.studies import Study, StudyError, Window, open_study
from dashboard import state
from dashboard.components.text import literal, show_error
from dashboard.components.widgets import which_image

FROM_VIEWER = "From the Viewer"


@dataclass(frozen=True)
class Chosen:
    """A study and the 2-D image of it to use, in the window the Viewer chose (if any)."""

    study: Study
    token: str  # names the widgets of this study, so a new study starts afresh
    plane: str | None
    frame: int
    window: Window | None


def choose_study(card: ModelCard, key: str) -> Chosen | None:
    """The sidebar's study picker (inside `with st.sidebar`): None until a study is open.
    A study that cannot be opened is one line; the uploader keeps its file."""
    selection = state.viewer_selection()
    sources = ["Built-in sample", "Upload a file"]
    if selection is not None:
        sources.insert(0, FROM_VIEWER)
    study, token = None, "none"
    # Keyed by the hand-over, so each image sent from the Viewer is selected on arrival.
    source = st.radio("Study", sources, horizontal=True,
                      key=f"{key}_source_{selection.serial if selection else ''}")
    try:
        if source == FROM_VIEWER:
            study, token = selection.study, f"viewer-{selection.serial}"
            st.caption(f"From the Viewer: {literal(selection.label)}")
        elif source == "Built-in sample":
            own = samples(card)  # a model trained in MedLens: its held-out images
            if not own:
                st.caption(f"No labelled samples ship with {literal(card.id)}: these are the "
                           "other models' samples, outside its domain.")
            sample = st.selectbox(
                "Sample", own or all_samples(), index=None,
                placeholder="Choose a labelled sample", key=f"{key}_sample",
                format_func=lambda s: f"{s.name} (labelled {s.label})",
            )
            if sample is not None:
                study, token = open_study(sample.path, name=sample.name), f"sample-{sample.name}"
        else:
            upload = st.file_uploader("DICOM, PNG, JPEG, NIfTI or zip file", key=f"{key}_upload")
            if upload is not None:
                study = open_study(upload.getvalue(), name=upload.name)
                token = f"upload-{upload.file_id}"
    except (StudyError, models.ModelError) as error:
        show_error(error)  # the uploader keeps its file; another choice opens at once
    if study is None:
        return None
    viewed = source == FROM_VIEWER
    # Which image, in which window: the Viewer's choice when it sent one, else the study's.
    plane, frame = which_image(study, f"{key}_{token}",
                               *((selection.plane, selection.index) if viewed
                                 else (None, None)))
    return Chosen(study, token, plane, frame, selection.window if viewed else None)
