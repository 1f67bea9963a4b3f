"""Evaluate: one or more models on a labelled set. Accuracy, per-class scores, the
confusion matrix (a cell shows its images with their Grad-CAM maps), ROC curves and
calibration; several models side by side; which explanation method to believe for a
model (ROAD per method over the set). The evaluation, the trust table and each map are jobs
(core.jobs): the page shows their progress and never waits for them."""

import streamlit as st

from core import evaluate as ev
from core.evaluate.trust import INTERACTIVE as TRUST_SETTINGS
from core.explain import ExplainError
from core.explain.overlay import COLORMAPS, overlay
from core.explain.registry import METHODS
from core.jobs import evaluate_job, executor, explain_job, trust_job
from core.models import ModelError
from core.studies import StudyError
from dashboard import state
from dashboard.components import charts, jobs
from dashboard.components import models as session_models
from dashboard.components.text import literal, show_error

DEFAULT_MODEL = "braintumor-xception"
SAMPLES, ZIP, FOLDER = "Built-in samples", "Upload a .zip", "Upload a folder"
MAX_SHOWN = 12  # images of one confusion-matrix cell shown at once
EXPECTED = (ExplainError, ModelError, StudyError)  # a map that cannot be made: a note
TRUST = "evaluate_trust_job"  # this session's trust job, kept across reruns

st.title("Evaluate")
st.caption("Research and teaching; not for diagnosis.")

available = session_models.available()
chosen = st.multiselect(
    "Models", list(available), default=[DEFAULT_MODEL] if DEFAULT_MODEL in available else [],
    help="Several models are measured on the same images and compared side by side.")
if chosen:
    st.caption("; ".join(f"**{literal(i)}**: {literal(session_models.purpose(i))}"
                         for i in chosen))
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
        with st.expander(f"Patient metadata for {literal(model_id)} (the same for every image)"):
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
            with st.spinner(f"Loading {len(chosen)} model(s)…"):
                classifiers = [session_models.classifier_for(m) for m in chosen]
            job = evaluate_job(classifiers, labelled, answers or None, only_known)
            state.forget_cancelled(job.key)  # asked for again: run it afresh
            state.start_evaluation(executor().submit(job))
    except (ev.EvaluationError, StudyError, ModelError) as error:
        show_error(error)  # the uploader keeps its files



def trust_section() -> None:
    """Which explanation method to believe for the first chosen model on this set: ROAD
    per method (core.evaluate.trust), a job of its own beside the evaluation."""
    with st.expander("Which explanation to believe (ROAD per method)"):
        offered = session_models.methods_for(chosen[0]) if chosen else list(METHODS)
        methods = st.multiselect("Methods", offered, default=["gradcam"],
                                 format_func=lambda m: METHODS[m].title, key="trust_methods")
        limit = st.number_input("Images (the first N of the set; 0: all)", min_value=0,
                                value=0, step=1, key="trust_limit")
        target = chosen[0] if chosen else None
        if st.button("Measure the methods", icon=":material/rule:",
                     disabled=not (chosen and methods), key="trust_start"):
            try:
                labelled = labelled_set()
                if labelled is not None:
                    classifier = session_models.classifier_for(target)
                    job = trust_job(classifier, labelled, methods, TRUST_SETTINGS["seeds"],
                                    TRUST_SETTINGS["percentiles"], int(limit) or None)
                    state.forget_cancelled(job.key)
                    st.session_state[TRUST] = job
            except (ev.EvaluationError, StudyError, ModelError) as error:
                show_error(error)
        job = st.session_state.get(TRUST)
        if job is None:
            st.caption("ROAD (Rong et al. 2022) of each method's map of the predicted class "
                       "on every image, against random maps at the method's own resolution "
                       f"over {TRUST_SETTINGS['seeds']} seeds.")
            return
        found = jobs.show(jobs.submit(job), f"Measuring {', '.join(job.spec.params['methods'])}",
                          (ev.EvaluationError,), key="trust")
        if found is not None:
            trust_table(found)


def trust_table(found: ev.Trust) -> None:
    st.markdown(f"**{literal(found.model)}** on {literal(found.set_name)}: "
                f"{found.seeds} random maps per image, percentiles "
                f"{', '.join(map(str, found.percentiles))}")
    st.dataframe(found.table(), hide_index=True, width="stretch", column_config={
        "method": "method", "n": st.column_config.NumberColumn("images"),
        "road_combined": st.column_config.NumberColumn(
            "ROAD combined", format="%+.3f",
            help="Mean over the images of (LeRF - MoRF) / 2: higher is better, 0 is random"),
        "road_low": st.column_config.NumberColumn("95% low", format="%+.3f",
                                                  help="Bootstrap over the images"),
        "road_high": st.column_config.NumberColumn("95% high", format="%+.3f"),
        "better": st.column_config.NumberColumn("▲ better than random"),
        "indistinguishable": st.column_config.NumberColumn("≈ not distinguishable"),
        "worse": st.column_config.NumberColumn("▼ worse than random"),
        "beats_inversion": st.column_config.NumberColumn(
            "beats its inversion", help="Images where the map scores above 1 - map"),
        "method_seconds": st.column_config.NumberColumn("map s", format="%.2f"),
        "road_seconds": st.column_config.NumberColumn("ROAD s", format="%.2f"),
        "road_multiple": st.column_config.NumberColumn("ROAD / map", format="%.1fx"),
    })
    for method, t in found.methods.items():
        for error in t.errors[:3]:
            st.caption(literal(f"{method} on {error.name}: {error.reason}"))


trust_section()

run = state.evaluation()
if run is None:
    st.info("Choose one or more models and a labelled set, then Evaluate.",
            icon=":material/fact_check:")
    st.stop()
models_run = run.handle.spec.params["models"]
result = jobs.show(state.keep_evaluation(jobs.submit(run.handle.job)).handle,
                   f"Evaluating {', '.join(models_run)}", (ev.EvaluationError,))
if result is None:
    st.stop()
# One model's job gives its Evaluation, several a Scoreboard: the page shows a Scoreboard.
scores = (result if isinstance(result, ev.Scoreboard)
          else ev.Scoreboard(result.set_name, {result.model: result}, {}))

st.subheader(f"On {literal(scores.set_name)}")
for model_id, error in scores.errors.items():
    show_error(f"{model_id} not evaluated: {error}")
st.dataframe(scores.table(), hide_index=True, width="stretch", column_config={
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
if not scores.evaluations:
    st.stop()

look = st.columns([1, 1, 2])
opacity = look[0].slider("Map opacity", 0.0, 1.0, 0.4, 0.05, key="evaluate_opacity")
colormap = look[1].selectbox("Colormap", list(COLORMAPS), key="evaluate_colormap")


def show_cell(model_id: str, evaluation: ev.Evaluation, cell: tuple[str, str]) -> None:
    rows = evaluation.cell(*cell)
    st.markdown(f"**True {literal(cell[0])}, predicted {literal(cell[1])}: {len(rows)} image(s)**"
                + (f" (the first {MAX_SHOWN})" if len(rows) > MAX_SHOWN else ""))
    explainer = session_models.classifier_for(model_id, method="gradcam")
    grid = st.columns(4)
    for i, row in enumerate(rows[:MAX_SHOWN]):
        image = evaluation.images[row]
        ranked = sorted(zip(evaluation.labels, evaluation.probabilities[row], strict=True),
                        key=lambda pair: -pair[1])
        words = ", ".join(f"{label} {p:.2f}" for label, p in ranked)
        with grid[i % 4]:
            # The image prepared exactly as it was evaluated (as core.evaluate.explain_row).
            try:
                study = evaluation.labelled_set.open(image)
                frame = study.default_index()
                model_input = explainer.card.prepare(study, frame=frame,
                                                     metadata=evaluation.metadata)
            except (StudyError, ValueError) as error:
                st.caption(literal(f"{image.name}: no map ({error})"))
                continue
            explanation = jobs.show(jobs.submit(explain_job(explainer, model_input, "gradcam")),
                                    f"{image.name}: Grad-CAM", EXPECTED, key=f"{model_id}_")
            if explanation is None:
                continue
            st.image(overlay(study.display(frame), explanation.map, opacity, colormap),
                     caption=f"{literal(image.name)}: Grad-CAM for "
                             f"'{literal(explanation.label)}'",
                     width="stretch")
            st.caption(literal(words))


def show(model_id: str, evaluation: ev.Evaluation) -> None:
    figures = st.columns(4)
    figures[0].metric("Accuracy", f"{evaluation.accuracy:.1%}",
                      help=f"{int(evaluation.correct.sum())} of {evaluation.n} images")
    for column, title, value in ((figures[1], "Macro F1", evaluation.macro_f1),
                                 (figures[2], "Macro AUC", evaluation.macro_auc),
                                 (figures[3], "ECE", evaluation.ece)):
        column.metric(title, "—" if value is None else f"{value:.3f}")
    for note in evaluation.notes:
        st.caption(literal(note))
    outside = evaluation.domain_note()
    if outside:
        st.warning(literal(outside), icon=":material/warning:")
    else:
        st.caption(literal(evaluation.domain_caption()))
    if evaluation.skipped:
        with st.expander(f"{len(evaluation.skipped)} file(s) skipped"):
            st.markdown("\n".join(f"- {literal(s.name, code=True)}: {literal(s.reason)}"
                                   for s in evaluation.skipped))
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
            key=f"evaluate_cm_{run.number}_{model_id}", config={"displayModeBar": False})
    cells = {(t, p): count for t, p, count in evaluation.cells()}
    choice_key = f"evaluate_cell_{run.number}_{model_id}"
    # A new click on the heatmap picks its cell in the selectbox below; the selectbox
    # stays the user's to change until the next click.
    points = event.selection.points
    state.follow_click(choice_key, tuple(points[0]["customdata"][:2]) if points else None,
                       cells)
    with right:
        st.markdown("**ROC curves**, one class against the rest")
        st.plotly_chart(charts.roc_curves(evaluation.roc, evaluation.roc_auc), width="stretch",
                        key=f"evaluate_roc_{run.number}_{model_id}")
    st.markdown("**Reliability diagram**: is the model as sure as it is right?")
    r = evaluation.calibration
    st.plotly_chart(charts.reliability(r.edges, r.confidence, r.accuracy, r.count,
                                       evaluation.ece), width="stretch",
                    key=f"evaluate_rel_{run.number}_{model_id}")

    cell = st.selectbox(
        "Images of a cell", list(cells), index=None, key=choice_key,
        placeholder="Click a cell of the confusion matrix, or choose one here",
        format_func=lambda c: f"true {c[0]} → predicted {c[1]} ({cells[c]})")
    if cell is not None:
        show_cell(model_id, evaluation, cell)


tabs = st.tabs([literal(model_id) for model_id in scores.evaluations])
for tab, (model_id, evaluation) in zip(tabs, scores.evaluations.items(), strict=True):
    with tab:
        show(model_id, evaluation)
