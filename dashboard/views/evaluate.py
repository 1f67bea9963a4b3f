"""Evaluate: one or more models on a labelled set. Accuracy, per-class scores, the
confusion matrix (a cell shows its images with their Grad-CAM maps), ROC curves and
calibration; several models side by side."""

import streamlit as st

from core import evaluate as ev
from core.explain import ExplainError
from core.explain.overlay import COLORMAPS, overlay
from core.models import ModelError
from core.studies import StudyError
from dashboard import charts, session_models
from dashboard.recent import Recent

DEFAULT_MODEL = "braintumor-xception"
SAMPLES, ZIP, FOLDER = "Built-in samples", "Upload a .zip", "Upload a folder"
RESULT = "evaluate_result"  # session state: (run number, Comparison)
MAX_SHOWN = 12  # images of one confusion-matrix cell shown at once

st.title("Evaluate")
st.caption("Research and teaching; not for diagnosis.")

available = session_models.available()
chosen = st.multiselect(
    "Models", list(available), default=[DEFAULT_MODEL] if DEFAULT_MODEL in available else [],
    format_func=session_models.describe,
    help="Several models are measured on the same images and compared side by side.")
source = st.radio("Labelled set", [SAMPLES, ZIP, FOLDER], horizontal=True,
                  help="A .zip or a folder with one sub-folder per label, named as the "
                       "model's labels (e.g. glioma/, meningioma/...).")
upload = None
sample_model = next((m for m in chosen if available[m].samples), None)
if source == SAMPLES:
    if sample_model is None:
        st.info("None of the chosen models ships labelled samples: upload a labelled set.",
                icon=":material/info:")
    else:
        st.caption(f"The built-in samples of {sample_model}, labelled by their file names; "
                   "every chosen model runs on these same images.")
elif source == ZIP:
    upload = st.file_uploader("A .zip with one sub-folder per label", type=["zip"],
                              key="evaluate_zip")
else:
    upload = st.file_uploader("A folder with one sub-folder per label",
                              accept_multiple_files="directory", key="evaluate_folder")

answers = {}
for model_id in chosen:
    if available[model_id].metadata is not None:
        with st.expander(f"Patient metadata for {model_id} (the same for every image)"):
            answers[model_id] = session_models.metadata_form(available[model_id],
                                                             key=f"evaluate_meta_{model_id}")
only_known = st.checkbox(
    "Leave out the images of folders that are not among a model's labels",
    help="Otherwise a model whose labels do not cover every folder is not evaluated: it "
         "cannot be scored on a class it cannot predict.")


def labelled_set() -> ev.LabelledSet | None:
    """The set the user chose, or None (with the reason shown) when there is none yet."""
    if source == SAMPLES:
        return None if sample_model is None else ev.from_samples(available[sample_model])
    if not upload:
        st.info("Upload a labelled set first.", icon=":material/upload:")
        return None
    if source == ZIP:
        return ev.from_zip(upload.getvalue(), name=upload.name)
    # The browser sends each file with its path inside the chosen folder.
    return ev.from_files([(f.name, f.getvalue()) for f in upload], name="the uploaded folder")


if st.button("Evaluate", type="primary", icon=":material/fact_check:", disabled=not chosen):
    try:
        labelled = labelled_set()
        if labelled is not None:
            with st.status(f"Loading {len(chosen)} model(s)…") as status:
                classifiers = [session_models.classifier_for(m) for m in chosen]
                status.update(label=f"{len(labelled.images)} images in {labelled.name}",
                              state="complete")
            bar = st.progress(0.0, text="Evaluating…")
            comparison = ev.evaluate_models(classifiers, labelled,
                                    progress=lambda done, text: bar.progress(done, text=text),
                                    metadata=answers, only_known_labels=only_known)
            bar.empty()
            run = st.session_state.get(RESULT, (0, None))[0] + 1
            st.session_state[RESULT] = (run, comparison)
    except (ev.EvaluationError, StudyError, ModelError) as error:
        st.error(str(error), icon=":material/error:")

run, comparison = st.session_state.get(RESULT, (0, None))
if comparison is None:
    st.info("Choose one or more models and a labelled set, then Evaluate.",
            icon=":material/fact_check:")
    st.stop()

st.subheader(f"On {comparison.set_name}")
for model_id, error in comparison.errors.items():
    st.error(f"{model_id} not evaluated: {error}", icon=":material/error:")
st.dataframe(comparison.table(), hide_index=True, width="stretch", column_config={
    "model": "model", "n": st.column_config.NumberColumn("images"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="%.3f"),
    "macro_f1": st.column_config.NumberColumn("macro F1", format="%.3f"),
    "macro_auc": st.column_config.NumberColumn(
        "macro AUC", format="%.3f", help="Mean one-vs-rest ROC AUC over the classes with "
                                         "images of it and of others in the set"),
    "ece": st.column_config.NumberColumn(
        "ECE", format="%.3f", help="Expected calibration error (Guo et al. 2017), 10 bins"),
})
st.caption("A few images measure very little: these figures say how the models behave on "
           "this set, not how well they work.")
if not comparison.evaluations:
    st.stop()

look = st.columns([1, 1, 2])
opacity = look[0].slider("Map opacity", 0.0, 1.0, 0.4, 0.05, key="evaluate_opacity")
colormap = look[1].selectbox("Colormap", list(COLORMAPS), key="evaluate_colormap")
maps: Recent = st.session_state.setdefault("evaluate_maps", Recent(64))


def grad_cam(model_id: str, evaluation: ev.Evaluation, row: int):
    """(picture, Grad-CAM) of one evaluated image: made once, kept for the session."""
    key = (run, model_id, evaluation.images[row].name)
    return maps.get(key, lambda: ev.explain_row(
        session_models.classifier_for(model_id, method="gradcam"), evaluation, row))


def show_cell(model_id: str, evaluation: ev.Evaluation, cell: tuple[str, str]) -> None:
    rows = evaluation.cell(*cell)
    st.markdown(f"**True {cell[0]}, predicted {cell[1]}: {len(rows)} image(s)**"
                + (f" (the first {MAX_SHOWN})" if len(rows) > MAX_SHOWN else ""))
    grid = st.columns(4)
    for i, row in enumerate(rows[:MAX_SHOWN]):
        image = evaluation.images[row]
        ranked = sorted(zip(evaluation.labels, evaluation.probabilities[row], strict=True),
                        key=lambda pair: -pair[1])
        words = ", ".join(f"{label} {p:.2f}" for label, p in ranked)
        with grid[i % 4]:
            try:
                picture, explanation = grad_cam(model_id, evaluation, row)
            except (ExplainError, ModelError, StudyError) as error:
                st.caption(f"{image.name}: no map ({error})")
                continue
            st.image(overlay(picture, explanation.map, opacity, colormap),
                     caption=f"{image.name}: Grad-CAM for '{explanation.label}'",
                     width="stretch")
            st.caption(words)


def show(model_id: str, evaluation: ev.Evaluation) -> None:
    figures = st.columns(4)
    figures[0].metric("Accuracy", f"{evaluation.accuracy:.1%}",
                      help=f"{int(evaluation.correct.sum())} of {evaluation.n} images")
    for column, title, value in ((figures[1], "Macro F1", evaluation.macro_f1),
                                 (figures[2], "Macro AUC", evaluation.macro_auc),
                                 (figures[3], "ECE", evaluation.ece)):
        column.metric(title, "—" if value is None else f"{value:.3f}")
    for note in evaluation.notes:
        st.caption(note)
    if evaluation.skipped:
        with st.expander(f"{len(evaluation.skipped)} file(s) skipped"):
            st.markdown("\n".join(f"- `{s.name}`: {s.reason}" for s in evaluation.skipped))
    st.dataframe([{"label": s.label, "precision": s.precision, "recall": s.recall,
                   "F1": s.f1, "support": s.support, "ROC AUC": evaluation.roc_auc[s.label]}
                  for s in evaluation.per_class], hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                for k in ("precision", "recall", "F1", "ROC AUC")})

    left, right = st.columns(2)
    with left:
        st.markdown("**Confusion matrix** (rows true, columns predicted; click a cell)")
        normalise = st.toggle("As fractions of each true class", key=f"evaluate_norm_{model_id}")
        event = st.plotly_chart(
            charts.confusion_matrix(evaluation.confusion, list(evaluation.labels), normalise),
            on_select="rerun", selection_mode="points", width="stretch",
            key=f"evaluate_cm_{run}_{model_id}", config={"displayModeBar": False})
    cells = {(t, p): count for t, p, count in evaluation.cells()}
    choice_key = f"evaluate_cell_{run}_{model_id}"
    # A new click on the heatmap picks its cell in the selectbox below; the selectbox
    # stays the user's to change until the next click.
    points = event.selection.points
    clicked = tuple(points[0]["customdata"][:2]) if points else None
    if clicked != st.session_state.get(f"{choice_key}_clicked"):
        st.session_state[f"{choice_key}_clicked"] = clicked
        if clicked in cells:
            st.session_state[choice_key] = clicked
    with right:
        st.markdown("**ROC curves**, one class against the rest")
        st.plotly_chart(charts.roc_curves(evaluation.roc, evaluation.roc_auc), width="stretch",
                        key=f"evaluate_roc_{run}_{model_id}")
    st.markdown("**Reliability diagram**: is the model as sure as it is right?")
    r = evaluation.calibration
    st.plotly_chart(charts.reliability(r.edges, r.confidence, r.accuracy, r.count,
                                       evaluation.ece), width="stretch",
                    key=f"evaluate_rel_{run}_{model_id}")

    cell = st.selectbox(
        "Images of a cell", list(cells), index=None, key=choice_key,
        placeholder="Click a cell of the confusion matrix, or choose one here",
        format_func=lambda c: f"true {c[0]} → predicted {c[1]} ({cells[c]})")
    if cell is not None:
        show_cell(model_id, evaluation, cell)


tabs = st.tabs(list(comparison.evaluations))
for tab, (model_id, evaluation) in zip(tabs, comparison.evaluations.items(), strict=True):
    with tab:
        show(model_id, evaluation)
