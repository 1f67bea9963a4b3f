"""Comparing models side by side: the agreement measures on maps built to a known answer,
`medlens compare` on the real models and samples, bad input, and the Compare page.

The CLI runs in-process (`core.cli.main`), so every model is loaded once for the whole
file (about 10 s each) and the page test reuses them.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.compare import shared_labels
from core.explain import ExplainError
from core.explain.metrics.agreement import agreement, top_region
from core.models import card
from tests.app.pages import model_cells
from tests.app.waiting import settle, spy_on_submit
from tests.conftest import app_page

TUMOUR = "braintumor-xception,braintumor-vgg16"


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def glioma(brain_samples):
    return next(s.path for s in brain_samples if s.name == "Te-gl_0010.jpg")


# -- agreement on constructed maps -------------------------------------------------------

def test_identical_maps_agree_fully():
    values = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    assert agreement(values, values) == {"iou_top20": 1.0, "spearman": pytest.approx(1.0),
                                         "constant": [False, False]}


def test_reversed_maps_have_disjoint_tops_and_spearman_minus_one():
    ascending = np.arange(100, dtype=np.float32).reshape(10, 10)
    reversed_ = ascending[::-1, ::-1]
    measured = agreement(ascending, reversed_)
    assert measured["iou_top20"] == 0.0
    assert measured["spearman"] == pytest.approx(-1.0)
    # Each top region is exactly the 20 highest pixels: the last two rows, the first two.
    assert top_region(ascending).sum() == 20 and top_region(ascending)[8:].all()


def test_disjoint_blobs_have_iou_zero_and_overlapping_ones_their_overlap():
    a, b, c = (np.zeros((20, 20), np.float32) for _ in range(3))
    a[:4, :] = 1.0   # rows 0-3: 20% of the pixels
    b[-4:, :] = 1.0  # rows 16-19
    c[2:6, :] = 1.0  # rows 2-5: half of a's rows
    assert agreement(a, b)["iou_top20"] == 0.0
    assert agreement(a, c)["iou_top20"] == pytest.approx(40 / 120)  # 2 rows of 6


def test_constant_maps_read_zero_and_are_flagged():
    values = np.random.default_rng(1).random((16, 16))
    empty = np.zeros((16, 16))
    assert agreement(empty, values) == {"iou_top20": 0.0, "spearman": 0.0,
                                        "constant": [True, False]}
    assert agreement(values, np.full((16, 16), 0.5))["constant"] == [False, True]
    # Two identical constant maps are not "in agreement": neither has a top or an order.
    assert agreement(empty, empty) == {"iou_top20": 0.0, "spearman": 0.0,
                                       "constant": [True, True]}
    assert not top_region(empty).any()


def test_ties_plateau_at_minimum_is_not_a_top_region():
    sparse = np.zeros((10, 10))
    sparse[0, :5] = [0.2, 0.4, 0.6, 0.8, 1.0]  # 5% of the pixels above a floor of zeros
    assert top_region(sparse).sum() == 5  # the floor (95% zeros) is left out
    plateau = np.zeros((10, 10))
    plateau[:3] = 1.0  # 30% tied at the top: all kept, the region is larger than 20%
    assert top_region(plateau).sum() == 30


def test_maps_of_different_shapes_are_refused():
    with pytest.raises(ExplainError, match="study's resolution"):
        agreement(np.random.default_rng(2).random((150, 150)),
                  np.random.default_rng(3).random((240, 240)))


def test_shared_labels_in_words():
    tumour = shared_labels([card("braintumor-xception"), card("braintumor-vgg16")])
    assert tumour.labels == ("glioma", "meningioma", "notumor", "pituitary")
    assert tumour.note.startswith("All models have the same labels")
    none = shared_labels([card("braintumor-xception"), card("pneumonia-xception")])
    assert none.labels == ()
    assert "No label is shared" in none.note and "NORMAL, PNEUMONIA" in none.note
    # A model with an extra label is compared on the shared ones, and that is said.
    wider = dataclasses.replace(card("braintumor-vgg16"), id="wider",
                                labels=("glioma", "meningioma", "notumor", "pituitary",
                                        "other"))
    some = shared_labels([card("braintumor-xception"), wider])
    assert some.labels == tumour.labels
    assert "wider also has other" in some.note


# -- medlens compare ------------------------------------------------------------------------

def test_xception_vs_vgg16_json(capsys, glioma):
    code, out, err = cli(capsys, "compare", "--models", TUMOUR, "--method", "gradcam",
                         glioma, "--json")
    assert code == 0 and err == "", err
    result = json.loads(out)
    assert [m["id"] for m in result["models"]] == TUMOUR.split(",")
    for m in result["models"]:
        assert {"id", "label", "probabilities", "seconds"} <= set(m)
        assert sum(m["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert m["seconds"]["forward"] > 0 and m["seconds"]["explanation"] > 0
        assert m["explained"] == m["label"]  # no --target: each explains its own answer
    xception, vgg16 = result["models"]
    # Measured: Xception p(glioma) 0.895, VGG16 0.997; the VGG16's map on its Keras port.
    assert (xception["label"], vgg16["label"]) == ("glioma", "glioma")
    assert xception["probabilities"]["glioma"] == pytest.approx(0.895, abs=0.01)
    assert vgg16["probabilities"]["glioma"] == pytest.approx(0.997, abs=0.01)
    assert (vgg16["runtime"], vgg16["explained_on"]) == ("onnx", "keras")
    assert set(result["agreement"]) == {"iou_top20", "spearman", "constant"}
    assert 0.0 <= result["agreement"]["iou_top20"] <= 1.0
    assert -1.0 <= result["agreement"]["spearman"] <= 1.0
    assert result["agreement"]["constant"] == []
    assert result["sentences"] == [
        "braintumor-xception and braintumor-vgg16 both say glioma (89% and 99.7%)."]


def test_three_models_give_one_agreement_per_pair(capsys, glioma):
    code, out, err = cli(capsys, "compare", "--models", f"{TUMOUR},pneumonia-xception",
                         glioma, "--target", "meningioma", "--json")
    assert code == 0 and err == "", err
    result = json.loads(out)
    pairs = [(p["a"], p["b"]) for p in result["agreement"]]
    assert pairs == [("braintumor-xception", "braintumor-vgg16"),
                     ("braintumor-xception", "pneumonia-xception"),
                     ("braintumor-vgg16", "pneumonia-xception")]
    assert all({"iou_top20", "spearman"} <= set(p) for p in result["agreement"])
    explained = {m["id"]: m["explained"] for m in result["models"]}
    pneumonia = next(m for m in result["models"] if m["id"] == "pneumonia-xception")
    assert explained["braintumor-xception"] == explained["braintumor-vgg16"] == "meningioma"
    assert explained["pneumonia-xception"] == pneumonia["label"]  # it has no meningioma
    assert "pneumonia-xception has no label 'meningioma'" in pneumonia["notes"][0]


def test_models_without_shared_labels_are_stated(capsys, glioma):
    code, out, err = cli(capsys, "compare", "--models", "braintumor-xception,pneumonia-xception",
                         glioma)
    assert code == 0 and err == "", err
    assert "No label is shared by all these models" in out
    assert "they do not share these labels, so their answers cannot be compared" in out
    assert "IoU top-20%" in out and "Spearman" in out


@pytest.mark.parametrize(("models", "expected"), [
    ("braintumor-xception", "compare 2 to 4 models (got 1"),
    ("braintumor-xception,braintumor-vgg16,pneumonia-xception,skinlesion-xception,"
     "braintumor-xception", "compare 2 to 4 models (got 5"),
    ("braintumor-xception,no-such-model", "unknown model 'no-such-model'"),
    ("braintumor-xception,braintumor-xception", "braintumor-xception is given twice"),
])
def test_bad_model_lists_exit_2_with_one_line(capsys, glioma, models, expected):
    code, out, err = cli(capsys, "compare", "--models", models, glioma, "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("medlens: ") and expected in err, err


def test_unreadable_file_and_bad_options_exit_2_with_one_line(capsys, tmp_path, glioma):
    noise = tmp_path / "noise.png"
    noise.write_bytes(bytes(range(256)) * 40)
    for args, expected in [
        ((noise,), "noise.png: not a DICOM, PNG, JPEG or NIfTI file"),
        ((glioma, "--target", "NORMAL"), "'NORMAL' is not a label of any chosen model"),
        ((glioma, "--meta", "sex=male"), "--meta: none of"),
        ((glioma, "--labels", "a,b"), "--labels goes with --model-file"),
        ((glioma, "--method", "nope"), "invalid choice: 'nope'"),
    ]:
        code, out, err = cli(capsys, "compare", "--models", TUMOUR, *args, "--json")
        assert code == 2 and out == "", args
        assert err.count("\n") == 1 and expected in err, err


# -- the Compare page ---------------------------------------------------------------------

def image_captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_page_compares_the_tumour_models_side_by_side(brain_samples, monkeypatch):
    from core.jobs import DONE

    submitted = spy_on_submit(monkeypatch)
    at = app_page("views/compare.py")
    assert at.title[0].value == "Compare"
    assert at.caption[0].value == "Research and teaching; not for diagnosis."
    assert at.multiselect(key="compare_models").value == TUMOUR.split(",")
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    settle(at.selectbox(key="compare_sample").set_value(sample))
    assert not at.exception and not at.error
    assert any("not diagnoses" in w.value for w in at.warning)
    captions = image_captions(at)
    assert "What braintumor-xception saw: 150x150" in captions
    assert "What braintumor-vgg16 saw: 240x240" in captions
    assert captions.count("Grad-CAM for 'glioma' on Te-gl_0010.jpg") == 2
    assert [m.value for m in at.metric] == ["glioma", "glioma"]
    # One column per model, each headed by its id, with its input, answer and map.
    cells = model_cells(at, 2)
    assert [c[0].subheader[0].value for c in cells] == TUMOUR.split(",")
    for column in cells:
        assert sum(len(c.get("image")) for c in column) == 2
        assert sum(len(c.metric) for c in column) == 1
    table = at.dataframe[0].value
    assert list(table["model A"]) == ["braintumor-xception"]
    assert list(table["model B"]) == ["braintumor-vgg16"]
    assert 0.0 <= table["IoU top-20%"][0] <= 1.0
    assert len(at.get("plotly_chart")) == 3  # two probability charts and the heatmap
    assert any("both say glioma" in m.value for m in at.markdown)
    assert any(c.value.startswith("All models have the same labels") for c in at.caption)
    assert sum(c.value.startswith("Forward pass") for c in at.caption) == 2
    # Changing the overlay reuses the comparison: the same job, done, not submitted anew.
    before = [h for h in submitted if h.spec.kind == "compare"]
    assert before and all(h is before[-1] for h in before) and before[-1].state == DONE
    at.slider(key="compare_opacity").set_value(0.7).run()
    assert not at.exception
    after = [h for h in submitted if h.spec.kind == "compare"][len(before):]
    assert len(after) == 1 and after[0] is before[-1]
