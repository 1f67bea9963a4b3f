"""The Inside page through AppTest: each view on the built-in tumour Xception (its
architecture with receptive fields, feature maps with the statistics over its samples,
filters, activation maximisation, the arithmetic of a convolution), and the attention
and latent views on models trained in the test (a ViT, a slice-attention network, a
GAN), one epoch each: their structure is what the views read."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from tests.app.pages import displayed
from tests.app.waiting import settle
from tests.conftest import app_page

pytestmark = pytest.mark.app

SAMPLE = "Te-gl_0010.jpg"


def texts(at) -> str:
    """The page's captions, markdown and notes, and its pictures' captions, as shown."""
    pictures = [img.caption for e in at.get("image") for img in e.proto.imgs]
    return "\n".join([*(displayed(x.value) for x in [*at.caption, *at.markdown, *at.info]),
                      *(displayed(c) for c in pictures)])


def inside(session_state: dict | None = None):
    return app_page("views/inside.py", session_state)


def with_sample(at, name: str = SAMPLE):
    from core.models import card
    from core.models.samples import samples

    sample = next(s for s in samples(card("braintumor-xception")) if s.name == name)
    return settle(at.selectbox(key="inside_sample").set_value(sample))


def view(at, name: str):
    return settle(at.radio(key="inside_view").set_value(name))


def test_architecture_shows_the_layers_with_their_receptive_fields():
    at = with_sample(inside())
    assert not at.exception and not at.error
    assert at.title[0].value == "Inside"
    rows = at.dataframe[0].value
    assert {"layer", "type", "output", "parameters", "receptive field (px)"} <= set(rows.columns)
    # The nested backbone's layers are there, and the last one sees the whole input.
    last = rows[rows["layer"] == "xception/block14_sepconv2_act"].iloc[0]
    assert last["receptive field (px)"].endswith("(the whole 150x150 input)")
    first = rows[rows["layer"] == "xception/block1_conv1"].iloc[0]
    assert first["receptive field (px)"] == "3x3"
    assert rows["parameters"].sum() >= 20_000_000
    # Folded, the graph shows the backbone as one node; unfolded, its layers.
    folded = len(at.get("plotly_chart")[0].proto.spec)
    at = settle(at.toggle(key="inside_unfold_braintumor-xception_xception").set_value(True))
    assert len(at.get("plotly_chart")[0].proto.spec) > folded


def test_feature_maps_and_their_statistics_over_the_samples():
    at = view(with_sample(inside()), "Feature maps")
    assert not at.exception and not at.error
    at = settle(at.selectbox(key="inside_layer").set_value("xception/block1_conv1_act"))
    words = texts(at)
    assert "32 of 32 channels, 74x74 each" in words
    # The enlarged channel is the grid's first: the most active on average.
    first = words.split("each, by mean: ")[1].split(",")[0]
    assert f"channel {first} over the image the model saw" in words
    # The statistics over the 17 samples and where the classes come apart.
    assert "131 layers over 17 images" in words
    assert len(at.get("plotly_chart")) == 2


def test_filters_show_the_first_convolution_and_norms_of_the_chosen_layer():
    at = view(with_sample(inside()), "Filters")
    assert not at.exception and not at.error
    assert "xception/block1_conv1" in texts(at)
    assert "32 filters of 3x3x3" in texts(at)
    at = settle(at.selectbox(key="inside_layer").set_value("xception/block2_sepconv1"))
    assert at.get("plotly_chart")  # the norms per output channel


def test_the_convolution_arithmetic_agrees_with_the_model():
    at = view(with_sample(inside()), "How a convolution computes")
    assert not at.exception and not at.error
    caption = next(c.value for c in at.caption if "agree with the model's own output" in c.value)
    agreement = float(caption.rsplit("within ", 1)[1].rstrip("."))
    assert agreement < 1e-4
    code = at.code[0].value
    assert "sum of 27 products" in code and "+ bias" in code
    assert len(at.get("plotly_chart")) == 3 + 2 + 3  # conv, pooling, softmax


def test_a_maximised_class_beats_every_sample():
    at = view(with_sample(inside()), "What a unit wants to see")
    at.number_input(key="inside_unit_steps").set_value(20)
    at = settle(at.button(key="inside_unit_run").click())
    assert not at.exception and not at.error
    caption = next(c.value for c in at.caption if "samples: mean" in c.value)
    largest = float(caption.split("largest ")[1].split()[0].rstrip(".("))
    assert float(at.metric[0].value) > largest


@cache
def trained_runs() -> dict:
    """A ViT, a slice-attention network and a GAN, one epoch each on their built-in
    tasks (seconds): the structures the attention and latent views read."""
    from core.train.config import default_config
    from core.train.fit import train

    return {arch: train(default_config(arch, epochs=1, **extra)) for arch, extra in (
        ("vit", {"options": {"depth": 2}}), ("recurrent", {}), ("dcgan", {}))}


def test_vit_attention_per_block_and_head_with_rollouts():
    runs = trained_runs()
    vit = runs["vit"]
    at = inside({"user_models": {vit.card.id: vit.classifier},
                 "trained_models": {vit.card.id: vit}})
    at = settle(at.selectbox(key="inside_model").set_value(vit.card.id))
    box = at.selectbox(key="inside_sample")
    at = settle(box.set_value(box.options[0]))
    at = view(at, "Attention")
    assert not at.exception and not at.error
    assert sum(len(e.proto.imgs) for e in at.get("image")) == 3  # head, rollout, gradient
    words = texts(at)
    assert "attention rollout (all blocks)" in words
    assert "Mean attention distance" in words
    at = settle(at.selectbox(key="inside_att_token").set_value("a patch"))
    assert "where the patch" in texts(at)
    # A block's tokens as feature maps on the 8x8 patch grid (the class token left out).
    at = settle(at.selectbox(key="inside_layer").set_value("block2_add2"))
    at = view(at, "Feature maps")
    assert "block2_add2: 32 of 64 channels, 8x8 each" in texts(at)


def test_slice_weights_beside_the_slice_and_the_gan_latent_space():
    runs = trained_runs()
    recurrent, gan = runs["recurrent"], runs["dcgan"]
    at = inside({"trained_models": {recurrent.card.id: recurrent, gan.card.id: gan}})
    at = settle(at.selectbox(key="inside_model").set_value(recurrent.card.id))
    at = view(at, "Attention")
    assert not at.exception and not at.error
    # The weights drawn are the model's own on the volume shown
    from core.nets.recurrent import slice_weights

    # (the first held-out volume of the last label: the page starts on it)
    first = int(np.flatnonzero(recurrent.test_labels == len(recurrent.card.labels) - 1)[0])
    weights = slice_weights(recurrent.model, recurrent.test_images[first:first + 1])[0]
    assert f"leaned most on slice {int(np.argmax(weights)) + 1} " in texts(at)
    at = settle(at.selectbox(key="inside_model").set_value(gan.card.id))
    at = view(at, "Latent space")
    assert not at.exception and not at.error
    assert "from -3 to +3" in texts(at) and "along the sphere" in texts(at)
    assert sum(len(e.proto.imgs) for e in at.get("image")) == 2  # the walk, the path


def test_a_dicom_study_gives_receptive_fields_in_mm():
    """MR_small.dcm (pydicom's test file) declares its pixel spacing: the table adds
    millimetres, the field in pixels times the mm of one input pixel."""
    from tests.conftest import dicom_file

    path = dicom_file("MR_small.dcm")
    at = inside()
    at.radio(key="inside_source_").set_value("Upload a file").run()
    at = settle(at.file_uploader(key="inside_upload").set_value(
        (path.name, path.read_bytes(), "application/dicom")))
    assert not at.exception and not at.error
    rows = at.dataframe[0].value
    conv = rows[rows["layer"] == "xception/block1_conv2"].iloc[0]
    assert conv["receptive field (px)"] == "7x7"
    per_px = next(c.value for c in at.caption if c.value.startswith("One input pixel is"))
    mm = float(per_px.split("is ")[1].split(" x")[0])
    height = float(conv["receptive field (mm)"].split(" x")[0])
    assert height == pytest.approx(7 * mm, abs=0.06)


def test_a_segmentation_model_gets_every_view_it_can():
    """The head CT U-Net (no labelled samples of its own: the others' stand in) through
    each view a page run computes at once."""
    at = settle(inside().selectbox(key="inside_model").set_value("head-ct-unet"))
    box = at.selectbox(key="inside_sample")
    at = settle(box.set_value(box.options[0]))
    for name in ("Architecture", "Feature maps", "Filters", "How a convolution computes"):
        at = view(at, name)
        assert not at.exception and not at.error, name
    assert "of the centre pixel" in texts(at)
