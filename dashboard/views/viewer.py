"""Viewer: open a study, window it, scroll it, read its tags, lay a mask over it (NIfTI,
DICOM SEG or PNG: fill and outline per segment, its volumes), and send an image to
Explain."""

import hashlib
import secrets

import streamlit as st

from core.studies import Study, StudyError
from core.studies import viewing as viewer
from core.studies.masks import LabelMap, fit, read_labels
from dashboard import state
from dashboard.components.text import literal, show_error
from dashboard.components.widgets import mask_style, volumes_table, which_image, window_choices

SOURCES = ["Built-in example", "Upload files"]

st.title("Viewer")
st.caption("Research and teaching; not for diagnosis.")


@st.cache_resource(show_spinner="Reading the example…", max_entries=8)
def example(file: str) -> Study:
    # Shared by every session: the examples are public test files, never uploads.
    return viewer.open_example(file)



def uploaded(files: list) -> viewer.Uploads:
    """The uploads opened once per set of files, kept in this session only."""
    token = tuple(f.file_id for f in files)
    opened = state.viewer_uploads(token)
    if opened is None:
        with st.spinner(f"Reading {len(files)} file(s)…"):
            opened = viewer.open_uploads([(f.name, f.getvalue()) for f in files])
        state.set_viewer_uploads(token, opened)
    return opened


def mask_of(token: str, study: Study) -> tuple[LabelMap | None, viewer.MaskStyle]:
    """A label map the user gives for this study (NIfTI, DICOM SEG or PNG), checked
    against the study's geometry, and how to draw it; (None, default) without one."""
    st.subheader("Mask")
    upload = st.file_uploader("A mask of this study (NIfTI, DICOM SEG or PNG)",
                              key=f"viewer_mask_{token}")
    if upload is None:
        return None, viewer.MaskStyle()
    try:
        mask = fit(read_labels(upload.name, upload.getvalue(), name=upload.name), study)
    except StudyError as error:
        show_error(error)  # the study stays shown; another file can be tried
        return None, viewer.MaskStyle()
    return mask, mask_style(mask.segments, f"viewer_mask_{token}")


def show(token: str, study: Study) -> None:
    """The study's picture, window controls and tags; any text from the file is drawn
    literally (`literal`), and what cannot be shown raises StudyError."""
    window = None
    with st.sidebar:
        plane, index = which_image(study, f"viewer_{token}")
        choices, default = window_choices(token, study)
        units = f" ({literal(study.units)})" if study.units else ""
        if choices:
            st.subheader("Window")
            names = list(choices)
            preset_name = st.selectbox("Window preset", names, index=names.index(default),
                                       key=f"viewer_preset_{token}")
            preset = choices[preset_name]
            # Keyed by the preset, so picking a preset puts its own values back in the boxes.
            center = st.number_input(f"Centre{units}", value=float(preset.center), step=1.0,
                                     format="%.1f", key=f"viewer_center_{token}_{preset_name}")
            width = st.number_input(f"Width{units}", value=max(float(preset.width), 1.0),
                                    min_value=1.0, step=1.0, format="%.1f",
                                    key=f"viewer_width_{token}_{preset_name}")
            window = viewer.manual_or_preset(preset, center, width)
            st.caption(f"Window used: **{literal(window.describe(study.units))}**")
        else:
            st.caption("Colour image: shown as stored, no window.")
        mask, style = mask_of(token, study)

    pic = viewer.picture(study, index, window, plane, mask=mask, style=style)
    image_col, info_col = st.columns([3, 2])
    with image_col:
        shown_as = window.describe(study.units) if window else "colour, as stored"
        with st.container(key="viewer_image"):
            # PNG, encoded here: lossless (Streamlit's "auto" picks JPEG) and quick.
            st.image(viewer.png(pic.image),
                     caption=f"{literal(study.name)} · {pic.view.label} · {literal(shown_as)}",
                     width="stretch", output_format="PNG")
        st.caption(viewer.spacing_caption(pic, study))  # numbers and our words only
        if st.button("Send to Explain", icon=":material/visibility:", type="primary",
                     help="Run a model on this image, as windowed here."):
            state.set_viewer_selection(state.Selection(study, index, plane, window,
                                                       secrets.token_hex(4)))
            st.switch_page("views/explain.py")

    with info_col:
        if mask is not None:
            st.subheader("Mask")
            st.caption(f"{literal(mask.name)} · {literal(mask.source)} · "
                       f"{len(mask.segments)} segment(s)")
            measured = mask.volumes_ml()
            if measured:
                volumes_table(mask.segments, measured, heading="volume")
            else:
                st.caption("Pixel spacing unknown: volumes cannot be measured.")
            for note in mask.notes:
                st.info(literal(note), icon=":material/info:")
        st.subheader("Study")
        st.caption(literal(viewer.summary(study)))
        for note in study.notes:
            st.info(literal(note), icon=":material/info:")
        if study.metadata:  # table cells are plain text
            st.dataframe(viewer.metadata_rows(study.metadata), hide_index=True,
                         width="stretch")
        reveal = st.toggle("Show identifying tags (your own file)", value=False,
                           key=f"viewer_identifying_{token}")
        if not reveal:
            st.caption(f"{len(study.identifying)} identifying tag(s) hidden.")
        elif study.identifying:
            st.dataframe(viewer.metadata_rows(study.identifying), hide_index=True,
                         width="stretch")
            st.caption("Shown on this screen only: never stored, exported or sent to a model.")
        else:
            st.caption("No identifying tags in this file.")


studies: list[tuple[str, Study]] = []  # (token naming the study's widgets, study)
errors: list[str] = []
with st.sidebar:
    source = st.radio("Study", SOURCES, horizontal=True, **state.kept("viewer_source"))
    if source == SOURCES[0]:
        file = st.selectbox(
            "Example", list(viewer.EXAMPLES), index=None, placeholder="Choose an example",
            format_func=lambda f: f"{viewer.EXAMPLES[f].title} ({f})",
            **state.kept("viewer_example"),
        )
        if file is not None:
            try:
                studies.append((f"example-{file}", example(file)))
            except StudyError as error:
                errors.append(str(error))
    else:
        files = st.file_uploader(
            "DICOM, PNG, JPEG, NIfTI or zip: one file, or the files of one series",
            accept_multiple_files=True, key="viewer_upload",
        )
        if files:
            opened = uploaded(files)
            batch = hashlib.sha1("|".join(f.file_id for f in files).encode()).hexdigest()[:12]
            studies = [(f"upload-{batch}-{i}", s) for i, s in enumerate(opened.studies)]
            errors.extend(opened.errors)
            if opened.note:
                st.info(literal(opened.note), icon=":material/info:")
        else:
            state.forget_viewer_uploads()

for error in errors:
    show_error(error)
if not studies:
    if not errors:
        st.info("Choose an example or upload files in the sidebar.", icon=":material/arrow_back:")
    st.stop()

with st.sidebar:
    token, study = studies[0]
    if len(studies) > 1:
        # Options are plain text in a selectbox: the names need no escaping.
        names = [s.name for _, s in studies]
        chosen = st.selectbox("File", range(len(studies)), format_func=names.__getitem__,
                              key=f"viewer_file_{token}")
        token, study = studies[chosen]

try:
    show(token, study)
except StudyError as error:
    # A file that opened but cannot be shown: one line, and the sidebar (the uploads, the
    # other files, the examples) stays as it was.
    show_error(error)
