"""Widgets several pages share."""

from __future__ import annotations

import streamlit as st

from core.studies import Study
from core.studies.viewing import MaskStyle
from dashboard.components.text import literal


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



def mask_style(segments, key: str) -> MaskStyle:
    """Fill and outline opacity (3D Slicer's defaults, 0.5 and 1.0) and a toggle per
    segment, its colour beside its name: how a label map is drawn."""
    fill = st.slider("Fill opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}_fill",
                     help="3D Slicer's default: 0.5")
    outline = st.slider("Outline opacity", 0.0, 1.0, 1.0, 0.05, key=f"{key}_outline",
                        help="3D Slicer's default: 1.0")
    hidden = set()
    for segment in segments:
        swatch = "#{:02x}{:02x}{:02x}".format(*segment.colour)
        # The name is the file's text: a checkbox label is markdown, so it goes literally.
        if not st.checkbox(f"{literal(segment.name)}", value=True,
                           key=f"{key}_show_{segment.number}", help=f"colour {swatch}"):
            hidden.add(segment.number)
    return MaskStyle(fill=fill, outline=outline, hidden=frozenset(hidden))
