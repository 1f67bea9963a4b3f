"""Model zoo: every model this session can use, its card, and on demand its layers."""

import streamlit as st

from core import models
from core.models import ModelCard, ModelError
from core.models.architecture import Architecture, architecture, card_facts
from dashboard.components import models as session_models
from dashboard.components.text import literal, show_error

st.title("Model zoo")
st.caption("Research and teaching; not for diagnosis.")

# Keras tables: what a reader compares across layers. ONNX nodes have no "trainable".
KERAS_COLUMNS = ["name", "type", "output_shape", "parameters", "trainable", "children"]
NESTED_COLUMNS = ["path", "type", "output_shape", "parameters", "trainable", "children"]
ONNX_COLUMNS = ["name", "type", "output_shape", "parameters", "children"]


def layer_table(arch: Architecture, rows, columns: list[str]) -> None:
    config = {"parameters": st.column_config.NumberColumn(format="localized"),
              "trainable": st.column_config.NumberColumn(format="localized"),
              "output_shape": "output shape",
              "children": "subgraph" if arch.runtime == "onnx" else "nested model"}
    st.dataframe([{k: r[k] for k in columns} for r in arch.records(rows)],
                 column_config=config, hide_index=True, width="stretch")


def show_layers(card: ModelCard) -> None:
    """The layer (or node) table, loaded when asked for: loading a model takes seconds."""
    runtime = card.runtime
    if len(card.runtimes) > 1:
        runtime = st.radio("Runtime", card.runtimes, horizontal=True,
                           key=f"zoo_runtime_{card.id}",
                           format_func=lambda r: f"{r} (the model file's own)"
                           if r == card.runtime else f"{r} (a port of the same weights)")
    with st.status(f"Reading {literal(card.id)}'s "
                   f"{'nodes' if runtime == 'onnx' else 'layers'}…",
                   expanded=False) as status:
        try:
            classifier = (models.load(card.id, runtime) if card.builtin
                          else session_models.uploaded()[card.id])
            arch = architecture(classifier)
        except ModelError as error:
            status.update(label=f"{literal(card.id)}: no table", state="error")
            show_error(error)
            return
        status.update(label=f"{literal(card.id)}: {len(arch.layers)} "
                            f"{'nodes' if arch.runtime == 'onnx' else 'layers'} in all",
                      state="complete")
    st.caption(literal(arch.summary_text()))
    for note in arch.notes:
        st.caption(f":material/info: {literal(note)}")
    layer_table(arch, arch.top_level, ONNX_COLUMNS if arch.runtime == "onnx" else KERAS_COLUMNS)
    for parent in arch.nested:
        inside = arch.inside(parent)
        with st.expander(f"Inside {literal(parent.name, code=True)} ({literal(parent.type)}): "
                         f"{len(inside)} layers, "
                         f"{parent.parameters:,} parameters", expanded=False):
            layer_table(arch, inside, NESTED_COLUMNS)


def show_card(card: ModelCard) -> None:
    with st.container(border=True, key=f"zoo_card_{card.id}"):
        st.subheader(literal(card.name))
        st.caption(literal(card.id, code=True) + ("" if card.builtin
                                                  else " · uploaded: in this session only"))
        st.warning(f"**Intended use:** {card.intended_use}", icon=":material/warning:")
        # A card's facts: an uploaded model's name, labels and licence are the uploader's.
        st.markdown("\n".join(f"- **{heading}:** {literal(words)}"
                              for heading, words in card_facts(card).items()
                              if heading != "Intended use"))
        if st.toggle("Show its layers" if card.runtime == "keras" else "Show its nodes",
                     key=f"zoo_layers_{card.id}"):
            show_layers(card)


with st.expander("Add your own model", icon=":material/upload_file:"):
    st.markdown(
        "A `.keras` or `.onnx` classifier of images, with its labels and how to feed it. "
        "Before it is offered it is checked: a Keras file loads in **safe mode** (a file "
        "that holds Python code, such as a Lambda layer, is refused); it must take one "
        "image input (N, h, w, 1 or 3 channels); its number of outputs must equal the "
        "number of **labels**. An upload lives for **this session only** (nobody else on "
        "the server sees it) and its id starts with `user:`, so it never replaces a "
        "built-in model."
    )
    session_models.upload_form()

# Read after the form, so a model added just now has its card below.
available = session_models.available(task=None)
builtin = sum(c.builtin for c in available.values())
st.markdown(f"{builtin} built-in models" + (f" and {len(available) - builtin} of yours"
                                           if len(available) > builtin else "")
            + ". Each layer table loads its model when asked for.")
for model_card in available.values():
    show_card(model_card)
