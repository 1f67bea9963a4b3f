"""Widgets several pages share."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

import numpy as np
import streamlit as st

from core.options import Option
from core.studies import Study, Window, viewing
from core.studies.viewing import MaskStyle, png
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


@cache
def swatch(colour: tuple[int, int, int]) -> str:
    """A small square of `colour` as a PNG data URL (a table's image cell)."""
    picture = np.zeros((12, 12, 3), np.uint8)
    picture[1:-1, 1:-1] = colour
    return "data:image/png;base64," + base64.b64encode(png(picture)).decode("ascii")


def volumes_table(segments, volumes_ml: dict[str, float],
                  truth_ml: dict[str, float] | None = None, heading: str = "model") -> None:
    """Each segment's volume (`heading (mL)`; and the ground truth's), its colour in the
    first cell: the legend of the mask drawn above. Cells are plain text."""
    rows = [{"colour": swatch(tuple(s.colour)), "label": s.name,
             f"{heading} (mL)": volumes_ml.get(s.name, 0.0),
             **({"ground truth (mL)": truth_ml.get(s.name, 0.0)} if truth_ml else {})}
            for s in segments]
    volume = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"colour": st.column_config.ImageColumn("colour", width="small"),
                                f"{heading} (mL)": volume, "ground truth (mL)": volume})


@st.cache_resource(show_spinner=False, max_entries=32)
def window_choices(token: str, _study: Study) -> tuple[dict[str, Window], str | None]:
    """The windows to offer for the study named `token` (`viewing.window_choices`): its
    percentile windows scan every voxel, so once per study, not on every rerun."""
    return viewing.window_choices(_study)


def option_widget(name: str, option: Option, key: str, where: Any = st) -> Any:
    """One `Option` as a widget: a choice box, a checkbox, or a number box within its
    range; its help is the tooltip."""
    label = name.replace("_", " ").capitalize()
    if option.choices:
        return where.selectbox(label, option.choices, help=option.help, key=key,
                               index=list(option.choices).index(option.default))
    if option.kind is bool:
        return where.checkbox(label, value=bool(option.default), help=option.help, key=key)
    if option.kind is int:
        return int(where.number_input(label, value=int(option.default), step=1, help=option.help,
                                      min_value=None if option.low is None else int(option.low),
                                      max_value=None if option.high is None else int(option.high),
                                      key=key))
    return float(where.number_input(label, value=float(option.default), help=option.help,
                                    min_value=option.low, max_value=option.high,
                                    format="%g", key=key))
