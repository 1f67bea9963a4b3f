"""Explain: a study, a model's prediction on it, and the map of what drove it."""

import streamlit as st

from core import models, viewer
from core.explain import METHOD_TITLES, ExplainError, explain_input
from core.model_input import prepare
from core.models import cards
from core.overlay import COLORMAPS, overlay
from core.samples import samples
from core.study import StudyError, open_study
from core.viewer import Selection
from dashboard import charts

DEFAULT_MODEL = "braintumor-xception"
FROM_VIEWER = "From the Viewer"

st.title("Explain")
st.caption("Research and teaching; not for diagnosis.")

by_id = {c.id: c for c in cards()}
selection: Selection | None = st.session_state.get("viewer_selection")
sources = ["Built-in sample", "Upload a file"]
if selection is not None:
    sources.insert(0, FROM_VIEWER)
study = None
token = "none"  # names the slice widgets of the study in use, so a new study starts afresh
with st.sidebar:
    model_id = st.selectbox("Model", list(by_id), index=list(by_id).index(DEFAULT_MODEL),
                            format_func=lambda i: f"{i} — {by_id[i].task}")
    card = by_id[model_id]
    # Keyed by the hand-over, so each image sent from the Viewer is selected on arrival.
    source = st.radio("Study", sources, horizontal=True,
                      key=f"explain_source_{selection.serial if selection else ''}")
    try:
        if source == FROM_VIEWER:
            study, token = selection.study, f"viewer-{selection.serial}"
            st.caption(f"From the Viewer: {selection.label}")
        elif source == "Built-in sample":
            sample = st.selectbox(
                "Sample", samples(card), index=None, placeholder="Choose a labelled sample",
                format_func=lambda s: f"{s.name} (labelled {s.label})",
            )
            if sample is not None:
                study, token = open_study(sample.path, name=sample.name), f"sample-{sample.name}"
        else:
            upload = st.file_uploader("DICOM, PNG, JPEG, NIfTI or zip file")
            if upload is not None:
                study = open_study(upload.getvalue(), name=upload.name)
                token = f"upload-{upload.file_id}"
    except (StudyError, models.ModelError) as error:
        st.error(str(error), icon=":material/error:")

if study is None:
    st.info("Choose a sample or upload a study in the sidebar.", icon=":material/arrow_back:")
    st.stop()

# Which image, in which window: the Viewer's choice when it sent one, else the study's own.
window = selection.window if source == FROM_VIEWER else None
plane = selection.plane if source == FROM_VIEWER else None
frame = selection.index if source == FROM_VIEWER else study.default_index()
with st.sidebar:
    if study.planes:
        start = plane or study.acquired_plane
        plane = st.radio("Plane", study.planes, index=study.planes.index(start),
                         horizontal=True, key=f"explain_plane_{token}")
        if plane != start:
            frame = study.default_index(plane)
    count = study.count(plane)
    if count > 1:
        frame = st.slider("Slice" if plane else "Frame", 1, count, frame + 1,
                          key=f"explain_index_{token}_{plane}") - 1

with st.status(f"Running {model_id}…", expanded=False) as status:
    try:
        classifier = models.load(model_id)
    except models.ModelError as error:
        status.update(label="Model not available", state="error")
        st.error(str(error), icon=":material/error:")
        st.stop()
    model_input = prepare(study, card.input_spec, frame=frame, window=window, plane=plane)
    prediction = classifier.predict(model_input)
    status.update(label=f"{model_id} on {classifier.device}: {prediction.label}", state="complete")

shown = study.display(frame, window, plane)
image_col, result_col, map_col = st.columns([1, 1, 1.2])
with image_col:
    st.subheader("Study")
    view = study.view(frame, plane)
    st.image(shown, caption=f"{study.name} · {view.label}", width="stretch", output_format="PNG")
    used = model_input.window
    st.caption(viewer.summary(study)
               + (f" · window {used.describe(study.units)}" if used else ""))
    with st.expander("What the model saw"):
        st.image(model_input.seen, caption=f"{card.input_shape[1]}x{card.input_shape[0]} input",
                 output_format="PNG")
        st.markdown("\n".join(f"1. {step}" for step in model_input.steps))

with result_col:
    st.subheader("Prediction")
    st.metric("Model output", prediction.label)
    source = "softmax of its logits" if card.outputs == "logits" else "the model's own output"
    st.caption(f"Probability {prediction.probabilities[prediction.label]:.1%} ({source})")
    st.plotly_chart(charts.probabilities(prediction.probabilities, prediction.label),
                    width="stretch", config={"displayModeBar": False})
    st.caption("A model's output, not a diagnosis.")

with map_col:
    st.subheader("Why")
    controls = st.columns(2)
    method = controls[0].selectbox("Method", list(METHOD_TITLES),
                                   format_func=METHOD_TITLES.get)
    target = controls[1].selectbox("Class to explain", card.labels,
                                   index=card.labels.index(prediction.label))
    opacity = controls[0].slider("Opacity", 0.0, 1.0, 0.4, 0.05)
    colormap = controls[1].selectbox("Colormap", list(COLORMAPS))
    try:
        explanation = explain_input(classifier, model_input, method, target)
    except ExplainError as error:
        st.info(str(error), icon=":material/info:")
    else:
        with st.container(key="overlay"):
            st.image(
                overlay(shown, explanation.map, opacity, colormap),
                caption=f"{METHOD_TITLES[method]} for '{explanation.label}' on {study.name}",
                width="stretch",
            )
        if explanation.empty:
            st.info(f"Nothing at layer {explanation.layer} speaks for '{explanation.label}': "
                    "the map is empty.", icon=":material/info:")
        st.caption(f"Layer {explanation.layer} · {explanation.seconds * 1000:.0f} ms")

with st.expander("Model card"):
    st.json(card.to_dict())
