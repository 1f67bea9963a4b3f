"""Training configs as data: each architecture's default recipe, settings checked with
one-line errors, the config's JSON and the command that repeats it; the live record; the
macro F1 that picks a classifier's checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from core.nets.catalogue import ARCHITECTURES
from core.train.card import command
from core.train.config import RECIPES, TrainingConfig, default_config
from core.train.fit import macro_f1
from core.train.live import Live, live


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_has_a_default_recipe(arch):
    config = default_config(arch)
    a = ARCHITECTURES[arch]
    assert config.size == a.size and config.data == f"builtin:{a.task}"
    assert config.epochs == RECIPES[arch].epochs
    assert set(config.options) == set(a.options)
    again = TrainingConfig.from_dict(config.to_dict())
    assert again == config and again.to_json() == config.to_json()
    assert command(config).startswith(f"medlens train --arch {arch} --data builtin:")


@pytest.mark.parametrize("given, words", [
    ({"epochs": 0}, "epochs: 0 is below 1"),
    ({"optimizer": "adagrad"}, "optimizer: 'adagrad' is not one of"),
    ({"options": {"depth": 3}}, "unknown cnn option 'depth'"),
    ({"options": {"filters": "many"}}, "filters: 'many' is not a int"),
    ({"size": (8, 32, 32)}, "size: cnn takes HxW"),
    ({"preprocessing": {"normalise": "l2"}}, "normalise: 'l2' is not one of"),
    ({"colour": "red"}, "unknown setting 'colour'"),
])
def test_bad_settings_are_one_line(given, words):
    with pytest.raises(ValueError, match=words) as caught:
        default_config("cnn", **given)
    assert "\n" not in str(caught.value)


def test_given_settings_override_the_recipe():
    config = default_config("cnn", epochs="3", learning_rate=0.01, seed=7,
                            options={"filters": "4"})
    assert (config.epochs, config.learning_rate, config.seed) == (3, 0.01, 7)
    assert config.options["filters"] == 4
    assert config.shuffled().shuffle_labels and not config.shuffle_labels
    assert "--shuffle-labels" in command(config.shuffled())


def test_macro_f1_is_the_mean_of_the_classes_f1():
    true = np.array([0, 0, 1, 1, 2, 2])
    picked = np.array([0, 1, 1, 1, 2, 0])
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: 2/3
    assert macro_f1(true, picked, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert macro_f1(true, picked, 4) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_the_live_record_keeps_curves_and_the_stop():
    record = Live()
    record.begin(3)
    record.batch(0.5, 1.0, 10.0)
    record.epoch({"epoch": 1, "seconds": 1.0, "loss": 0.9, "val_loss": 1.1}, best=True)
    record.epoch({"epoch": 2, "seconds": 2.0, "loss": 0.7, "val_loss": 1.2}, best=False)
    assert record.history() == {"loss": [0.9, 0.7], "val_loss": [1.1, 1.2]}
    snap = record.snapshot()
    assert snap["best_epoch"] == 1 and snap["batches"] == [(0.5, 1.0)]
    assert not record.stopping
    record.stop()
    assert record.stopping
    assert live("some-key") is live("some-key") and live("some-key") is not live("other")
