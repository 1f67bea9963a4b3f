"""The segmentation training recipe, run small (32x32 inputs, a few slices, a few steps)
through the same code that trains the shipped models, so it cannot rot."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from core.models.cards import ModelCard
from core.models.registry import sha256
from core.segment import data, train
from core.studies import Study
from core.studies.masks import LabelMap


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The brain recipe at 32x32, depth 2, 4 filters, 6 training slices, 3 epochs."""
    recipe = replace(train.RECIPES["brain-tissue-unet"], size=32, depth=2, filters=4,
                     epochs=3, batch=3, guard=5,
                     split={"train": ((88, 94),), "validation": ((99, 101),),
                            "test": ((106, 109),)})
    out = tmp_path_factory.mktemp("models")
    result = train.train(recipe, seed=0, out=out, log=lambda line: None)
    return recipe, out, result


def test_training_lowers_the_loss(tiny):
    _, _, result = tiny
    losses = result["losses"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_written_weights_and_card_round_trip(tiny):
    import keras

    recipe, out, result = tiny
    weights = out / "brain-tissue-unet.keras"
    raw = json.loads((out / "brain-tissue-unet.json").read_text(encoding="utf-8"))
    assert raw["source"]["sha256"] == sha256(weights)
    assert raw["source"]["seed"] == 0
    assert raw["source"]["split"]["test"] == [[106, 109]]
    assert raw["evaluation"]["slices"] == [106, 107, 108]
    held = raw["evaluation"]["held_out"]
    for measure in ("dice", "iou", "hd95_mm"):
        assert set(held[measure]) == {"grey matter", "white matter"}
    card = ModelCard.from_dict(raw)
    assert card.task == "segmentation" and card.input_shape == (32, 32, 1)

    model = keras.models.load_model(weights, compile=False)
    study, _ = data.brain_tissue()
    x = card.prepare(study, frame=100, plane="axial").array[None]
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-4)


def test_the_split_refuses_neighbouring_slabs():
    recipe = train.RECIPES["head-ct-unet"]
    recipe.check(108)
    close = replace(recipe, split={"train": ((0, 30),), "validation": ((33, 40),)})
    with pytest.raises(ValueError, match="closer than 5 slices"):
        close.check(108)
    with pytest.raises(ValueError, match="outside"):
        replace(recipe, split={"test": ((100, 120),)}).check(108)


def test_shipped_splits_keep_guard_bands():
    for recipe in train.RECIPES.values():
        held = set(recipe.indices("test"))
        seen = set(recipe.indices("train")) | set(recipe.indices("validation"))
        assert held and not held & seen
        assert min(abs(a - b) for a in held for b in seen) > recipe.guard


def test_dice_ce_loss_rewards_the_right_mask():
    truth = np.zeros((1, 8, 8), np.int32)
    truth[0, 2:6, 2:6] = 1
    truth[0, 6:, :] = 2
    right = np.eye(3, dtype=np.float32)[truth]
    wrong = np.eye(3, dtype=np.float32)[(truth + 1) % 3]
    loss = train.dice_ce_loss(3)
    assert float(loss(truth, right)) < 0.01
    assert float(loss(truth, wrong)) > 1.0


def test_label_slices_are_cut_as_the_study_views():
    # A volume stored with rows towards anterior and slices towards superior (as the head
    # CT is): the labels must come out exactly where the study's pixels do, in every plane.
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, (6, 7, 5)).astype(np.uint8)
    affine = np.array([[0.9, 0, 0, 0], [0, -0.9, 0, 6], [0, 0, 1.5, 0], [0, 0, 0, 1]])
    study = Study(name="v", format="NIfTI", pixels=values.astype(np.float32),
                  photometric="MONOCHROME2", stored_dtype="uint8", window=None,
                  pixel_spacing=(0.9, 0.9), slice_spacing=1.5, affine=affine)
    labels = LabelMap(name="l", labels=values, segments=(), source="test", affine=affine)
    for plane in ("axial", "coronal", "sagittal"):
        for i in range(study.count(plane)):
            np.testing.assert_array_equal(labels.view(i, plane),
                                          study.view(i, plane).values)
            picture = train.target(labels, i, plane, study.view(i, plane).values.shape)
            np.testing.assert_array_equal(picture, study.view(i, plane).values)


def test_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(1)
    y = np.zeros((4, 32, 32), np.uint8)
    y[:, 8:20, 4:14] = 1
    x = (y[..., None] * 0.8).astype(np.float32)
    xa, ya = train.augment(x, y, rng, flip=True)
    assert xa.shape == x.shape and ya.shape == y.shape
    assert not np.array_equal(ya, y)  # something moved
    for i in range(4):
        inside = xa[i, ..., 0][ya[i] == 1]
        outside = xa[i, ..., 0][ya[i] == 0]
        assert inside.mean() > 0.5 and outside.mean() < 0.2
