"""Compare: 2 to 4 models on one study, side by side: what each saw, what it said, where
its map looks, and how far the maps agree. The comparison is one job (core.jobs,
core.compare); this page wires widgets to it and draws its result, one row per aspect so
the models' columns stay level."""

import streamlit as st

from core.compare import MAX_MODELS, shared_labels
from core.explain import METHOD_TITLES, METHODS, ExplainError
from core.explain.api import estimate_seconds
from core.explain.overlay import COLORMAPS, overlay
from core.jobs import compare_job
from core.models import ModelError
from core.models.samples import samples
from core.studies import StudyError, open_study
from dashboard.components import charts, jobs
from dashboard.components import models as session_models
from dashboard.components.text import literal, show_error
from dashboard.components.widgets import which_image

DEFAULT_MODELS = ("braintumor-xception", "braintumor-vgg16")
EACH = "each model's prediction"

st.title("Compare")
st.caption("Research and teaching; not for diagnosis.")

study, token = None, "none"
metadata: dict[str, dict] = {}
with st.sidebar:
    st.page_link("views/zoo.py", label="Add your own model (Model zoo)",
                 icon=":material/upload_file:")
    available = session_models.available()
    chosen = st.multiselect(
        "Models (2 to 4)", list(available), max_selections=MAX_MODELS,
        default=[i for i in DEFAULT_MODELS if i in available], key="compare_models")
    if chosen:
        st.caption("; ".join(f"**{literal(i)}**: {literal(session_models.purpose(i))}"
                             for i in chosen))
    cards = [available[i] for i in chosen]
    source = st.radio("Study", ["Built-in sample", "Upload a file"], horizontal=True,
                      key="compare_source")
    try:
        if source == "Built-in sample":
            # The chosen models' samples, each once (the two tumour models share theirs).
            offered = list({s.path: s for c in cards for s in samples(c)}.values())
            sample = st.selectbox(
                "Sample", offered, index=None, key="compare_sample",
                placeholder="Choose a labelled sample" if offered else
                "None of the chosen models has samples: upload a file",
                format_func=lambda s: f"{s.name} (labelled {s.label})")
            if sample is not None:
                study, token = open_study(sample.path, name=sample.name), f"sample-{sample.path}"
        else:
            upload = st.file_uploader("DICOM, PNG, JPEG, NIfTI or zip file",
                                      key="compare_upload")
            if upload is not None:
                study = open_study(upload.getvalue(), name=upload.name)
                token = f"upload-{upload.file_id}"
    except (StudyError, ModelError) as error:
        show_error(error)  # the uploader keeps its file; another choice opens at once
    # The methods every chosen model accepts (the attention ones need a ViT each).
    accepted = [m for m in METHODS
                if all(m in session_models.methods_for(i) for i in chosen)]
    method = st.selectbox("Method", accepted, index=accepted.index("gradcam"),
                          format_func=METHOD_TITLES.get, key="compare_method")
    labels = shared_labels(cards)
    target = st.selectbox("Class to explain", [EACH, *labels.labels], key="compare_target",
                          help="A label all chosen models have, or each model's own "
                               "predicted class.")
    target = None if target == EACH else target
    for c in cards:
        if c.metadata is not None:
            metadata[c.id] = session_models.metadata_form(c, key=f"compare_meta_{c.id}")

if len(chosen) < 2:
    st.info("Choose 2 to 4 models in the sidebar.", icon=":material/arrow_back:")
    st.stop()
if study is None:
    st.info("Choose a sample or upload a study in the sidebar.", icon=":material/arrow_back:")
    st.stop()

with st.sidebar:
    plane, frame = which_image(study, f"compare_{token}")

try:
    with st.spinner(f"Loading {len(chosen)} models…"):
        classifiers = [session_models.classifier_for(model_id) for model_id in chosen]
    shown = study.display(frame, None, plane)
except (StudyError, ModelError) as error:
    show_error(error)
    st.stop()

# Only the models with a metadata input take the answers (the skin model; uploads have one
# input), so one set of answers serves the comparison.
answers = next(iter(metadata.values()), None)
try:  # the expected time, beside the method picker: the sum over the models
    expected = [estimate_seconds(c, c.card.prepare(study, frame=frame, plane=plane, metadata=(
        answers if c.card.metadata is not None else None)), method) for c in classifiers]
except (StudyError, ModelError, ExplainError):
    expected = [None]
if all(e is not None for e in expected):
    st.sidebar.caption(f"{METHOD_TITLES[method]} on {len(expected)} models: about "
                       f"{sum(expected):.1f} s here (measured once each has run).")
# The comparison depends on these only: the overlay's opacity and colormap do not.
job = compare_job(classifiers, study, method, target, frame, plane, answers)
comparison = jobs.show(jobs.submit(job), f"Comparing {len(chosen)} models")
if comparison is None:
    st.stop()

st.warning("These are model outputs, not diagnoses: research and teaching models, not "
           "validated for clinical use.", icon=":material/warning:")
# The side-by-side is drawn first, the controls that only change its look below it.
side_by_side = st.container(key="compare_columns")
look = st.columns([1, 1, 2])
opacity = look[0].slider("Opacity", 0.0, 1.0, 0.4, 0.05, key="compare_opacity")
colormap = look[1].selectbox("Colormap", list(COLORMAPS), key="compare_colormap")

title = METHOD_TITLES[method]
results = comparison.models
# The same height for every model's bars, so the rows below them start level.
bars_px = charts.probabilities_height(max(len(r.card.labels) for r in results))


def row():
    """One row of the side-by-side: a column per model, level with the rows above."""
    return zip(st.columns(len(results)), results, strict=True)


# The answer first (each model's map and output), then what each saw, then its costs.
with side_by_side:
    for column, result in row():
        column.subheader(literal(result.id))
    for column, result in row():  # the domain check and the modality check, from core
        if result.warning:
            column.warning(literal(result.warning), icon=":material/warning:")
        elif result.domain is not None:
            column.caption(literal(result.domain.sentence()))
    for column, result in row():
        e = result.explanation
        if e is None:
            column.caption(f"No {title} map.")
            continue
        column.image(overlay(shown, e.map, opacity, colormap),
                     caption=f"{title} for '{literal(e.label)}' on {literal(study.name)}",
                     width="stretch")
        if e.empty:
            column.info(f"Nothing speaks for '{literal(e.label)}' here: the map is empty.",
                        icon=":material/info:")
    for column, result in row():
        p = result.prediction
        column.metric("Model output", literal(p.label),
                      help="The model's output, not a diagnosis.")
        column.plotly_chart(charts.probabilities(p.probabilities, p.label, bars_px),
                            width="stretch", config={"displayModeBar": False},
                            key=f"compare_probs_{result.id}")
    for column, result in row():
        seen = result.model_input.seen
        column.image(seen, caption=f"What {literal(result.id)} saw: "
                                   f"{seen.shape[1]}x{seen.shape[0]}",
                     width="stretch", output_format="PNG")
        with column.expander("Steps from the study to its input"):
            st.markdown("\n".join(f"1. {literal(step)}" for step in result.model_input.steps))
    for column, result in row():
        e = result.explanation
        explained = (f" · {title} {e.seconds * 1000:.0f} ms on {result.explained_on}"
                     if e is not None else "")
        column.caption(f"Forward pass {result.forward_seconds * 1000:.0f} ms on "
                       f"{result.runtime}{explained}")
        column.caption(f"{result.parameters / 1e6:.1f} M parameters · file "
                       f"{result.file_bytes / 1e6:.1f} MB")
    if any(r.notes for r in results):
        for column, result in row():
            for note in result.notes:
                column.info(literal(note), icon=":material/info:")

st.subheader("Agreement of the maps")
st.caption("IoU of the top-20% regions (each map's pixels at or above its 80th percentile) "
           "and Spearman rank correlation over all pixels, at the study's resolution. A "
           "constant map has no top region and no order: its figures read 0.")
pairs = [p.to_dict() for p in comparison.pairs]
st.dataframe(
    [{"model A": p["a"], "model B": p["b"],
      "IoU top-20%": None if p["iou_top20"] is None else round(p["iou_top20"], 3),
      "Spearman ρ": None if p["spearman"] is None else round(p["spearman"], 3),
      "note": "constant map: " + ", ".join(p["constant"]) if p["constant"] else ""}
     for p in pairs],
    hide_index=True, width="stretch", key="compare_agreement")
st.plotly_chart(charts.agreement(list(chosen), pairs), width="stretch",
                config={"displayModeBar": False}, key="compare_heatmap")
st.subheader("What they say")
st.markdown("\n".join(f"- {literal(p.sentence)}" for p in comparison.pairs))
st.caption(literal(comparison.labels.note))
