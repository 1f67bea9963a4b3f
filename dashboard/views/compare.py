"""Compare: 2 to 4 models on one study, side by side: what each saw, what it said, where
its map looks, and how far the maps agree. The work is core.compare's; this page wires
widgets to it."""

import streamlit as st

from core.compare import MAX_MODELS, CompareError, combine, examine, shared_labels
from core.explain import METHOD_TITLES, METHODS, ExplainError
from core.explain.overlay import COLORMAPS, overlay
from core.models import ModelError
from core.models.samples import samples
from core.studies import StudyError, open_study
from dashboard import charts, session_models
from dashboard.recent import Recent
from dashboard.widgets import which_image

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
        default=[i for i in DEFAULT_MODELS if i in available],
        format_func=session_models.describe, key="compare_models")
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
        st.error(str(error), icon=":material/error:")
    method = st.selectbox("Method", list(METHODS), index=list(METHODS).index("gradcam"),
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

with st.status(f"Loading {len(chosen)} models…", expanded=False) as status:
    try:
        classifiers = {}
        for model_id in chosen:
            classifiers[model_id] = session_models.classifier_for(model_id)
            st.write(f"{model_id} ready on {classifiers[model_id].device}")
    except ModelError as error:
        status.update(label="A model is not available", state="error")
        st.error(str(error), icon=":material/error:")
        st.stop()
    status.update(label=f"{len(chosen)} models ready", state="complete")

# Each model's result depends on these only: the overlay's opacity and colormap do not.
recent: Recent = st.session_state.setdefault("compare_recent", Recent(32))
slot = st.empty()
results = []
try:
    for i, model_id in enumerate(chosen):
        answers = metadata.get(model_id)
        key = (model_id, token, frame, plane, method, target,
               tuple(sorted(answers.items())) if answers else None)

        def make(i=i, model_id=model_id, answers=answers):
            def progress(done: float, text: str) -> None:
                slot.progress((i + done) / len(chosen), text=text)

            return examine(classifiers[model_id], study, method, target, frame, plane,
                           answers, progress=progress)

        results.append(recent.get(key, make))
    comparison = combine(results, method, target)
except (ModelError, ExplainError, CompareError, StudyError) as error:
    st.error(str(error), icon=":material/error:")
    st.stop()
finally:
    slot.empty()

st.warning("These are model outputs, not diagnoses: research and teaching models, not "
           "validated for clinical use.", icon=":material/warning:")
look = st.columns([1, 1, 2])
opacity = look[0].slider("Opacity", 0.0, 1.0, 0.4, 0.05, key="compare_opacity")
colormap = look[1].selectbox("Colormap", list(COLORMAPS), key="compare_colormap")

shown = study.display(frame, None, plane)
title = METHOD_TITLES[method]
with st.container(key="compare_columns"):
    for column, result in zip(st.columns(len(results)), results, strict=True):
        with column:
            c, seen = result.card, result.model_input.seen
            st.subheader(c.id)
            outside = c.outside_domain(study)
            if outside:
                st.warning(outside, icon=":material/warning:")
            st.image(seen, caption=f"What {c.id} saw: {seen.shape[1]}x{seen.shape[0]}",
                     width="stretch", output_format="PNG")
            with st.expander("Steps from the study to its input"):
                st.markdown("\n".join(f"1. {step}" for step in result.model_input.steps))
            p = result.prediction
            st.metric("Model output", p.label, help="The model's output, not a diagnosis.")
            st.plotly_chart(charts.probabilities(p.probabilities, p.label), width="stretch",
                            config={"displayModeBar": False}, key=f"compare_probs_{c.id}")
            e = result.explanation
            if e is not None:
                st.image(overlay(shown, e.map, opacity, colormap),
                         caption=f"{title} for '{e.label}' on {study.name}", width="stretch")
                if e.empty:
                    st.info(f"Nothing speaks for '{e.label}' here: the map is empty.",
                            icon=":material/info:")
            explained = (f" · {title} {e.seconds * 1000:.0f} ms on {result.explained_on}"
                         if e is not None else "")
            st.caption(f"Forward pass {result.forward_seconds * 1000:.0f} ms on "
                       f"{result.runtime}{explained}")
            st.caption(f"{result.parameters / 1e6:.1f} M parameters · file "
                       f"{result.file_bytes / 1e6:.1f} MB")
            for note in result.notes:
                st.info(note, icon=":material/info:")

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
st.markdown("\n".join(f"- {p.sentence}" for p in comparison.pairs))
st.caption(comparison.labels.note)
