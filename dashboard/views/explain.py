"""Explain: a study, a model's prediction on it, the maps of what drove it, and whether
those maps deserve trust.

The answer comes first: the study, its maps and the prediction side by side, then the
controls that only change the picture, then the evidence (curves, the sanity check).
Each map, its deletion/insertion AUCs and the sanity check are jobs (core.jobs): the page
draws what is done and the progress of the rest, and never waits for them."""

import numpy as np
import streamlit as st

from core import models
from core.explain import METHODS, ExplainError, black, find_method
from core.explain import costs as method_costs
from core.explain import metrics as trust
from core.explain.backend.graph import spatial_layers
from core.explain.metrics.localisation import against, mask_region, sentence
from core.explain.overlay import COLORMAPS, overlay
from core.jobs import (
    data_randomisation_job,
    executor,
    explain_job,
    faithfulness_job,
    sanity_job,
    trainer,
)
from core.models import domain
from core.studies import StudyError
from core.studies import viewing as viewer
from core.studies.masks import fit, read_labels
from core.train import sanity as randomisation
from dashboard import state
from dashboard.components import charts, jobs
from dashboard.components.models import (
    available,
    classifier_for,
    metadata_form,
    methods_for,
    purpose,
)
from dashboard.components.studies import choose_study
from dashboard.components.text import literal, show_error

DEFAULT_MODEL = "braintumor-xception"
AUTOMATIC = "automatic"
GRID = 3  # pictures per row: the study and two maps beside it, then three maps a row
EXPECTED = (ExplainError, models.ModelError)  # failures that are notes, not faults

st.title("Explain")
st.caption("Research and teaching; not for diagnosis.")

by_id = available()
with st.sidebar:
    model_id = st.selectbox("Model", list(by_id), index=list(by_id).index(DEFAULT_MODEL))
    st.caption(literal(purpose(model_id)))
    card = by_id[model_id]
    metadata = metadata_form(card, f"explain_meta_{model_id}")
    chosen_study = choose_study(card, "explain")

if chosen_study is None:
    st.info("Choose a sample or upload a study in the sidebar.", icon=":material/arrow_back:")
    st.stop()
study, token = chosen_study.study, chosen_study.token
plane, frame, window = chosen_study.plane, chosen_study.frame, chosen_study.window
with st.sidebar:
    # A mask of the study (a lesion's outline, a segmenter's output): where each map's
    # energy lies against it (the pointing games), beside the maps.
    mask = None
    mask_file = st.file_uploader("A mask of this study (NIfTI, DICOM SEG or PNG)",
                                 key=f"explain_mask_{token}",
                                 help="Measures each map's localisation: the share of its "
                                      "energy inside the mask, and whether its peak is.")
    if mask_file is not None:
        try:
            mask = fit(read_labels(mask_file.name, mask_file.getvalue(), name=mask_file.name),
                       study)
        except StudyError as error:
            show_error(error)

try:
    # Loaded once per server (app.py starts loading the built-in ones at its start).
    with st.spinner(f"Loading {literal(model_id)}…"):
        classifier = classifier_for(model_id)
    model_input = card.prepare(study, frame=frame, plane=plane, window=window,
                               metadata=metadata)
    prediction = classifier.predict(model_input)  # one forward pass: quick, so done here
    shown = study.display(frame, window, plane)
except (StudyError, models.ModelError) as error:
    # A study that opened but cannot be prepared or shown: one line; the sidebar stays.
    show_error(error)
    st.stop()

# Within the model's domain? One more forward pass to its penultimate layer (core).
checked = domain.check(classifier, model_input)
outside = domain.warning(card, study, checked)
if outside:
    st.warning(literal(outside), icon=":material/warning:")


def expected_seconds(name: str, values: dict | None = None) -> float | None:
    # Its last time on this model in this server once it has run (scaled by its counting
    # option), else its shipped multiple times a forward pass of the model it runs on.
    runner = classifier_for(model_id, name)
    return method_costs.expected_seconds(name, runner.forward_seconds(model_input.batch),
                                         values, runner.fingerprint)


def with_cost(name: str, values: dict | None = None) -> str:
    expected = expected_seconds(name, values)
    if expected is None:
        return METHODS[name].title
    measured = method_costs.is_measured(classifier_for(model_id, name).fingerprint, name,
                                        values)
    when = f"about {expected:.1f} s" if expected >= 0.1 else "under 0.1 s"
    return METHODS[name].title + f" {when}{' (measured here)' if measured else ''}"


controls = st.columns([2.6, 1.1, 2.3])
# The picker's labels are the titles only: an estimate in them would change once a method
# has run (calibrated), and changed option labels reset the picker. The estimates go in
# the caption under it, and in the parameters expander. The attention methods are offered
# for a ViT only (every other model refuses them).
chosen = controls[0].multiselect(
    "Methods", methods_for(model_id), default=["gradcam"],
    format_func=lambda n: METHODS[n].title,
    help="Several methods are shown side by side on the same image; the time each is "
         "expected to take here is under the picker.")
target = controls[1].selectbox("Class to explain", card.labels,
                               index=card.labels.index(prediction.label))
# Gradient and CAM methods run on the Keras model, or on the Keras port of an ONNX one.
keras_model = classifier_for(model_id, "gradcam").keras_model
layers = spatial_layers(keras_model) if keras_model is not None else []
layer = controls[2].selectbox(
    "Layer (CAM methods)", [AUTOMATIC, *reversed(layers)], disabled=not layers,
    format_func=lambda p: f"automatic: {layers[-1]}" if p == AUTOMATIC and layers else p,
    help="The spatial layer the CAM methods read; automatic is the last one.")
layer = None if layer == AUTOMATIC else layer

# The answer is drawn here, above the controls that only change how it looks; those are
# made first (below it on the page) because the pictures need their values.
answer = st.container(key="answer")
look = st.columns([1, 1, 2])
opacity = look[0].slider("Opacity", 0.0, 1.0, 0.4, 0.05)
colormap = look[1].selectbox("Colormap", list(COLORMAPS))
with look[2]:
    with_metrics = st.toggle("Faithfulness (ROAD) beside each map", value=True,
                             help="ROAD (Rong et al. 2022): the class probability with the "
                                  "most and the least relevant pixels imputed from their "
                                  "neighbours; combined score (LeRF - MoRF) / 2, higher is "
                                  "better. Against random maps at the method's own resolution "
                                  "over 4 seeds: a verdict only where the difference holds. "
                                  "Deletion and insertion AUCs (Petsiuk et al. 2018) follow.")

# Each method's options, with their documented defaults, and what a run will cost.
options: dict[str, dict] = {}
with st.expander("Parameters and expected cost", expanded=False):
    for name in chosen:
        m = METHODS[name]
        heading = st.empty()
        values = {}
        for key, option in m.options.items():
            if key == "baseline":
                continue  # black, in the model's input units: see the caption below
            if option.kind is int:
                values[key] = st.number_input(
                    f"{m.title}: {key}", value=int(option.default), step=1,
                    min_value=None if option.low is None else int(option.low),
                    max_value=None if option.high is None else int(option.high),
                    help=option.help, key=f"option_{name}_{key}")
            else:
                values[key] = st.number_input(
                    f"{m.title}: {key}", value=float(option.default),
                    min_value=option.low, max_value=option.high, help=option.help,
                    key=f"option_{name}_{key}", format="%.3f")
        options[name] = values
        expected = expected_seconds(name, values)
        cost = f" · about {expected:.1f} s" if expected is not None else ""
        heading.markdown(f"**{m.title}** ([paper]({m.paper})){cost}")
    forward = classifier.forward_seconds(model_input.batch)
    st.caption(f"One forward pass of {literal(model_id)}: {forward * 1000:.0f} ms here; costs are "
               f"first guesses from multiples measured by bench/explain_speed.py, then "
               f"the time each method took here on this model. Baselines "
               f"(Integrated Gradients, occlusion, RISE, deletion) are black: "
               f"{black(card.input_spec):g} in the model's input units.")

if chosen:  # under the picker: each chosen method's expected time at its options
    controls[0].caption("Expected here: " + " · ".join(
        with_cost(name, options.get(name)) for name in chosen))

with st.expander("What the model saw"):
    st.image(model_input.seen, caption=f"{card.input_shape[1]}x{card.input_shape[0]} input",
             output_format="PNG")
    st.markdown("\n".join(f"1. {literal(step)}" for step in model_input.steps))

# -- the answer: the study, its maps, the prediction -------------------------------------------

curves = {}  # method title -> its faithfulness (ROAD, deletion, insertion), for the curves
with answer:
    pictures, said = st.columns([3, 1], gap="medium")
with said:
    st.metric("Model output", literal(prediction.label))
    if prediction.label in card.label_names:
        st.caption(literal(f"{prediction.label}: {card.label_names[prediction.label]}"))
    source_of = "softmax of its logits" if card.outputs == "logits" else "the model's own output"
    st.caption(f"Probability {prediction.probabilities[prediction.label]:.1%} ({source_of}) "
               f"· {literal(model_id)} on {classifier.device}")
    st.caption(literal(checked.sentence()), help=domain.METHOD_WORDS)
    st.plotly_chart(charts.probabilities(prediction.probabilities, prediction.label),
                    width="stretch", config={"displayModeBar": False})
    st.caption("A model's output, not a diagnosis.")

with pictures, st.container(key="overlay"):
    cells = [None, *chosen]  # the study first, then each method's map
    per_row = min(GRID, len(cells))
    for start in range(0, len(cells), per_row):
        row = st.columns(per_row)
        for cell, name in zip(row, cells[start:start + per_row], strict=False):
            with cell:
                if name is None:
                    view = study.view(frame, plane)
                    st.image(shown, caption=f"{literal(study.name)} · {view.label}",
                             width="stretch", output_format="PNG")
                    used = model_input.window
                    st.caption(literal(viewer.summary(study)
                                       + (f" · window {used.describe(study.units)}"
                                          if used else "")))
                    continue
                title = METHODS[name].title
                job = explain_job(classifier_for(model_id, name), model_input, name, target,
                                  layer, options.get(name))
                explanation = jobs.show(jobs.submit(job), title, EXPECTED)
                if explanation is None:
                    continue
                st.image(overlay(shown, explanation.map, opacity, colormap),
                         caption=f"{title} for '{literal(explanation.label)}' on "
                                 f"{literal(study.name)}",
                         width="stretch")
                where = f"layer {literal(explanation.layer)} · " if explanation.layer else ""
                extra = explanation.info.get("completeness_error")
                completeness = (f" · completeness error {extra[0]:.1%}" if extra else "")
                st.caption(f"{where}{explanation.seconds * 1000:.0f} ms{completeness}")
                if explanation.caption:  # flat, or equal to another method by construction
                    st.caption(literal(explanation.caption))
                if mask is not None:
                    region, what = mask_region(mask, frame, plane)
                    st.caption(literal(sentence(against(explanation.map, region), what)))
                if explanation.empty:
                    st.info(f"Nothing speaks for '{literal(explanation.label)}' here: the map is "
                            "empty.", icon=":material/info:")
                elif with_metrics:
                    check = faithfulness_job(classifier_for(model_id, name), model_input, job,
                                             explanation, black(card.input_spec),
                                             trust.INTERACTIVE)
                    scores = jobs.show(jobs.submit(check), "Faithfulness (ROAD)",
                                       EXPECTED, key=name)
                    if scores is not None:
                        st.caption(scores.summary)
                        curves[title] = scores

if not chosen:
    with answer:
        st.info("Choose one or more methods above.", icon=":material/info:")

if with_metrics and curves:
    with st.expander("ROAD curves against random maps"):
        st.plotly_chart(charts.faithfulness(curves), width="stretch")
        st.caption("One plot per method. Random maps: noise on the CAM layer's grid for CAM "
                   "methods, on RISE's cells and occlusion's patch positions, smoothed pixel "
                   "noise otherwise; the band spans 95% of them over the seeds.")

# -- the sanity check ---------------------------------------------------------------------------

st.subheader("Sanity check")
st.caption("Adebayo et al. 2018: randomise the model's weights layer by layer from the top; "
           "a map that explains the model should change (low rank correlation). One that "
           "stays the same shows the image, not the model.")
checkable = [n for n in chosen if find_method(n).gradients or find_method(n).uses_layer]
if keras_model is None or not checkable:
    st.caption("Needs a Keras model and a gradient or CAM method.")
else:
    sanity_cols = st.columns([2, 1, 1], vertical_alignment="bottom")
    check_method = sanity_cols[0].selectbox("Method to check", checkable,
                                            format_func=lambda m: METHODS[m].title)
    steps = sanity_cols[1].number_input("Steps (0: one per layer)", 0, 200, 8,
                                        key="sanity_steps",
                                        help="Layers are randomised in this many groups.")
    check_job = sanity_job(classifier_for(model_id, "gradcam"), model_input, check_method,
                           card.labels.index(target), layer, steps or None,
                           options.get(check_method))
    if sanity_cols[2].button("Sanity check", icon=":material/science:"):
        state.forget_cancelled(check_job.key)  # asked for again: run it afresh
        state.set_sanity_check(executor().submit(check_job))
    held = state.sanity_check()
    # Shown while it is the check of what the page shows (this input, method, class...).
    check = None
    if held is not None and held.key == check_job.key:
        handle = jobs.submit(held.job)
        state.set_sanity_check(handle)
        check = jobs.show(handle, f"Sanity check of {METHODS[check_method].title}", EXPECTED,
                          key="sanity")
    if check is not None:
        st.plotly_chart(charts.sanity(check.layers, check.spearman, check.empty,
                                      METHODS[check_method].title, check.flat),
                        width="stretch")
        verdict = {True: st.success, False: st.warning}.get(check.passed, st.info)
        verdict(literal(check.summary))  # it names layers: a model's own words
        st.caption(f"Rule: {literal(trust.sanity.RULE)}.")
        tiles = [(check.original, "original model")] + [
            (m, f"random down to {literal(name)}: "
                + ("empty map" if empty else "flat map" if flat else f"ρ = {rho:.2f}"))
            for m, name, rho, empty, flat in zip(check.maps, check.layers, check.spearman,
                                                 check.empty, check.flat, strict=True)]
        # One row of columns per five tiles, so every row starts level (one set of five
        # columns let the captions' line counts stagger the pictures).
        with st.container(key="sanity_grid"):
            for start in range(0, len(tiles), 5):
                row = st.columns(5)
                for cell, (picture, caption) in zip(row, tiles[start:start + 5],
                                                    strict=False):
                    cell.image(overlay(model_input.seen, picture, opacity, colormap),
                               caption=caption, width="stretch")

# -- the data-randomisation test (models trained in MedLens) ------------------------------------

trained = state.trained_models().get(model_id)
if trained is None and card.origin == "trained in MedLens" and checkable:
    trained = randomisation.from_card(classifier_for(model_id))  # uploaded again
if trained is not None and checkable and trained.test_images is not None:
    st.subheader("Data-randomisation test")
    st.caption("Adebayo et al. 2018, Sec. 4: the same architecture, config and seed trained "
               "on the same images with their labels shuffled (a model that can only "
               "memorise). If a method draws the same maps for both, it shows the image, not "
               "what the model learnt. The twin is a training run: it waits for a training "
               "slot like any other.")
    random_cols = st.columns([2, 1], vertical_alignment="bottom")
    random_method = random_cols[0].selectbox("Method to test", checkable,
                                             format_func=lambda m: METHODS[m].title,
                                             key="randomisation_method")
    random_job = data_randomisation_job(trained, random_method, trained.training_data,
                                        options=options.get(random_method))
    if random_cols[1].button("Data-randomisation test", icon=":material/shuffle:"):
        state.forget_cancelled(random_job.key)
        trainer().submit(random_job)
    held = trainer().get(random_job.key)
    if held is not None:
        tested = jobs.show(held, f"Data-randomisation test of {METHODS[random_method].title}",
                           EXPECTED, key="randomisation", on=trainer())
        if tested is not None:
            verdict = {"pass": st.success, "fail": st.warning}.get(tested.verdict, st.info)
            # Accuracies as the Train page shows them (3 decimals), with chance beside them:
            # the twin is expected near chance.
            def accuracy(test: dict) -> str:
                value = test.get("accuracy")
                return "n/a" if value is None else f"{value:.3f}"

            verdict(f"{tested.verdict.capitalize()}: median Spearman ρ "
                    f"{tested.median:.2f} between the two models' maps over "
                    f"{len(tested.spearman)} held-out images. Held-out accuracy: trained "
                    f"{accuracy(tested.trained_test)}, shuffled-label twin "
                    f"{accuracy(tested.twin_test)} (chance "
                    f"{1 / len(trained.card.labels):.3f}).")
            st.caption(f"Rule: {literal(randomisation.RULE)}.")
            with st.container(key="randomisation_grid"):
                for start in range(0, len(tested.spearman), 4):
                    row = st.columns(4)
                    for cell, i in zip(row, range(start, min(start + 4, len(tested.spearman))),
                                       strict=False):
                        seen = np.round(np.clip(tested.images[i, ..., 0], 0, 1) * 255
                                        ).astype(np.uint8)
                        rho = tested.spearman[i]
                        label = trained.card.labels[int(tested.labels[i])]
                        cell.image([overlay(seen, tested.trained_maps[i], opacity, colormap),
                                    overlay(seen, tested.twin_maps[i], opacity, colormap)],
                                   # Each map explains the image's true label.
                                   caption=[f"trained · for {literal(label)}",
                                            "shuffled-label twin · " + (
                                                "flat" if not np.isfinite(rho)
                                                else f"ρ = {rho:.2f}")],
                                   width=140)

with st.expander("Model card"):
    st.json(card.to_dict())
