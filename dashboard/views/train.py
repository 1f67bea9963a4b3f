"""Train: build one of the field's architectures, train it live on real data with its
curves, and then use it like any other model (Explain, Compare, Evaluate, Segment).

A run is a job on the server's trainer (core.jobs.trainer): a class's runs queue for its
training slots and each student sees their own place in line and only their own runs.
The page draws the run's live record (core.train.live) every second while it runs."""

import uuid
from dataclasses import replace

import numpy as np
import streamlit as st

from core.evaluate.sets import EvaluationError, from_zip
from core.jobs import CANCELLED, DONE, FAILED, Handle, train_job, trainer
from core.models import ModelError
from core.nets.catalogue import ARCHITECTURES
from core.nets.preprocessing import AUGMENTATION, AUGMENTATION_NOTE, PREPROCESSING, preview
from core.train.config import RECIPES, SCHEDULE, default_config
from core.train.data import TASKS, from_labelled_set, task
from core.train.fit import Trained, TrainingError, parameters, split_of
from core.train.live import live
from core.train.store import zipped
from dashboard import state
from dashboard.components import charts
from dashboard.components.text import literal, show_error
from dashboard.components.widgets import option_widget

POLL_S = 1.0
OWN_SET = "Your labelled set (.zip)"
PREVIEW = 16
HELD_OUT_NAMES = {"macro_f1": "macro F1", "mean_dice": "mean Dice"}

st.title("Train")
st.caption("Build and train the field's architectures on real images, then ask them why. "
           "Research and teaching; not for diagnosis.")

names = list(ARCHITECTURES)
errors: list[str] = []
data = None
with st.sidebar:
    arch_name = st.selectbox("Architecture", names, format_func=lambda n: ARCHITECTURES[n].title,
                             **state.kept("train_arch"))
    arch = ARCHITECTURES[arch_name]
    recipe = RECIPES[arch_name]
    offered = [t for t in TASKS.values() if t.kind == arch.data]
    sources = [t.name for t in offered] + ([OWN_SET] if arch.data == "images" else [])
    default_source = sources.index(arch.task) if arch.task in sources else 0
    source = st.selectbox("Data", sources, index=default_source, key=f"train_data_{arch_name}",
                          format_func=lambda s: s if s == OWN_SET else TASKS[s].title)
    size_text = st.text_input("Input size", "x".join(map(str, arch.size)),
                              key=f"train_size_{arch_name}",
                              help="HxW (SLICESxHxW for the volume models)")
    with st.expander("Schedule", expanded=True):
        schedule = {}
        for name, option in SCHEDULE.items():
            default = {"epochs": recipe.epochs, "batch_size": recipe.batch_size,
                       "learning_rate": recipe.learning_rate}.get(name, option.default)
            schedule[name] = option_widget(name, replace(option, default=default),
                                           key=f"train_{name}_{arch_name}")
    with st.expander("Architecture options"):
        options = {name: option_widget(name, replace(o, default=recipe.options.get(name,
                                                                                  o.default)),
                                       key=f"train_opt_{arch_name}_{name}")
                   for name, o in arch.options.items()}
    with st.expander("Preprocessing and augmentation"):
        preprocessing = {name: option_widget(name, o, key=f"train_pre_{name}")
                         for name, o in PREPROCESSING.items()}
        augmentation = {name: option_widget(name, o, key=f"train_aug_{name}")
                        for name, o in AUGMENTATION.items()}
        st.caption(literal(AUGMENTATION_NOTE))

try:
    size = tuple(int(v) for v in size_text.lower().split("x"))
    name = None if source == OWN_SET else f"builtin:{source}"
    if source == OWN_SET:
        upload = st.sidebar.file_uploader("A .zip with one folder per label", type=["zip"],
                                          key="train_upload")
        if upload is not None:
            name = upload.name
            data = from_labelled_set(from_zip(upload.getvalue(), upload.name), size)
    config = default_config(arch_name, name, size=size, options=options,
                            preprocessing=preprocessing, augmentation=augmentation, **schedule)
    if source != OWN_SET:
        data = task(source).make(config.size)
except (ValueError, EvaluationError, ModelError, TrainingError) as error:
    show_error(error)
    st.stop()

# -- what will be trained -------------------------------------------------------------------------

left, right = st.columns([3, 2])
with left:
    st.subheader(arch.title)
    st.write(literal(arch.about))
    st.caption(literal(arch.paper))
with right:
    if data is None:
        st.info("Upload a .zip with one sub-folder per label (the layout of Keras' "
                "image_dataset_from_directory).", icon=":material/upload:")
        st.stop()
    st.subheader("Data")
    st.write(literal(data.about))
    st.caption(f"{len(data.x)} samples · input {' x '.join(map(str, data.x.shape[1:]))}")

try:
    parts = split_of(data, config.seed)
    count = parameters(config, data)
except (ValueError, TrainingError, ModelError) as error:
    show_error(error)
    st.stop()
st.metric("Parameters", f"{count:,}")
counts = parts.counts()
if data.labels and data.kind != "masks":
    st.caption("The split (seeded and stratified; no volume, slab or patient on two sides):")
    st.dataframe({"label": list(data.labels),
                  **{role: [counts[role].get(label, 0) for label in data.labels]
                     for role in ("train", "validation", "test")}}, hide_index=True)
else:
    st.caption(f"The split (seeded; no volume or slab on two sides): "
               f"{len(parts.train)} train, {len(parts.validation)} validation, "
               f"{len(parts.test)} test.")

with st.expander("A batch as the model will see it (preprocessing and augmentation applied)"):
    shown = preview(data, parts.train[:PREVIEW], config.preprocessing, config.augmentation,
                    config.seed)
    columns = st.columns(8)
    for i, picture in enumerate(shown):
        low, high = float(np.min(picture)), float(np.max(picture))
        scaled = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
        label = data.labels[int(data.y[parts.train[i]])] if data.y is not None and \
            data.kind != "masks" else ""
        columns[i % 8].image(scaled, caption=literal(label) or None, width="stretch",
                             clamp=True)

# -- training ----------------------------------------------------------------------------------

runs = state.training_runs()
if st.button("Train", type="primary", icon=":material/model_training:"):
    handle = trainer().submit(train_job(config, data if source == OWN_SET else None,
                                        owner=state.owner(), run=uuid.uuid4().hex))
    runs.append(handle)
    # Show the new run: a keyed selectbox keeps its old choice when options are added.
    st.session_state["train_run_shown"] = len(runs) - 1

if not runs:
    st.stop()


def run_title(handle: Handle) -> str:
    c = handle.spec.params["config"]
    return f"{c['arch']} on {c['data']}, {c['epochs']} epochs, seed {c['seed']}"


shown_run = st.selectbox("Your runs", list(range(len(runs)))[::-1], format_func=lambda i:
                         f"{i + 1}. {run_title(runs[i])}", key="train_run_shown")
handle = runs[shown_run]
record = live(handle.key)


def draw(handle: Handle) -> None:
    """The run's curves, ETA and (GAN) samples as they are now."""
    snap = record.snapshot()
    # While it runs the axis spans the planned epochs (how far it has come); once over,
    # the epochs it ran, so a stopped or early-stopped run is not squeezed into a corner.
    span = max(len(snap["epochs"]), 1) if handle.over else snap["total_epochs"]
    if snap["epochs"] or snap["batches"]:
        st.plotly_chart(charts.training_curves(snap["epochs"], snap["batches"],
                                               snap["best_epoch"], span),
                        width="stretch", key=f"curves_{handle.key}_{len(snap['batches'])}")
        scored = snap["epochs"][-1] if snap["epochs"] else {}
        if snap["best_epoch"] and ("val_dice" in scored or "val_f1" in scored):
            st.caption("Dotted line: the checkpoint kept, the epoch with the best validation "
                       + ("mean Dice." if "val_dice" in scored else "macro F1.")
                       + " Training figures are taken during each epoch, with augmentation "
                         "and dropout on; validation's after it, with both off: that is why "
                         "validation can look better than training early on.")
    if snap["grids"]:
        picks = sorted({0, len(snap["grids"]) // 2, len(snap["grids"]) - 1})
        columns = st.columns(len(picks))
        for column, i in zip(columns, picks, strict=True):
            epoch, picture = snap["grids"][i]
            column.image(picture, caption=f"generated after epoch {epoch}", width="stretch",
                         clamp=True)


@st.fragment(run_every=POLL_S)
def watch(handle: Handle) -> None:
    if handle.over:
        st.rerun()
    place = trainer().position(handle)
    if place:
        slots = trainer().workers
        st.progress(0.0, text=f"Queued: number {place} in line for a training slot "
                              f"({slots} slot{'s' if slots > 1 else ''} on this server).")
        if st.button("Cancel", key=f"train_cancel_{handle.key}", icon=":material/cancel:"):
            handle.cancel()
        return
    # The run's own line already ends with its ETA ("about N s left"): shown once.
    st.progress(handle.progress, text=literal(handle.text))
    if record.stopping:
        st.caption("Stopping after this batch; the best checkpoint so far is kept.")
    elif st.button("Stop", key=f"train_stop_{handle.key}", icon=":material/stop_circle:",
                   help="End training now and keep the best checkpoint so far."):
        record.stop()
    draw(handle)


if not handle.over:
    watch(handle)
    st.stop()
if handle.state == CANCELLED:
    st.info("This run was cancelled before it finished; nothing of it is kept.",
            icon=":material/cancel:")
    st.stop()
if handle.state == FAILED:
    show_error(f"Training failed: {handle.error}")
    st.stop()

assert handle.state == DONE
trained: Trained = handle.result
draw(handle)
if trained.classifier is not None:
    state.user_models()[trained.card.id] = trained.classifier
state.trained_models()[trained.card.id] = trained
ended = "stopped by you" if trained.stopped else "finished"
st.success(f"Training {ended}: {trained.epochs_run} epochs in {trained.seconds:.0f} s"
           + (f"; the checkpoint of epoch {trained.best_epoch} is kept"
              if trained.best_epoch and trained.data.get("kind") != "unlabelled" else "")
           + ".", icon=":material/check:")
held = {k: v for k, v in trained.test.items() if not isinstance(v, dict)}
if held:
    columns = st.columns(len(held))
    for column, (key, value) in zip(columns, held.items(), strict=True):
        # A generator has nothing held out: its figures are the last epoch's losses.
        prefix = "Last epoch's" if trained.data.get("kind") == "unlabelled" else "Held-out"
        column.metric(f"{prefix} {HELD_OUT_NAMES.get(key, key.replace('_', ' '))}",
                      "n/a" if value is None else f"{value:.3f}"
                      if isinstance(value, float) else str(value))
if isinstance(trained.test.get("dice"), dict):
    st.caption("Held-out Dice per label: " + ", ".join(
        f"{literal(k)} {v:.3f}" if v is not None else f"{literal(k)} n/a"
        for k, v in trained.test["dice"].items()))
if trained.classifier is not None:
    if trained.card.task == "segmentation":
        where = "Segment, on the built-in volumes or yours"
    else:
        where = "Explain, Compare and Evaluate, with its held-out images as samples"
    st.info(f"{literal(trained.card.id)} is now offered on {where}, for this session.",
            icon=":material/arrow_forward:")
else:
    st.caption("This model takes no single 2-D image, so it is not offered on the other "
               "pages; download it to keep it.")
st.download_button("Download the model and its card (.zip)", zipped(trained),
                   file_name=f"{trained.card.id.removeprefix('user:')}.zip",
                   mime="application/zip", icon=":material/download:")
with st.expander("Model card"):
    st.json(trained.card.to_dict())
