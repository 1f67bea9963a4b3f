"""Widgets several pages share."""

from __future__ import annotations

import streamlit as st

from core.studies import Study


def which_image(study: Study, key: str, plane: str | None = None,
                frame: int | None = None) -> tuple[str | None, int]:
    """The 2-D image of a study to use: a plane radio for volumes and a frame or slice
    slider where there are several. `plane` and `frame` preselect one (what the Viewer
    sent); the widgets' keys start with `key`, so a new study starts afresh."""
    if study.planes:
        start = plane or study.acquired_plane
        plane = st.radio("Plane", study.planes, index=study.planes.index(start),
                         horizontal=True, key=f"{key}_plane")
        if plane != start:
            frame = None
    if frame is None:
        frame = study.default_index(plane)
    count = study.count(plane)
    if count > 1:
        frame = st.slider("Slice" if plane else "Frame", 1, count, frame + 1,
                          key=f"{key}_index_{plane}") - 1
    return plane, frame

