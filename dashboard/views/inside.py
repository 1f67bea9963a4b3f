"""Inside: what a model is made of and what each of its layers sees, for any Keras model
MedLens holds (built-in, uploaded, trained here; nested backbones included).

One view at a time (the architecture, feature maps, filters, what a unit wants to see,
how a convolution computes, attention, the GAN's latent space), so a page run computes
only what is shown. The layer picked in the sidebar, or by a click on the architecture,
is the one every view reads. Everything is computed in `core.inside`; the page draws it.
"""

from functools import partial

import numpy as np
import streamlit as st

from core import models
from core.explain import ExplainError
from core.explain.backend.graph import last_spatial_layer, spatial_layers
from core.inside import attention, features, filters, latent, pictures, teaching
from core.inside import graph as graphs
from core.inside.maximise import ChannelUnit, ClassUnit
from core.jobs import executor, inside_stats_job, maximise_job
from core.models.samples import sample_batch
from core.nets.vit import patch_grid
from core.studies import StudyError
from dashboard import state
from dashboard.components import charts, jobs
from dashboard.components.models import available, classifier_for, metadata_form, purpose
from dashboard.components.studies import choose_study
from dashboard.components.text import literal, show_error

DEFAULT_MODEL = "braintumor-xception"
EXPECTED = (ExplainError, models.ModelError, ValueError)  # refusals are notes, not faults
LAYER_KEY = "inside_layer"
GRAPH_KEY = "inside_graph"

ARCHITECTURE, FEATURES, FILTERS, UNIT, CONVOLUTION, ATTENTION, LATENT = (
    "Architecture", "Feature maps", "Filters", "What a unit wants to see",
    "How a convolution computes", "Attention", "Latent space")

ABOUT = {
    ARCHITECTURE: (
        "Each dot is a layer, in the order the image flows through them, top to bottom; "
        "side-by-side dots are branches that are added back together (a residual "
        "connection). Beside each: its output shape (height, width, channels) and how many "
        "weights it learnt. The receptive field is the square of input pixels one unit of "
        "a layer can see: it grows with every convolution and pooling, which is how deep "
        "layers come to see whole structures. Click a layer to look at it in the other "
        "views."),
    FEATURES: (
        "A layer turns the image into many channels, each one a map of where one learnt "
        "pattern occurs. Bright means the pattern is strongly present there. Early layers "
        "find edges and textures; deep layers respond to larger parts, at coarser "
        "resolution. Each tile is scaled on its own, so compare where channels fire, not "
        "how strongly: the numbers say how strongly."),
    FILTERS: (
        "A convolution's filters are the small weight grids it slides over its input. The "
        "first layer's filters look at pixels directly, so they can be drawn as tiny "
        "images: grey is zero, bright a positive weight, dark a negative one. Deeper "
        "filters look at the previous layer's channels, not at pixels, so only their size "
        "(norm) per output channel is shown: a filter whose norm is near zero does little."),
    UNIT: (
        "Start from noise and change the image, step by step, to make one unit as large as "
        "possible: a class score or a channel. The result shows the pattern the unit is "
        "tuned to, exaggerated. It is not an image the model has seen, and it is not what "
        "the disease looks like; regularisers keep it smooth enough to read."),
    CONVOLUTION: (
        "This is the arithmetic a convolution layer does, on a small patch of the real "
        "image the model sees. The 3x3 filter sits on a window of pixels; each pixel is "
        "multiplied by the weight above it, the products are added, the bias is added, "
        "and a ReLU keeps only positive values. Then the filter moves one pixel on. Hover "
        "over a cell of the output to see its sum. Max pooling keeps the largest value of "
        "each 2x2 block. The softmax turns the final scores into probabilities."),
    ATTENTION: (
        "A transformer lets every patch look at every other patch. An attention map shows, "
        "for one token (the class token, or a patch you choose), how much it looked at each "
        "patch in one layer and head. Rollout multiplies the layers' attention through the "
        "network to follow information from the input to the class token; the "
        "gradient-weighted version keeps only the attention that raised the chosen class. "
        "Where the model looked is not the same as why it decided."),
    "slices": (
        "This network reads a volume slice by slice and gives every slice a weight (its "
        "attention), the weights summing to 1 over the volume; the class is decided from "
        "the slices' features mixed by those weights. Scroll through the slices: the bars "
        "show which ones the model leaned on. Leaning on a slice is not the same as that "
        "slice holding the evidence."),
    LATENT: (
        "A GAN's generator turns a short vector of random numbers (a point in its latent "
        "space) into an image. Moving along one number changes the image smoothly if the "
        "generator learnt a smooth space; walking between two points morphs one image into "
        "the other. These images are made up by the network: they are not patients."),
}

st.title("Inside")
st.caption("Research and teaching; not for diagnosis.")


@st.cache_resource(show_spinner=False, max_entries=8)
def own_samples(fingerprint: str, _card) -> np.ndarray | None:
    """The model's own labelled samples as one batch (what a maximised unit is measured
    against), read once per model; None where none ship."""
    try:
        batch, _ = sample_batch(_card)
    except models.ModelError:
        return None
    return None if isinstance(batch, list) else batch


def pick_layer(chart: str) -> None:
    """A click on the architecture picks its layer in the sidebar's layer box."""
    points = st.session_state[chart]["selection"]["points"]
    if points and points[0].get("customdata"):
        st.session_state[LAYER_KEY] = points[0]["customdata"]


# -- which model, and what it is given -------------------------------------------------------

by_id = available(None)
# Models trained here that take no single 2-D image (volume models, a GAN's generator):
# their input is one of their own held-out volumes, or none.
other = {i: t for i, t in state.trained_models().items() if t.classifier is None}
ids = list(by_id) + [i for i in other if i not in by_id]
with st.sidebar:
    model_id = st.selectbox("Model", ids, index=ids.index(DEFAULT_MODEL), key="inside_model")

trained = other.get(model_id)
model_input = None
x = None  # what the model is given, unbatched (a list for a model of two inputs)
seen = None  # the picture the model saw, 8-bit
owner = None  # what a job names the model by (its fingerprint)
if trained is None:
    card = by_id[model_id]
    with st.sidebar:
        st.caption(literal(purpose(model_id)))
        metadata = metadata_form(card, f"inside_meta_{model_id}")
        chosen_study = choose_study(card, "inside")
    try:
        # An ONNX model is looked inside through its Keras port where it has one.
        owner = classifier_for(model_id, "gradcam")
    except models.ModelError as error:
        show_error(error)
        st.stop()
    keras_model = owner.keras_model
    if keras_model is None:
        st.info(f"{literal(model_id)} is an ONNX model without a Keras port: the Inside views "
                "need a Keras model.", icon=":material/info:")
        st.stop()
    if chosen_study is None:
        st.info("Choose a sample or upload a study in the sidebar.",
                icon=":material/arrow_back:")
        st.stop()
    try:
        model_input = card.prepare(chosen_study.study, frame=chosen_study.frame,
                                   plane=chosen_study.plane, window=chosen_study.window,
                                   metadata=metadata)
    except (StudyError, models.ModelError) as error:
        show_error(error)
        st.stop()
    x, seen = model_input.inputs, model_input.seen
    labels = list(card.labels)
    kind = "image"
    predicted = None
    if card.task == "classification":
        prediction = owner.predict(model_input)  # one forward pass
        predicted = prediction.label
        st.caption(f"{literal(model_id)} says **{literal(predicted)}** "
                   f"({prediction.probabilities[predicted]:.1%}) on this image: a model's "
                   "output, not a diagnosis. The views below look at how it got there.")
else:
    card, owner, keras_model = trained.card, trained, trained.model
    labels = list(card.labels)
    predicted = None
    kind = "generator" if trained.data.get("kind") == "unlabelled" else "volume"
    if kind == "volume" and trained.test_images is not None and len(trained.test_images):
        with st.sidebar:
            # The first volume of the last label (the finding) shows the most at first.
            truth = trained.test_labels
            first = (int(np.flatnonzero(truth == len(labels) - 1)[0]) + 1
                     if truth is not None and np.any(truth == len(labels) - 1) else 1)
            number = st.slider("Held-out volume", 1, len(trained.test_images), first,
                               key=f"inside_volume_{model_id}")
            x = trained.test_images[number - 1]
            if trained.test_labels is not None:
                st.caption(f"Labelled {literal(labels[int(trained.test_labels[number - 1])])}")

views = [ARCHITECTURE]
if kind == "image":
    views += [FEATURES, FILTERS, UNIT, CONVOLUTION]
else:
    views += [FILTERS]
if attention.attention_kind(keras_model) is not None and x is not None:
    views.append(ATTENTION)
if kind == "generator":
    views.append(LATENT)

graph = graphs.layer_graph(keras_model)
paths = [n.path for n in graph.nodes if n.type != "InputLayer" and not n.nested]
spatial = spatial_layers(keras_model) if kind == "image" else []
with st.sidebar:
    default = last_spatial_layer(keras_model) if spatial else paths[-1]
    if st.session_state.get(LAYER_KEY) not in paths:
        st.session_state.pop(LAYER_KEY, None)
    layer = st.selectbox("Layer", paths, index=paths.index(default), key=LAYER_KEY,
                         help="The layer the views look at; a click on the architecture "
                              "picks one too. Nested layers read 'backbone/layer'.")

view = st.radio("View", views, horizontal=True, key="inside_view")
slices = view == ATTENTION and attention.attention_kind(keras_model) == "slices"
st.caption(ABOUT["slices" if slices else view])


def stats_section() -> None:
    """Mean, sparsity and dead channels of every spatial layer over the built-in samples,
    and where the classes come apart: a job (seconds on an Xception)."""
    st.subheader("Layer statistics over the samples")
    if kind != "image" or isinstance(x, list):
        st.caption("Needs a model of one image input.")
        return
    own = bool(card.samples)
    st.caption("Over the model's own labelled samples." if own else
               "No labelled samples ship with this model: the other models' samples stand "
               "in (outside its domain), and classes are not separated.")
    handle = jobs.submit(inside_stats_job(owner, card,
                                          tuple(features.statistics_layers(keras_model))))
    result = jobs.show(handle, "Layer statistics", EXPECTED, key="inside_stats")
    if result is None:
        return
    stats, separated = result
    st.plotly_chart(charts.layer_statistics(stats), width="stretch")
    dead = sum(s.dead_channels for s in stats)
    st.caption(f"{len(stats)} layers over {stats[0].images} images; {dead} channels "
               "are zero on every one of them (dead). Sparsity is the share of exact zeros: "
               "after a ReLU, the units that stayed silent.")
    if separated:
        st.markdown("**Where the classes come apart**")
        st.plotly_chart(charts.separation(separated, labels), width="stretch")
        st.caption("For each layer, its channels averaged over the image give one vector per "
                   "sample; each sample is given the class of the nearest class mean (its own "
                   "left out). A class whose line climbs early is told apart by simple "
                   "patterns; one that climbs late needs the deep layers. The first point "
                   "is the image itself, each channel's mean: a class told apart there "
                   "differs in brightness, before any layer has learnt anything (a trait "
                   f"of these images, worth doubting). Over {stats[0].images} samples: a "
                   "lesson, not a measurement.")


# -- the views ---------------------------------------------------------------------------------

if view == ARCHITECTURE:
    nested = [n for n in graph.nodes if n.nested]
    unfold = set()
    for n in nested:
        if st.toggle(f"Unfold the backbone '{literal(n.name)}' ({n.parameters:,} parameters)",
                     key=f"inside_unfold_{model_id}_{n.path}"):
            unfold.add(n.path)
    shown = graph.folded(unfold)
    mm = graphs.input_pixel_mm(chosen_study.study, model_input) if model_input else None
    shape = keras_model.inputs[0].shape
    height, width = (int(shape[1]), int(shape[2])) if len(shape) == 4 else (0, 0)
    top = sum(1 for n in graph.nodes if n.depth == 0)
    left, right = st.columns([1, 1], gap="medium")
    with left:
        chart = f"{GRAPH_KEY}_{model_id}_{'-'.join(sorted(unfold))}"
        st.plotly_chart(charts.layer_graph(shown, shown.layout(), layer),
                        on_select=partial(pick_layer, chart), selection_mode="points",
                        key=chart, config={"scrollZoom": False, "displayModeBar": False})
        st.caption("Blue: convolutions; green: pooling; grey: normalisation and "
                   "activations; orange: dense; purple: attention; a red square: a nested "
                   "model (a backbone), folded. Hover a layer for its receptive field.")
    with right:
        picked = graph.node(layer)
        field = picked.receptive
        st.markdown(f"**`{literal(layer, code=True)}`**: {literal(picked.type)}, output "
                    f"{literal(picked.shape_text)}, {picked.parameters:,} parameters")
        if field is None:
            st.caption("Each of its units sees the whole input (after global pooling, "
                       "flattening or a dense layer).")
        elif kind == "image" and seen is not None and picked.output_shape \
                and len(picked.output_shape) == 3:
            rows, cols = picked.output_shape[0], picked.output_shape[1]
            box = field.box(rows // 2, cols // 2, height, width)
            words = field.text(height, width)
            if mm is not None:
                size = graphs.millimetres(field, mm)
                words += f", {size[0]:.1f} x {size[1]:.1f} mm of this study"
            st.image(pictures.field_over(seen, box), output_format="PNG",
                     caption=f"What one unit at the centre of this layer's {rows}x{cols} grid "
                             f"sees: {words}; neighbouring units are {field.jump[0]:g} px "
                             "apart.")
        st.caption(f"{top} layers at the top, {len(graph.nodes) - top} inside nested "
                   f"models; {keras_model.count_params():,} parameters.")
        rows_out = []
        for n in graph.nodes:
            f = n.receptive
            row = {"layer": n.path, "type": n.type, "output": n.shape_text,
                   "parameters": n.parameters,
                   "receptive field (px)": f.text(height, width) if f else "whole input"}
            if mm is not None:
                size = graphs.millimetres(f, mm) if f else None
                row["receptive field (mm)"] = (f"{size[0]:.1f} x {size[1]:.1f}" if size
                                               else "whole image")
            rows_out.append(row)
        st.dataframe(rows_out, hide_index=True, width="stretch", height=420)
        if mm is None and kind == "image":
            st.caption("This study declares no pixel spacing: receptive fields in pixels "
                       "only (a DICOM or NIfTI study gives them in mm too).")
        elif mm is not None:
            st.caption(f"One input pixel is {mm[0]:.2f} x {mm[1]:.2f} mm of this study "
                       "(its spacing, resized to the model's input).")

elif view == FEATURES:
    try:
        maps = features.feature_maps(keras_model, x, layer)
        if maps.ndim == 2 and attention.attention_kind(keras_model) == "vit":
            maps = features.token_grid(maps, patch_grid(keras_model))  # tokens: patches
    except ValueError as error:
        st.info(literal(str(error)), icon=":material/info:")
        st.stop()
    if maps.ndim != 3 or maps.shape[1:] == (1, 1):
        st.info(f"{literal(layer)} gives {maps.shape[0]} numbers, not maps over the image "
                "(a dense or pooled layer): pick a spatial layer in the sidebar.",
                icon=":material/info:")
        st.stop()
    controls = st.columns(3)
    order = controls[0].selectbox("Order channels by", ["mean", "max", "index"],
                                  key="inside_order")
    count = controls[1].selectbox("Channels shown", [16, 32, 64, 128], index=1,
                                  key="inside_count")
    channels = features.order_channels(maps, by=order)[:count]
    picked = controls[2].number_input("Enlarge channel", 0, len(maps) - 1, int(channels[0]),
                                      key=f"inside_channel_{layer}_{order}",
                                      help="The first in the grid's order at first.")
    left, right = st.columns([3, 2])
    with left:
        st.image(pictures.channel_grid(maps, channels), output_format="PNG",
                 caption=f"{literal(layer)}: {len(channels)} of {len(maps)} channels, "
                         f"{maps.shape[1]}x{maps.shape[2]} each, by {order}: "
                         + ", ".join(str(int(c)) for c in channels[:12])
                         + (" …" if len(channels) > 12 else ""))
    with right:
        st.image(pictures.channel_over(seen, maps[int(picked)]), output_format="PNG",
                 caption=f"channel {int(picked)} over the image the model saw")
        values = maps[int(picked)]
        st.caption(f"Channel {int(picked)}: mean {values.mean():.4f}, max {values.max():.4f}, "
                   f"{(values == 0).mean():.0%} zeros. Layer: mean {maps.mean():.4f}, "
                   f"{(maps == 0).mean():.0%} zeros, "
                   f"{int((maps.reshape(len(maps), -1).max(1) == 0).sum())} channels all zero "
                   "on this image.")
    stats_section()

elif view == FILTERS:
    try:
        first = filters.first_convolution(keras_model)
        kernels = filters.kernels(keras_model, first)
    except ValueError as error:  # no 2-D convolution (a 3-D CNN, convolutions wrapped)
        st.info(literal(str(error)), icon=":material/info:")
        st.stop()
    st.markdown(f"**First convolution: `{literal(first, code=True)}`**, "
                f"{kernels.shape[0]} filters of {kernels.shape[1]}x{kernels.shape[2]}x"
                f"{kernels.shape[3]}")
    st.image(pictures.kernel_grid(filters.kernel_pictures(kernels)), output_format="PNG",
             caption="Each filter as a picture (colour when it reads RGB): grey is 0.")
    conv = filters.convolution_for(keras_model, layer)
    if conv is None:
        st.caption(f"No convolution up to {literal(layer)}: pick a later layer in the sidebar.")
    else:
        norms = filters.kernel_norms(keras_model, conv)
        said = "" if conv == layer else f" (the convolution that feeds {literal(layer)})"
        st.plotly_chart(charts.bars(norms, [str(i) for i in range(len(norms))],
                                    f"{literal(conv)}{said}: the L2 norm of each output "
                                    "channel's filter"), width="stretch")
        st.caption(f"Median {np.median(norms):.3f}, smallest {norms.min():.3f} (channel "
                   f"{int(norms.argmin())}), largest {norms.max():.3f} (channel "
                   f"{int(norms.argmax())}).")
    summary = filters.norm_summary(keras_model)
    st.plotly_chart(charts.norm_summary(summary), width="stretch")
    st.caption(f"Every convolution's filters, {len(summary)} layers in order: the median "
               "norm (dot) and the range from the smallest to the largest (bar). A bar "
               "reaching far below its dot marks filters that contribute little.")

elif view == UNIT:
    controls = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    what = controls[0].radio("Unit", ["A class", "A channel of the layer"], horizontal=True,
                             key="inside_unit_kind")
    if what == "A class":
        label = controls[1].selectbox("Class", labels, key="inside_unit_class",
                                      index=labels.index(predicted) if predicted else 0)
        unit = ClassUnit(labels.index(label), label)
    else:
        shape = graph.node(layer).output_shape
        width = int(shape[-1]) if shape and shape[-1] else None
        unit = ChannelUnit(layer, int(controls[1].number_input(
            "Channel", 0, max(width - 1, 0) if width else None, 0,
            key=f"inside_unit_channel_{layer}")))
    steps = int(controls[2].number_input("Steps", 10, 1000, 100, 10, key="inside_unit_steps"))
    run = controls[3].button("Run", icon=":material/play_arrow:", key="inside_unit_run")
    batch = own_samples(owner.fingerprint, card)
    # A grey image (a grey study, or an RGB file of a grey scan) is given to an RGB model
    # as one channel three times: the ascent stays among such images.
    grey = bool(np.all(model_input.array[..., :1] == model_input.array))
    job = maximise_job(owner, unit, steps=steps, samples=batch, grey=grey)
    if run:
        state.forget_cancelled(job.key)
        jobs.submit(job)
    held = executor().get(job.key)
    if held is None:
        st.caption(f"Press Run to make the image that maximises {literal(unit.title)}: "
                   "100 steps take seconds on a small model and about a minute on an "
                   "Xception here.")
    else:
        found = jobs.show(held, f"Maximising {unit.title}", EXPECTED, key="inside_unit")
        if found is not None:
            left, right = st.columns([1, 2])
            left.image(found.picture, caption=f"what {literal(unit.title)} wants to see "
                       "(stretched to its 1st-99th percentiles)", output_format="PNG",
                       width="stretch")
            with right:
                st.metric(f"{unit.title} on this image", f"{found.activation:.3f}",
                          f"from {found.start:.3f} at the start", delta_color="off")
                if len(found.samples):
                    st.caption(f"On the {len(found.samples)} samples: mean "
                               f"{np.mean(found.samples):.3f}, largest "
                               f"{np.max(found.samples):.3f}"
                               + (f" ({found.ratio_to_max:.1f}x that here)"
                                  if found.ratio_to_max else "") + ".")
                st.plotly_chart(charts.bars(found.history, [str(i + 1) for i in
                                                            range(len(found.history))],
                                            "the unit's value at each step", fmt=".3f"),
                                width="stretch")
                st.caption(f"{found.steps} steps in {found.seconds:.1f} s, from seeded noise "
                           "(tf-keras-vis ActivationMaximization, with total-variation and "
                           "norm regularisers, jitter and rotation)"
                           + ("; grey, as this study is given to the model." if grey
                              else "; in colour, as this study is."))

elif view == CONVOLUTION:
    count = len(filters.kernels(keras_model, filters.first_convolution(keras_model)))
    controls = st.columns(4)
    channel = int(controls[0].number_input("Filter (output channel)", 0, count - 1, 0,
                                           key="inside_conv_channel"))
    try:
        lesson = teaching.first_layer_patch(keras_model, x, size=8, channel=channel)
    except ValueError as error:
        st.info(literal(str(error)), icon=":material/info:")
        st.stop()
    inputs_in = lesson.patch.shape[-1]
    c_in = int(controls[1].number_input("Input channel shown", 0, inputs_in - 1, 0,
                                        key="inside_conv_in")) if inputs_in > 1 else 0
    computed = lesson.computed()
    rows, cols = computed.shape
    r = int(controls[2].number_input("Output row", 0, rows - 1, 0, key="inside_conv_row"))
    c = int(controls[3].number_input("Output column", 0, cols - 1, 0, key="inside_conv_col"))
    sh, sw = lesson.stride
    kh, kw = lesson.kernel.shape[:2]
    cell = teaching.convolution_cell(lesson.patch, lesson.kernel, lesson.bias, r * sh, c * sw)
    hover = [[teaching.formula(teaching.convolution_cell(
        lesson.patch, lesson.kernel, lesson.bias, i * sh, j * sw), c_in) for j in range(cols)]
        for i in range(rows)]
    st.markdown(f"**`{literal(lesson.layer, code=True)}`**, filter {channel}: "
                f"{kh}x{kw}x{inputs_in} weights and a bias, stride {sh}; an 8x8 patch of "
                f"the input at row {lesson.top_left[0]}, column {lesson.top_left[1]}.")
    left, middle, right = st.columns([3, 2, 3])
    left.plotly_chart(charts.numbers_grid(
        lesson.patch[..., c_in], None, f"input patch, channel {c_in} (window outlined)",
        (r * sh, c * sw, kh, kw), "Greys_r"), width="stretch",
        key="inside_conv_patch")
    middle.plotly_chart(charts.numbers_grid(lesson.kernel[..., c_in], None,
                                            f"weights for channel {c_in}",
                                            colorscale="RdBu", height=260), width="stretch",
                        key="inside_conv_kernel")
    right.plotly_chart(charts.numbers_grid(computed, hover, "output before activation "
                                           "(hover a cell)", (r, c, 1, 1)), width="stretch",
                       key="inside_conv_out")
    st.code(teaching.formula(cell, c_in).replace("<br>", "\n"), language=None)
    agree = np.max(np.abs(teaching.activate(computed, lesson.activation) - lesson.expected))
    st.caption(f"The layer's activation is {literal(lesson.activation)}. These numbers agree "
               f"with the model's own output at these cells within {agree:.1e}.")

    st.markdown("**Max pooling** (2x2, stride 2) of this filter's output, on the 8x8 "
                "cells of the layer's own output starting at this patch")
    top, left = lesson.first
    region = lesson.output[top:top + 8, left:left + 8]
    region = region[:region.shape[0] // 2 * 2, :region.shape[1] // 2 * 2]
    if min(region.shape) < 2:
        st.caption("The layer's output is too small here to pool.")
    else:
        pooled = teaching.max_pool(region)
        hover_pool = [[teaching.pool_formula(teaching.pool_cell(region, i, j))
                       for j in range(pooled.shape[1])] for i in range(pooled.shape[0])]
        left_col, right_col = st.columns(2)
        left_col.plotly_chart(charts.numbers_grid(region, None, "the filter's output"),
                              width="stretch", key="inside_pool_in")
        right_col.plotly_chart(charts.numbers_grid(pooled, hover_pool, "the largest of each "
                                                   "2x2 block (hover a cell)"),
                               width="stretch", key="inside_pool_out")
        st.caption("Pooling keeps the strongest response of each block and halves the "
                   "grid: the next layer sees twice as far with the same 3x3 filter.")

    st.markdown("**Softmax**: from the final scores (logits) to probabilities"
                + (" (of the centre pixel: a segmentation model scores every pixel)"
                   if card.task == "segmentation" else ""))
    steps = teaching.softmax_steps(teaching.logits(keras_model, x))
    names = labels if len(labels) == len(steps["logits"]) else \
        [str(i) for i in range(len(steps["logits"]))]
    columns = st.columns(3)
    columns[0].plotly_chart(charts.bars(steps["logits"], names, "logits z"), width="stretch",
                            key="inside_softmax_z")
    columns[1].plotly_chart(charts.bars(steps["exp"], names, "exp(z - max z)"),
                            width="stretch", key="inside_softmax_exp")
    columns[2].plotly_chart(charts.bars(steps["probabilities"], names,
                                        f"÷ their sum {steps['total']:.4f} = probabilities"),
                            width="stretch", key="inside_softmax_p")
    st.caption("p_i = exp(z_i - max z) / Σ_j exp(z_j - max z): subtracting the largest logit "
               "changes nothing but keeps exp from overflowing. The probabilities sum to 1; "
               "a larger gap between logits gives a surer-looking answer, not a truer one.")

elif view == ATTENTION:
    if slices:
        weights = attention.slice_attention(keras_model, x)
        number = st.slider("Slice", 1, len(weights), int(np.argmax(weights)) + 1,
                           key=f"inside_slice_{model_id}")
        left, right = st.columns([1, 2])
        picture = np.round(np.clip(np.asarray(x)[number - 1, ..., 0], 0, 1) * 255)
        left.image(picture.astype(np.uint8), caption=f"slice {number} of {len(weights)}: "
                   f"weight {weights[number - 1]:.3f}", output_format="PNG", width="stretch")
        right.plotly_chart(charts.bars(weights, [str(i + 1) for i in range(len(weights))],
                                       "attention weight of each slice (sums to 1)",
                                       highlight=number - 1, fmt=".3f"), width="stretch")
        st.caption(f"The model leaned most on slice {int(np.argmax(weights)) + 1} "
                   f"({weights.max():.0%}); equal weights would be {1 / len(weights):.0%} "
                   "each.")
    else:
        maps = attention.attention_maps(keras_model, x)
        depth, heads = maps.shape[:2]
        grid = patch_grid(keras_model)
        controls = st.columns(4)
        block = int(controls[0].number_input("Block", 1, depth, depth, key="inside_att_block"))
        head = controls[1].selectbox("Head", ["mean", *range(1, heads + 1)],
                                     key="inside_att_head")
        token = controls[2].selectbox("Query token", ["class token", "a patch"],
                                      key="inside_att_token")
        opacity = controls[3].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="inside_att_opacity")
        index = 0
        if token == "a patch":
            where = st.columns(2)
            pr = int(where[0].number_input("Patch row", 0, grid[0] - 1, grid[0] // 2,
                                           key="inside_att_row"))
            pc = int(where[1].number_input("Patch column", 0, grid[1] - 1, grid[1] // 2,
                                           key="inside_att_col"))
            index = 1 + pr * grid[1] + pc
        target = labels.index(st.selectbox(
            "Class (gradient-weighted)", labels, key="inside_att_class",
            index=labels.index(predicted) if predicted else 0))
        one = attention.token_map(maps, block - 1, None if head == "mean" else head - 1,
                                  index, grid)
        rolled = attention.rollout(maps, grid)
        weighted = attention.gradient_rollout(keras_model, x, target)
        columns = st.columns(3)
        for column, (values, title) in zip(columns, (
                (one, f"block {block}, head {head}: where the "
                      f"{'class token' if index == 0 else f'patch {index}'} looks"),
                (rolled, "attention rollout (all blocks)"),
                (weighted, f"gradient-weighted, for {labels[target]}")), strict=True):
            column.image(pictures.channel_over(seen, values, opacity), caption=literal(title),
                         output_format="PNG", width="stretch")
        patch_px = seen.shape[0] / grid[0]
        distance = attention.mean_distance(grid, maps, patch_px)
        st.plotly_chart(charts.attention_distance(distance, int(patch_px)), width="stretch")
        st.caption("Mean attention distance (Dosovitskiy et al. 2021, Fig. 7): how far, on "
                   "average, each head looks from its own patch, in input pixels. Heads near "
                   "0 act like small convolutions; far-looking heads mix the whole image.")

elif view == LATENT:
    size = latent.latent_size(keras_model)
    controls = st.columns(3)
    seed = int(controls[0].number_input("Starting point (seed)", 0, 10_000, 0,
                                        key="inside_latent_seed"))
    dimension = int(controls[1].number_input("Latent number to move", 0, size - 1, 0,
                                             key="inside_latent_dim"))
    other_seed = int(controls[2].number_input("Second point (seed)", 0, 10_000, 1,
                                              key="inside_latent_other"))
    values = np.linspace(-3, 3, 9)
    st.image(pictures.strip(latent.latent_walk(keras_model, seed, dimension, values)),
             caption=f"number {dimension} of {size} from -3 to +3, the others held "
                     f"(seed {seed})", output_format="PNG")
    z0, z1 = latent.random_latent(keras_model, seed), latent.random_latent(keras_model,
                                                                             other_seed)
    st.image(pictures.strip(latent.interpolate(keras_model, z0, z1, 9)),
             caption=f"from seed {seed} to seed {other_seed} along the sphere (slerp: each "
                     "step stays as likely a point as the ends)", output_format="PNG")
