"""The shipped segmentation models: weights as their cards say, held-out Dice as their
cards say, and the training volumes aligned voxel for voxel with their labels."""

from __future__ import annotations

import numpy as np
import pytest

from core.models.cards import ModelCard, card
from core.models.registry import model_file, sha256
from core.segment import data, train

MODELS = sorted(train.RECIPES)


@pytest.mark.parametrize("model_id", MODELS)
def test_weights_match_their_card(model_id):
    c = card(model_id)
    assert c.task == "segmentation" and c.plane == "axial"
    assert "not for diagnosis" in c.intended_use
    assert sha256(model_file(c)) == c.source["sha256"]
    assert c.source["split"]["test"] == [list(s) for s in train.RECIPES[model_id].split["test"]]
    assert set(c.label_colours) == set(c.labels[1:])


@pytest.mark.parametrize("model_id", MODELS)
def test_held_out_dice_is_what_the_card_says(model_id):
    import keras

    c = card(model_id)
    recipe = train.RECIPES[model_id]
    model = keras.models.load_model(model_file(c), compile=False)
    study, labels = recipe.data()
    measured = train.evaluate(model, c, study, labels, recipe.indices("test"), recipe.plane)
    stated = c.evaluation["held_out"]
    assert c.evaluation["slices"] == recipe.indices("test")
    for name in c.labels[1:]:
        assert measured["dice"][name] == pytest.approx(stated["dice"][name], abs=0.01)
        assert measured["iou"][name] == pytest.approx(stated["iou"][name], abs=0.01)


def test_brain_labels_sit_on_the_t1_tissue():
    study, labels = data.brain_tissue()
    assert labels.labels.shape == study.pixels.shape == (189, 233, 197)
    np.testing.assert_array_equal(labels.affine, study.affine)
    t1 = study.pixels
    grey = t1[labels.labels == 1].mean()
    white = t1[labels.labels == 2].mean()
    other = t1[labels.labels == 0].mean()
    # T1: white matter brighter than grey, grey brighter than CSF and background.
    assert white > grey * 1.15 and grey > other * 1.5
    assert [s.name for s in labels.segments] == ["grey matter", "white matter"]


def test_head_ct_labels_follow_the_hounsfield_units():
    study, labels = data.head_ct()
    assert study.units == "HU" and study.modality == "CT"
    assert labels.labels.shape == study.pixels.shape == (108, 256, 256)
    np.testing.assert_array_equal(labels.affine, study.affine)
    hu = study.pixels
    assert hu[labels.labels == 2].min() >= data.BONE_HU
    soft = hu[labels.labels == 1]
    assert soft.max() < data.BONE_HU and soft.min() >= -142
    # The scanner table (dense, outside the head) is not labelled: below the head in
    # the axial view (posterior), pixels >= 226 HU without a label exist.
    assert ((hu >= data.BONE_HU) & (labels.labels == 0)).sum() > 1000


def test_head_ct_is_viewed_the_right_way_up():
    study, labels = data.head_ct()
    # Axial: the table (unlabelled dense pixels) lies behind the head, at the bottom.
    middle = study.count("axial") // 2
    view = study.view(middle, "axial").values
    cut = labels.view(middle, "axial")
    table = (view >= data.BONE_HU) & (cut == 0)
    rows = np.nonzero(table.any(axis=1))[0]
    head_rows = np.nonzero(cut.any(axis=1))[0]
    assert rows.mean() > head_rows.mean()
    # Coronal: the vertex at the top, so the head is narrower near its top edge than
    # lower down (the scan stops at the skull base, where the head is widest).
    coronal = labels.view(study.count("coronal") // 2, "coronal") > 0
    rows = np.nonzero(coronal.any(axis=1))[0]
    width = coronal.sum(axis=1)
    assert width[rows[0] + 3] < 0.6 * width[rows[len(rows) // 2]]


def test_samples_pair_each_volume_with_its_model():
    offered = data.samples()
    assert {s.model for s in offered} == set(MODELS)
    for s in offered:
        assert isinstance(card(s.model), ModelCard)
        assert s.truth is None or s.truth.labels.shape == s.study.pixels.shape
    # Each model's training volume comes with its ground truth; Colin27 is another brain.
    assert {s.model for s in offered if s.truth is not None} == set(MODELS)
    assert [s.file for s in offered if s.truth is None] == ["colin27"]
