"""MedLens dashboard: `streamlit run dashboard/app.py`."""

from pathlib import Path

import numpy as np
import streamlit as st
from streamlit import config
from streamlit.runtime.scriptrunner import script_runner

from core import models
from core.explain import RegionTarget, attribute, explain_input
from core.jobs import executor
from core.models.samples import all_samples, samples
from core.studies import open_study

# The built-in models the pages run, in the order a visitor is likely to need them (the
# Explain page opens on the first); "@keras" is the VGG16's Keras port, on which the
# gradient and CAM methods explain it.
WARM = ("braintumor-xception", "pneumonia-xception", "braintumor-vgg16",
        "braintumor-vgg16@keras", "skinlesion-xception", "head-ct-unet", "brain-tissue-unet")
# Served by this server: a material icon as favicon is fetched from fonts.gstatic.com.
FAVICON = Path(__file__).resolve().parents[1] / "assets" / "favicon.png"
# Wide enough for a model id, and a sample's file name with its label, read whole.
SIDEBAR_PX = 460
# The answer above the fold of a 1440x900 screen: less empty margin round the page, and
# no picture taller than 26rem (a tall study pushed its map below the fold); the Viewer's
# picture is the page itself and may take more.
LAYOUT_CSS = """<style>
[data-testid="stMainBlockContainer"] {padding: 3.5rem 2.5rem 4rem;}
[data-testid="stImage"] img {max-height: 26rem; object-fit: contain;}
.st-key-viewer_image [data-testid="stImage"] img {max-height: 38rem;}
</style>"""


def warm(name: str) -> None:
    """Load a built-in model ("id" or "id@runtime") and trace what a page first asks of
    it, a prediction and a Grad-CAM (on one of its samples, or another model's; for a
    segmentation model a slice of its volume and Seg-Grad-CAM): the first map then costs
    its computing only, not seconds of loading and tracing."""
    model_id, _, runtime = name.partition("@")
    classifier = models.load(model_id, runtime or None)
    if classifier.card.task == "segmentation":
        # Tracing needs only the input's shape: a blank slice, not a volume read at start.
        blank = np.zeros((1, *classifier.card.input_shape), np.float32)
        classifier.probabilities(blank)
        attribute(classifier.keras_model, blank, "gradcam",
                  RegionTarget(len(classifier.card.labels) - 1))
        return
    sample = (samples(classifier.card) or all_samples())[0]
    model_input = classifier.card.prepare(open_study(sample.path, name=sample.name))
    classifier.predict(model_input)
    if classifier.keras_model is not None:
        explain_input(classifier, model_input, "gradcam")


def keep_models_between_runs() -> None:
    """Streamlit ends every script run, a fragment's half-second poll included, with
    `keras.backend.clear_session()` (Keras' global state reset for every thread, TF's
    kernel cache emptied) and two full garbage collections: with the models loaded that is
    about 0.45 s holding the GIL per run, and a reset under the jobs tracing in worker
    threads (a first Grad-CAM took 170-200 s instead of 3-6 s while a page polled). This
    server keeps its models for its life, so neither is wanted: Python's own generational
    collection still runs."""
    script_runner._clean_problem_modules = lambda: None
    config.set_option("runner.postScriptGC", False)


keep_models_between_runs()
# Loading a model takes seconds (TensorFlow's import, the file, its checks), tracing its
# first Grad-CAM more: start them all in the background as the server's first run begins;
# the executor does this once per process.
executor().warm(warm, WARM)

st.set_page_config(page_title="MedLens", page_icon=str(FAVICON), layout="wide",
                   initial_sidebar_state=SIDEBAR_PX)

pages = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/viewer.py", title="Viewer", icon=":material/image_search:",
            url_path="viewer"),
    st.Page("views/explain.py", title="Explain", icon=":material/visibility:",
            url_path="explain"),
    st.Page("views/inside.py", title="Inside", icon=":material/account_tree:",
            url_path="inside"),
    st.Page("views/segment.py", title="Segment", icon=":material/layers:",
            url_path="segment"),
    st.Page("views/zoo.py", title="Model zoo", icon=":material/inventory_2:", url_path="zoo"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:",
            url_path="evaluate"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:",
            url_path="train"),
]
st.html(LAYOUT_CSS)
with st.sidebar:
    st.caption(":material/info: Research and teaching; **not for diagnosis**.")
st.navigation(pages).run()
