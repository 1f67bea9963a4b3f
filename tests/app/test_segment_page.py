"""The Segment page through AppTest: the mask of a built-in volume, its volumes, the
comparison with the ground truth, the per-slice chart, Seg-Grad-CAM beside the label's
mask, and uploads (a study with its mask; a mask that does not fit: one line)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.segment import data
from core.segment.write import write_nifti, write_volume
from tests.app.pages import displayed
from tests.app.waiting import settle
from tests.conftest import app_page

pytestmark = pytest.mark.app


def segment_page():
    return app_page("views/segment.py")


def image_captions(at) -> list[str]:
    return [displayed(img.caption) for element in at.get("image")
            for img in element.proto.imgs]


def texts(at) -> str:
    return "\n".join(displayed(x.value) for x in [*at.caption, *at.markdown, *at.info])


def test_the_ct_volume_segmented_and_compared():
    at = segment_page()
    at.selectbox(key="segment_model").set_value("head-ct-unet")
    at = settle(at)
    assert not at.error and not at.exception
    assert at.title[0].value == "Segment"
    # The mask and the ground truth side by side, both on the same slice.
    captions = image_captions(at)
    assert any(c.startswith("head-ct-unet's mask · axial") for c in captions)
    assert any(c.startswith("Ground truth") for c in captions)
    volumes, scores = at.dataframe[0].value, at.dataframe[1].value
    assert list(volumes["label"]) == ["soft tissue", "bone"]
    assert (volumes["model (mL)"] > 100).all()
    assert list(scores["label"]) == ["soft tissue", "bone"]
    assert (scores["Dice"] > 0.85).all()
    assert "MONAI" in texts(at)
    # Seg-Grad-CAM's map and its localisation against the truth.
    assert "of the map's energy lies inside the ground truth's" in texts(at)


def test_a_label_box_and_layer_are_explained():
    at = segment_page()
    at.selectbox(key="segment_model").set_value("head-ct-unet")
    at = settle(at)
    at.selectbox(key="segment_label_head-ct-unet").set_value("soft tissue")
    at.radio(key="segment_region").set_value("box")
    at = settle(at)
    at.selectbox(key="segment_layer_head-ct-unet").set_value("dec1_conv2")
    at = settle(at)
    assert not at.error and not at.exception
    assert any("soft tissue over a box · dec1_conv2" in c for c in image_captions(at))


def test_the_worst_slice_button_and_hiding_a_segment():
    at = segment_page()
    at.selectbox(key="segment_model").set_value("head-ct-unet")
    at = settle(at)
    worst = next(b for b in at.button if b.label.startswith("Worst bone slice"))
    number = int(worst.label.rsplit("(", 1)[1].rstrip(")"))
    at = settle(worst.click())
    assert at.slider(key="segment_sample-1_index_axial").value == number
    assert any(c.startswith(f"head-ct-unet's mask · axial {number} of 108")
               for c in image_captions(at))
    shown = image_captions(at)
    at.checkbox(key="segment_head-ct-unet_show_2").uncheck()
    at = settle(at)
    assert not at.exception and image_captions(at) == shown


def test_an_upload_with_its_mask_and_one_that_does_not_fit(tmp_path):
    study, truth = data.head_ct()
    volume = write_volume(study, tmp_path / "head.nii.gz").read_bytes()
    mask = write_nifti(truth, tmp_path / "head.truth.nii.gz").read_bytes()
    at = segment_page()
    at.selectbox(key="segment_model").set_value("head-ct-unet")
    at.radio(key="segment_source").set_value("Upload").run()
    at.file_uploader(key="segment_upload").set_value(
        ("head.nii.gz", volume, "application/gzip"))
    at.file_uploader(key="segment_truth_upload").set_value(
        ("head.truth.nii.gz", mask, "application/gzip"))
    at = settle(at)
    assert not at.error and not at.exception
    scores = at.dataframe[1].value
    assert (scores["Dice"] > 0.85).all()
    # The written mask keeps its names and colours: the truth's segments are matched.
    assert list(scores["label"]) == ["soft tissue", "bone"]
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    at.file_uploader(key="segment_truth_upload").set_value(
        ("small.png", small.read_bytes(), "image/png"))
    at = settle(at)
    assert len(at.error) == 1 and "do not fit" in displayed(at.error[0].value)
    # The study and its mask stay on the page.
    assert any(c.startswith("head-ct-unet's mask") for c in image_captions(at))
