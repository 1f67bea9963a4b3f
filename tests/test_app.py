"""The app through Streamlit's AppTest: pages render, samples and uploads work."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "dashboard" / "app.py")
# A cold TensorFlow import and model load take far longer than AppTest's default 3 s.
TIMEOUT = 180


def explain_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/explain.py").run()
    assert not at.exception
    return at


def captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_home_says_what_it_is_and_is_not():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "MedLens"
    assert any("not for diagnosis" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"braintumor-xception", "pneumonia-xception",
                                   "braintumor-vgg16"}


def test_sample_gives_prediction_chart_and_overlay(brain_samples):
    at = explain_page()
    sample_box = next(s for s in at.selectbox if s.label == "Sample")
    sample = next(s for s in brain_samples if s.name == "Te-me_0016.jpg")
    sample_box.set_value(sample).run()
    assert not at.exception
    assert at.metric[0].value == "meningioma"
    assert any("(softmax of its logits)" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1
    assert "Grad-CAM for 'meningioma' on Te-me_0016.jpg" in captions(at)
    # Changing the class to explain redraws the map for that class.
    next(s for s in at.selectbox if s.label == "Class to explain").set_value("glioma").run()
    assert "Grad-CAM for 'glioma' on Te-me_0016.jpg" in captions(at)


def test_onnx_model_predicts_and_says_why_there_is_no_map(brain_samples):
    at = explain_page()
    next(s for s in at.selectbox if s.label == "Model").set_value("braintumor-vgg16").run()
    sample = next(s for s in brain_samples if s.name == "Te-pi_0014.jpg")
    next(s for s in at.selectbox if s.label == "Sample").set_value(sample).run()
    assert not at.exception
    assert at.metric[0].value == "pituitary"
    assert any("(the model's own output)" in c.value for c in at.caption)
    assert any("runs on onnxruntime" in i.value for i in at.info)
    assert not any("Grad-CAM for" in c for c in captions(at))


def test_dicom_upload_is_explained(ct_small):
    at = explain_page()
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].set_value(("CT_small.dcm", ct_small.read_bytes(), "application/dicom"))
    at.run()
    assert not at.exception
    assert not at.error
    assert at.metric[0].value in ("glioma", "meningioma", "notumor", "pituitary")
    assert any(c.endswith("on CT_small.dcm") for c in captions(at))


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("empty.dcm", b"", "empty.dcm: the file is empty"),
        ("noise.png", bytes(range(256)) * 40,
         "noise.png: not a DICOM, PNG, JPEG or NIfTI file"),
        ("cut.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "cut.jpg: cannot decode the image"),
    ],
)
def test_bad_upload_is_one_line_and_app_keeps_running(name, payload, expected):
    at = explain_page()
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, payload, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith(expected) and "\n" not in message
    # The page is still usable afterwards.
    at.radio[0].set_value("Built-in sample").run()
    assert not at.exception and not at.error
