"""Home: what MedLens is and what it must not be used for."""

import streamlit as st

from core.models import INTENDED_USE, cards

st.title("MedLens")
st.markdown(
    "Look inside medical-imaging models: open a study, run a real trained model on it, "
    "see its prediction and **why** it made it (maps over the image), exactly what the "
    "model was shown, the masks a segmentation model draws, how two architectures differ "
    "on it, and how a model does on a labelled set."
)
st.warning(
    f"**Intended use:** {INTENDED_USE} MedLens shows what a model computes; it does "
    "not give a diagnosis, and its models have not been validated for clinical use.",
    icon=":material/warning:",
)
st.page_link("views/viewer.py", label="View a study: DICOM, NIfTI, PNG or JPEG",
             icon=":material/image_search:")
st.page_link("views/explain.py", label="Explain a study: twelve methods, and whether to "
             "trust their maps", icon=":material/visibility:")
st.page_link("views/inside.py", label="Look inside a model: its layers, what each one "
             "sees, its filters, what a unit wants to see, attention",
             icon=":material/account_tree:")
st.page_link("views/segment.py", label="Segment a study: masks as a viewer draws them, "
             "Dice and HD95 against a ground truth, Seg-Grad-CAM",
             icon=":material/layers:")
st.page_link("views/compare.py", label="Compare 2 to 4 models on one study, side by side",
             icon=":material/compare:")
st.page_link("views/evaluate.py", label="Evaluate models on a labelled set: accuracy, F1, "
             "confusion matrix, ROC, calibration", icon=":material/fact_check:")
st.page_link("views/train.py", label="Train the field's architectures live, on real images "
             "that ship offline or on yours", icon=":material/model_training:")
st.page_link("views/zoo.py", label="Model zoo: every model's card and layers; add your own",
             icon=":material/inventory_2:")

st.subheader("Built-in models")
# Widths that add up to the page's width at 1440 px, and rows tall enough that Streamlit
# wraps the long texts (it wraps only above 4rem): the whole table is read, none cut off.
WIDTHS = {"model": 135, "task": 95, "purpose": 190, "labels": 130, "input": 70,
          "runtime": 60, "source": 115, "licence": 115}
st.dataframe(
    [
        {
            "model": c.id,
            "task": c.task,
            "purpose": c.purpose,
            "labels": ", ".join(c.labels),
            "input": "x".join(map(str, c.input_shape)),
            "runtime": c.runtime,
            "source": c.origin,
            "licence": c.license,
        }
        for c in cards()
    ],
    hide_index=True,
    width="stretch",
    row_height=72,
    column_config={name: st.column_config.TextColumn(name, width=px)
                   for name, px in WIDTHS.items()},
)
