"""Segment: a segmentation model's mask of a study, drawn as a viewer draws segments (fill
and outline per label, in all three planes), each label's volume, the comparison with a
ground truth (Dice, IoU, HD95, per slice), and Seg-Grad-CAM: why the model drew a label
where it did.

The mask of a whole volume is one job, computed once per model and study and kept:
scrolling, another plane or other colours only redraw it."""

from dataclasses import replace
from functools import partial

import streamlit as st

from core import models
from core.explain import METHOD_TITLES, ExplainError, segmentation_layers
from core.jobs import explain_region_job, score_job, segment_job
from core.segment import data as volumes
from core.segment.explain import REGIONS, region_methods
from core.segment.run import model_plane
from core.studies import StudyError, open_study
from core.studies import viewing as viewer
from core.studies.masks import fit, read_labels
from dashboard import state
from dashboard.components import charts, jobs
from dashboard.components.models import available, classifier_for, purpose
from dashboard.components.text import literal, show_error
from dashboard.components.widgets import mask_style, volumes_table, which_image, window_choices

SOURCES = ["Built-in volume", "Upload"]



def jump_to(slider: str, chart: str | None = None, number: int | None = None) -> None:
    """Show slice `number` (1-based), or the one clicked on the per-slice chart."""
    if chart is not None:
        points = st.session_state[chart]["selection"]["points"]
        if not points:
            return
        number = int(points[0]["x"])
    st.session_state[slider] = number


EXPECTED = (ExplainError, models.ModelError)

st.title("Segment")
st.caption("Research and teaching; not for diagnosis.")

by_id = available("segmentation")
if not by_id:
    st.info("No segmentation model is installed.", icon=":material/info:")
    st.stop()

study = truth = None
token = "none"
own_volume = False  # the built-in volume the model was trained on
errors: list[str] = []
with st.sidebar:
    model_id = st.selectbox("Model", list(by_id), **state.kept("segment_model"))
    st.caption(literal(purpose(model_id)))
    card = by_id[model_id]
    source = st.radio("Study", SOURCES, horizontal=True, **state.kept("segment_source"))
    try:
        if source == SOURCES[0]:
            offered = volumes.samples()
            names = [s.name for s in offered]
            own = [i for i, s in enumerate(offered) if s.model == model_id]
            chosen = st.selectbox("Volume", range(len(offered)), format_func=names.__getitem__,
                                  index=own[0] if own else 0,
                                  key=f"segment_sample_{model_id}")
            sample = offered[chosen]
            # The volume this model was trained on (the others it never saw).
            own_volume = sample.model == model_id and sample.truth is not None
            with st.spinner("Reading the volume…"):
                study, truth = sample.study, sample.truth
            token = f"sample-{chosen}"
            st.caption(f"Ground truth: {literal(sample.truth.name)}" if sample.truth
                       else "No tissue ground truth ships with this volume.")
        else:
            upload = st.file_uploader("Study: DICOM, NIfTI, PNG or a zip of a series",
                                      key="segment_upload")
            mask_upload = st.file_uploader("Ground truth (optional): NIfTI, DICOM SEG or PNG",
                                           key="segment_truth_upload")
            if upload is not None:
                study = open_study(upload.getvalue(), name=upload.name)
                token = f"upload-{upload.file_id}"
                if mask_upload is not None:
                    truth = fit(read_labels(mask_upload.name, mask_upload.getvalue(),
                                            name=mask_upload.name), study)
    except (StudyError, models.ModelError) as error:
        errors.append(str(error))

for error in errors:
    show_error(error)
if study is None:
    if not errors:
        st.info("Choose a volume or upload a study in the sidebar.",
                icon=":material/arrow_back:")
    st.stop()

with st.sidebar:
    plane, index = which_image(study, f"segment_{token}")
    window = None
    try:
        # How the picture is shown; the model sees its own window whatever is picked here.
        choices, default = window_choices(token, study)
        trained = card.window_for(study)
        if trained is not None:
            choices = {**choices, f"{model_id}'s own: {trained.describe(study.units)}": trained}
        if choices:
            names = list(choices)
            window = choices[st.selectbox("Window", names, index=names.index(default)
                                          if default in names else 0,
                                          key=f"segment_window_{token}")]
    except StudyError as error:
        show_error(error)

try:
    with st.spinner(f"Loading {literal(model_id)}…"):
        segmenter = classifier_for(model_id)
    # The whole volume, in the plane the model was trained in: one job, kept.
    segmented = segment_job(segmenter, study, model_plane(card, study))
    handle = jobs.submit(segmented)
except (StudyError, models.ModelError) as error:
    show_error(error)
    st.stop()

outside = card.outside_domain(study)
if outside:
    st.warning(literal(outside), icon=":material/warning:")
result = jobs.show(handle, f"Segmenting {study.name} with {model_id}", EXPECTED,
                   key="segment")
if result is None:
    st.stop()

mask = result.mask
with st.sidebar:
    st.subheader("Masks")
    style = mask_style(mask.segments, f"segment_{model_id}")

try:
    columns = st.columns(2 if truth is not None else [3, 2])
    with columns[0]:
        pic = viewer.picture(study, index, window, plane, mask=mask, style=style)
        with st.container(key="segment_image"):
            st.image(viewer.png(pic.image), output_format="PNG", width="stretch",
                     caption=f"{literal(model_id)}'s mask · {pic.view.label}")
    if truth is not None:
        with columns[1]:
            # The toggles name segments: the truth's own numbers may differ.
            hidden = {s.name.casefold() for s in mask.segments if s.number in style.hidden}
            truth_style = replace(style, hidden=frozenset(
                s.number for s in truth.segments if s.name.casefold() in hidden))
            truth_pic = viewer.picture(study, index, window, plane, mask=truth,
                                       style=truth_style)
            st.image(viewer.png(truth_pic.image), output_format="PNG", width="stretch",
                     caption=f"Ground truth ({literal(truth.name)}) · {pic.view.label}")
    st.caption(viewer.spacing_caption(pic, study))
except StudyError as error:
    show_error(error)
    st.stop()

volumes_ml = result.volumes_ml()
truth_ml = truth.volumes_ml() if truth is not None else {}
with (columns[1] if truth is None else st.container()):
    st.subheader("Volumes")
    if volumes_ml:
        # The table is the legend too: each label's colour in its first cell.
        volumes_table(mask.segments, volumes_ml, truth_ml)
    else:
        st.caption("Pixel spacing unknown: volumes cannot be measured.")
    st.caption(f"{len(result.indices)} {'slices' if result.plane else 'images'} "
               f"({result.plane or 'as stored'}) in {result.seconds:.1f} s.")
    with st.expander("What the model was given"):
        for step in result.steps:
            st.markdown(f"- {literal(step)}")

if truth is not None:
    st.subheader("Against the ground truth")
    # A volume's comparison takes seconds: one job per mask and truth, kept.
    scores = jobs.show(jobs.submit(score_job(segmented, mask, truth)),
                       "Comparing with the ground truth", EXPECTED, key="segment_score")
    if scores is not None:
        scored = scores.comparison
        st.dataframe(
            [{"label": name, "Dice": scored.dice[name], "IoU": scored.iou[name],
              "HD95 (mm)": scored.hd95_mm[name]} for name in scored.labels],
            hide_index=True, width="stretch",
            column_config={"Dice": st.column_config.NumberColumn(format="%.3f"),
                           "IoU": st.column_config.NumberColumn(format="%.3f"),
                           "HD95 (mm)": st.column_config.NumberColumn(format="%.2f")})
        st.caption(literal(scored.convention))
        held = card.held_out_slices if own_volume else None
        if held is not None:
            st.caption(f"{literal(model_id)} was trained on this volume: only {card.plane} "
                       f"slices {held[0] + 1}-{held[1] + 1} were held out (shaded), so these "
                       "figures mix slices it saw with slices it did not; its card gives "
                       "the held-out figures.")
        per_slice = scores.slices[plane]
        slider = f"segment_{token}_index_{plane}"  # which_image's slice slider
        chart = f"segment_slices_{token}_{plane}"
        # Callbacks run before the next run, so they may move the slider it then draws.
        st.plotly_chart(charts.slice_dice(per_slice, index,
                                          held if plane == card.plane else None),
                        on_select=partial(jump_to, slider, chart), selection_mode="points",
                        key=chart)
        jump = st.columns(max(len(per_slice), 1))
        for column, (name, found) in zip(jump, per_slice.items(), strict=False):
            if found.worst is not None:
                column.button(f"Worst {name} slice ({found.worst + 1})",
                              key=f"segment_worst_{name}", on_click=jump_to,
                              args=(slider, None, found.worst + 1))

st.subheader("Why: Seg-Grad-CAM")
st.caption("The map of what raised one label's score over a region (Vinogradova et al. "
           "2020): the sum of the label's logits over the region, explained like a class.")
if plane != result.plane and result.plane is not None:
    st.info(f"The model works on {result.plane} slices: switch to the {result.plane} plane "
            "to explain one.", icon=":material/info:")
    st.stop()
keras_model = segmenter.keras_model
if keras_model is None:
    st.info("Explaining needs a Keras model (this one runs on ONNX).", icon=":material/info:")
    st.stop()
model_input = card.prepare(study, frame=index, plane=plane)
controls, masked, mapped = st.columns([1, 1, 1])
with controls:
    labels = [s.name for s in mask.segments]
    label = st.selectbox("Label", labels, key=f"segment_label_{model_id}")
    region = st.radio("Region", list(REGIONS), key="segment_region", format_func=REGIONS.get)
    box = None
    if region == "box":
        # In the slice's pixels as shown (the picture's, before it is enlarged).
        rows, cols = model_input.source_shape
        box = tuple(st.number_input(f"{name} (px)", 0, size, default, key=f"segment_box_{name}")
                    for name, size, default in (("x0", cols, cols // 4), ("y0", rows, rows // 4),
                                                ("x1", cols, 3 * cols // 4),
                                                ("y1", rows, 3 * rows // 4)))
    layer = st.selectbox("Layer", segmentation_layers(keras_model),
                         key=f"segment_layer_{model_id}",
                         help="The bottleneck first: Vinogradova et al. found it most telling; "
                              "the decoder layers follow, coarse to fine.")
    method = st.selectbox("Method", region_methods(), key="segment_method",
                          format_func=METHOD_TITLES.get)
number = mask.segment(label).number
with masked:
    only = viewer.MaskStyle(fill=style.fill, outline=style.outline,
                            hidden=frozenset(s.number for s in mask.segments) - {number})
    st.image(viewer.png(viewer.picture(study, index, window, plane, mask=mask,
                                       style=only).image),
             output_format="PNG", width="stretch",
             caption=f"{literal(model_id)}'s {literal(label)} · {pic.view.label}")
explained = jobs.submit(explain_region_job(segmenter, model_input, method,
                                           card.labels.index(label), region, box, layer))
with mapped:
    outcome = jobs.show(explained, f"{METHOD_TITLES[method]} of {label}", EXPECTED,
                        key="segment_explain")
    if outcome is not None:
        st.image(viewer.png(outcome.overlay(study.display(index, window, plane))),
                 output_format="PNG", width="stretch",
                 caption=f"{literal(outcome.title)} · {literal(label)} over "
                         f"{literal(REGIONS[region])} · {literal(outcome.layer or '')}")
if outcome is not None:
    reference, what = (truth, "the ground truth's") if truth is not None else \
        (mask, "the model's")
    kept = next((s.number for s in reference.segments
                 if s.name.casefold() == label.casefold()), None)
    if kept is not None:
        st.caption(literal(outcome.localisation_text(reference.view(index, plane) == kept,
                                                     f"{what} {label}")))
    if outcome.info.get("flat"):
        st.caption("The map is nearly flat: it says little about where.")
