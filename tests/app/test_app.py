"""The app through Streamlit's AppTest: pages render, samples and uploads work.

A page submits its maps as jobs and returns; `settle` waits for them and reruns it, as
the browser's polling does."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.app.pages import displayed
from tests.app.waiting import settle
from tests.conftest import app_page


def explain_page() -> AppTest:
    return app_page("views/explain.py")


def captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_home_says_what_it_is_and_is_not():
    at = app_page()
    assert at.title[0].value == "MedLens"
    assert any("not for diagnosis" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"braintumor-xception", "pneumonia-xception",
                                   "braintumor-vgg16", "skinlesion-xception",
                                   "brain-tissue-unet", "head-ct-unet"}
    assert dict(zip(table["model"], table["task"], strict=True))["head-ct-unet"] == \
        "segmentation"


def test_sample_gives_prediction_chart_and_overlay(brain_samples):
    at = explain_page()
    sample_box = next(s for s in at.selectbox if s.label == "Sample")
    sample = next(s for s in brain_samples if s.name == "Te-me_0016.jpg")
    settle(sample_box.set_value(sample))
    assert not at.exception
    assert at.metric[0].value == "meningioma"
    assert any("(softmax of its logits)" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # probabilities; deletion and insertion curves
    assert "Grad-CAM for 'meningioma' on Te-me_0016.jpg" in captions(at)
    # Changing the class to explain redraws the map for that class.
    settle(next(s for s in at.selectbox if s.label == "Class to explain").set_value("glioma"))
    assert "Grad-CAM for 'glioma' on Te-me_0016.jpg" in captions(at)


def test_onnx_model_predicts_on_onnx_and_is_explained_on_its_keras_port(brain_samples):
    at = explain_page()
    next(s for s in at.selectbox if s.label == "Model").set_value("braintumor-vgg16").run()
    sample = next(s for s in brain_samples if s.name == "Te-pi_0014.jpg")
    settle(next(s for s in at.selectbox if s.label == "Sample").set_value(sample))
    assert not at.exception
    assert at.metric[0].value == "pituitary"
    assert any("(the model's own output)" in c.value for c in at.caption)
    assert "Grad-CAM for 'pituitary' on Te-pi_0014.jpg" in captions(at)
    assert any(c.value.startswith("layer block5_pool") for c in at.caption)


def test_methods_side_by_side_with_their_aucs(brain_samples):
    at = explain_page()
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    next(s for s in at.selectbox if s.label == "Sample").set_value(sample).run()
    # The attention methods are for a ViT: the Xception is not offered them.
    offered = at.multiselect[0].options  # the titles
    assert "Grad-CAM" in offered and "Occlusion" in offered
    assert not {"Attention rollout", "Gradient-weighted attention"} & set(offered)
    settle(at.multiselect[0].set_value(["gradcam", "saliency", "occlusion"]))
    assert not at.exception and not at.error
    for title in ("Grad-CAM", "Saliency", "Occlusion"):
        assert f"{title} for 'glioma' on Te-gl_0010.jpg" in captions(at)
    scores = [c.value for c in at.caption if c.value.startswith("ROAD")]
    assert len(scores) == 3 and all("random" in s and "Deletion AUC" in s for s in scores)
    # Each chosen method shows its options with their defaults, and an expected cost.
    assert at.number_input(key="option_occlusion_patch").value == 0.125
    assert any(m.value.startswith("**Occlusion**") and "about" in m.value
               for m in at.markdown)
    # A changed option makes a new map; the class picker applies to every method.
    settle(at.number_input(key="option_occlusion_patch").set_value(0.25))
    assert not at.exception
    settle(next(s for s in at.selectbox if s.label == "Class to explain").set_value("meningioma"))
    assert "Saliency for 'meningioma' on Te-gl_0010.jpg" in captions(at)


def test_layer_picker_and_sanity_check(brain_samples):
    at = explain_page()
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    next(s for s in at.selectbox if s.label == "Sample").set_value(sample).run()
    settle(next(s for s in at.selectbox if s.label == "Layer (CAM methods)").set_value(
        "xception/block13_sepconv2_act"))
    assert any(c.value.startswith("layer xception/block13_sepconv2_act") for c in at.caption)
    settle(at.multiselect[0].set_value(["guided-backprop"]))
    at.number_input(key="sanity_steps").set_value(3).run()
    settle(next(b for b in at.button if b.label == "Sanity check").click())
    assert not at.exception and not at.error
    randomised = [c for c in captions(at) if c.startswith("random down to")]
    assert len(randomised) == 3 and randomised[-1].startswith("random down to xception/block1")
    assert len(at.get("plotly_chart")) >= 2  # probabilities, and the correlation curve
    # The verdict by its stated rule: Guided Backprop keeps the image (Adebayo et al.).
    verdicts = [e.value for e in (*at.success, *at.warning, *at.info)
                if e.value.startswith(("Pass", "Fail", "Inconclusive"))]
    assert len(verdicts) == 1
    assert verdicts[0].replace("\\", "").startswith("Fail: after randomising down to")
    assert any(c.value.startswith("Rule: pass when the Spearman") for c in at.caption)


def test_dicom_upload_is_explained(ct_small):
    at = explain_page()
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].set_value(("CT_small.dcm", ct_small.read_bytes(), "application/dicom"))
    settle(at)
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
    message = displayed(at.error[0].value)
    assert message.startswith(expected) and "\n" not in message
    # The page is still usable afterwards.
    at.radio[0].set_value("Built-in sample").run()
    assert not at.exception and not at.error


def test_a_mask_gives_each_map_its_localisation(ct_small, tmp_path):
    from core.studies import open_study

    study = open_study(ct_small, name="CT_small.dcm")
    rows, cols = study.image_shape
    box = np.zeros((rows, cols), np.uint8)
    box[rows // 4: 3 * rows // 4, cols // 4: 3 * cols // 4] = 255
    png = tmp_path / "box.png"
    Image.fromarray(box).save(png)
    at = explain_page()
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].set_value(("CT_small.dcm", ct_small.read_bytes(), "application/dicom"))
    at.run()
    mask_box = next(u for u in at.file_uploader if u.label.startswith("A mask of this study"))
    mask_box.set_value(("box.png", png.read_bytes(), "image/png"))
    at = settle(at)
    assert not at.exception and not at.error
    said = [displayed(c.value) for c in at.caption
            if "of the map's energy lies inside every segment" in displayed(c.value)]
    assert said  # one per map: Grad-CAM by default
    # A uniform map would have the box's share: a quarter of the image.
    assert "(a uniform map: 25%)" in said[0]
