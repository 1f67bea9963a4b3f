"""The models a page offers: the built-in ones and those uploaded in this session.

An uploaded model lives in its uploader's session only (other students on the same
server never see it) and its id starts with "user:", so it can never replace a built-in.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import models
from core.explain import METHODS, explainable
from core.models import Classifier, ModelCard, ModelError
from core.models.inputs import RESIZES, SCALES
from core.models.metadata import UNKNOWN
from core.models.user import (
    PREPROCESS_DEFAULTS,
    PREPROCESS_KEYS,
    load_carded,
    load_user_model,
)
from dashboard import state
from dashboard.components.text import literal, show_error


def uploaded() -> dict[str, Classifier]:
    """This session's uploaded models, by id."""
    return state.user_models()


def available(task: str | None = "classification") -> dict[str, ModelCard]:
    """The models this session can use for `task` (None: every model), built-in first,
    by id."""
    out = {c.id: c for c in models.cards()}
    out.update({i: c.card for i, c in uploaded().items()})
    return {i: c for i, c in out.items() if task is None or c.task == task}


def describe(model_id: str) -> str:
    """'id — purpose', for pickers wide enough to show it whole."""
    c = available(None)[model_id]
    return f"{c.id} — {c.purpose}"


def purpose(model_id: str) -> str:
    """What the model does, in words: the caption under a picker that shows ids only
    (a sidebar box cuts anything longer than an id)."""
    return available(None)[model_id].purpose


def classifier_for(model_id: str, method: str | None = None) -> Classifier:
    """The loaded model: an upload as it is, a built-in on the runtime `method` needs
    (its Keras port for gradient methods), else on its card's runtime."""
    user = uploaded().get(model_id)
    if user is not None:
        return user
    return explainable(model_id, method) if method else models.load(model_id)


def methods_for(model_id: str) -> list[str]:
    """The explanation methods that can explain the model, in the registry's order: the
    attention methods only for a ViT (`Method.refusal`)."""
    classifier = classifier_for(model_id)
    return [name for name, m in METHODS.items() if m.refusal(classifier, model_id) is None]


def metadata_form(card: ModelCard, key: str) -> dict[str, Any] | None:
    """The answers for a model with a metadata input (None for others): one widget per
    field, 'unknown' by default, as the model was trained to accept."""
    if card.metadata is None:
        return None
    answers: dict[str, Any] = {}
    st.caption(f"{literal(card.id)} also takes patient metadata; 'unknown' is what it was trained "
               "to accept when a value is missing.")
    for f in card.metadata.fields:
        if f.kind == "one-hot":
            answers[f.name] = st.selectbox(
                f.name.capitalize(), f.values, index=f.values.index(f.default or f.values[0]),
                key=f"{key}_{f.name}")
        else:
            known = st.checkbox(f"{f.name.capitalize()} known", value=False,
                                key=f"{key}_{f.name}_known")
            value = st.number_input(
                f"{f.name.capitalize()} ({f.unit})", min_value=float(f.low),
                max_value=float(f.high), value=float(round(f.missing_fill)), step=1.0,
                disabled=not known, key=f"{key}_{f.name}")
            answers[f.name] = value if known else UNKNOWN
    return answers


SCALE_WORDS = {name: f"{name}: {words}" for name, (words, _) in SCALES.items()}


def upload_form() -> None:
    """'Add your own model': a .keras or .onnx file with its labels and preprocessing,
    checked (safe mode, input shape, outputs against labels) before it is offered."""
    with st.form("upload_model", clear_on_submit=False):
        file = st.file_uploader("Model file (.keras or .onnx)", type=["keras", "onnx"],
                                key="upload_model_file")
        card_file = st.file_uploader("Its card.json, for a model trained in MedLens (then "
                                     "nothing below is needed)", type=["json"],
                                     key="upload_model_card")
        labels = st.text_input("Labels, in the order of the model's outputs",
                               placeholder="e.g. normal, abnormal", key="upload_model_labels")
        columns = st.columns(4)
        chosen = {
            "scale": columns[0].selectbox("Scale", PREPROCESS_KEYS["scale"],
                                          format_func=SCALE_WORDS.get, key="upload_scale",
                                          index=list(SCALES).index(
                                              PREPROCESS_DEFAULTS["scale"])),
            "resize": columns[1].selectbox("Resize", RESIZES, key="upload_resize",
                                           index=RESIZES.index(PREPROCESS_DEFAULTS["resize"])),
            "channels": columns[2].selectbox("Channels", PREPROCESS_KEYS["channels"],
                                             key="upload_channels"),
            "outputs": columns[3].selectbox("Outputs", PREPROCESS_KEYS["outputs"],
                                            key="upload_outputs",
                                            help="auto: read from the model's last activation "
                                                 "(Keras) or its outputs (ONNX)"),
        }
        size = st.text_input("Input size HxW (only where the model's is not fixed)",
                             key="upload_size")
        license = st.text_input("Licence, as the model's author stated it (optional)",
                                key="upload_license")
        submitted = st.form_submit_button("Check and add the model")
    if not submitted:
        return
    if file is None:
        st.error("Choose a .keras or .onnx file first.", icon=":material/error:")
        return
    if size.strip():
        chosen["size"] = size.strip()
    with st.status(f"Checking {literal(file.name)}…") as status:
        try:
            if card_file is not None:
                loaded = load_carded(file.getvalue(), card_file.getvalue(), name=file.name)
            else:
                loaded = load_user_model(file.getvalue(), labels, chosen, name=file.name,
                                         license=license.strip())
        except ModelError as error:
            status.update(label=f"{literal(file.name)} refused", state="error")
            refused = str(error)
        else:
            refused = None
            uploaded()[loaded.card.id] = loaded
            status.update(label=f"Added {literal(loaded.card.id)} for this session",
                          state="complete")
    if refused:  # outside the status box, which folds away when it ends
        show_error(refused)
        return
    st.success(f"{literal(loaded.card.id)}: {len(loaded.card.labels)} labels, input "
               f"{'x'.join(map(str, loaded.card.input_shape))}, outputs read as "
               f"{loaded.card.outputs}. It is offered on every page until this session ends.",
               icon=":material/check:")
