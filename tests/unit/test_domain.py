"""The domain check's scoring math (core/models/domain.py) on hand-made features and tiny
Keras models: the kNN distance, the energy, leave-one-out calibration, the max
combination, the final Dense found in the graph, and a model without samples."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.models import domain
from core.models.cards import card
from core.studies import open_study


def test_knn_distance_is_to_the_kth_nearest_normalised_neighbour():
    bank = domain.normalise(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    query = domain.normalise(np.array([[10.0, 0.0]]))  # scale does not matter: normalised
    assert np.allclose(np.linalg.norm(bank, axis=1), 1.0)
    assert domain.knn_distance(query, bank, 1)[0] == pytest.approx(0.0)
    assert domain.knn_distance(query, bank, 2)[0] == pytest.approx(np.sqrt(2))
    assert domain.knn_distance(query, bank, 3)[0] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        domain.knn_distance(query, bank, 4)


def test_energy_is_minus_logsumexp_and_stable():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, 0.0]])
    e = domain.energy(logits)
    assert e[0] == pytest.approx(-np.log(np.exp(logits[0]).sum()))
    assert e[1] == pytest.approx(-1000.0)  # no overflow
    assert domain.energy(logits, temperature=2.0)[0] == pytest.approx(
        -2.0 * np.log(np.exp(logits[0] / 2.0).sum()))


def test_leave_one_out_scores_each_sample_against_the_others():
    bank = domain.normalise(np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]))
    loo = domain.loo_knn(bank, 1)
    assert loo[0] == pytest.approx(np.linalg.norm(bank[0] - bank[1]))  # not 0: not itself
    assert loo[2] == pytest.approx(np.linalg.norm(bank[2] - bank[1]))


@pytest.fixture()
def clustered():
    """20 in-domain features around one direction, their logits confident-ish."""
    rng = np.random.default_rng(0)
    features = np.abs(np.array([5.0, 5.0, 0.0, 0.0]) + rng.normal(0, 0.5, (20, 4)))
    logits = np.stack([np.full(20, 4.0) + rng.normal(0, 0.3, 20), np.zeros(20)], axis=1)
    return features, logits


def test_calibration_threshold_is_the_largest_loo_score(clustered):
    features, logits = clustered
    cal = domain.calibrate("m", "sha", "keras", features, logits)
    bank = domain.normalise(features)
    scores = domain.combine(domain.loo_knn(bank), domain.energy(logits), cal.knn, cal.energy)
    assert cal.threshold == pytest.approx(scores.max())
    assert (scores <= cal.threshold).all()
    assert cal.knn[1] > 0 and cal.energy[1] > 0


def test_far_features_are_flagged_even_when_the_logits_are_confident(clustered):
    """A confident output (low energy) must not cancel a far kNN distance: the max."""
    features, logits = clustered
    cal = domain.calibrate("m", "sha", "keras", features, logits)
    far = np.array([[0.0, 0.0, 5.0, 5.0]])
    confident = np.array([[40.0, 0.0]])
    assert cal.score(far, confident)[0] > cal.threshold
    # A sum would let the confidence cancel the distance; the max does not.
    r = domain.knn_distance(domain.normalise(far), cal.bank)
    e = domain.energy(confident)
    summed = (r - cal.knn[0]) / cal.knn[1] + (e - cal.energy[0]) / cal.energy[1]
    assert summed[0] < cal.score(far, confident)[0]
    # Near features with an unsure output (high energy) are flagged by the energy alone.
    assert cal.score(features[:1], np.array([[0.0, 0.0]]))[0] > cal.threshold
    assert cal.score(features[:1], logits[:1])[0] <= cal.threshold


def test_calibration_round_trips_through_its_json(clustered):
    cal = domain.calibrate("m", "sha", "keras", *clustered, names=("a",) * 20)
    again = domain.Calibration.from_dict(cal.to_dict())
    assert again.threshold == cal.threshold and again.samples == cal.samples
    assert np.allclose(again.bank, cal.bank, atol=1e-6)


def _tiny(head: str):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    x = keras.layers.Dense(6, activation="relu", name="penultimate")(x)
    if head == "softmax-layer":
        x = keras.layers.Softmax()(keras.layers.Dense(3, name="logits")(x))
    else:
        x = keras.layers.Dense(3, activation=head, name="logits")(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("head", ["linear", "softmax", "softmax-layer"])
def test_features_are_the_pooled_output_and_logits_the_final_pre_activation(head):
    import keras

    model = _tiny(head)
    assert domain.final_dense(model).name == "logits"
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    features, logits = domain.features_and_logits(model, x)
    # The pooled backbone output, not the hidden Dense after it.
    pooling = next(layer for layer in model.layers
                   if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    expected = keras.Model(model.inputs[0], pooling.output)(x)
    assert features.shape == (2, 4)
    assert np.allclose(features, np.asarray(expected), atol=1e-5)
    out = np.asarray(model(x))
    if head == "linear":
        assert np.allclose(logits, out, atol=1e-5)
    else:  # the softmax of the recovered logits is the model's output
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert np.allclose(p, out, atol=1e-5)


def test_without_global_pooling_the_features_are_the_final_dense_input():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inputs))
    x = keras.layers.Dense(5, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    x = np.random.default_rng(2).random((2, 8, 8, 1)).astype(np.float32)
    features, logits = domain.features_and_logits(model, x)
    hidden = keras.Model(model.inputs[0], model.get_layer("hidden").output)(x)
    assert np.allclose(features, np.asarray(hidden), atol=1e-5)
    assert np.allclose(logits, np.asarray(model(x)), atol=1e-5)


def test_a_model_whose_last_layer_is_not_dense_is_refused():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="not a Dense"):
        domain.final_dense(model)


class _NoModel:
    """A classifier stand-in: a check that needs no model must not touch it."""

    def __init__(self, c):
        self.card, self.runtime = c, c.runtime

    @property
    def keras_model(self):
        raise AssertionError("the model was used")


def test_a_model_without_samples_cannot_be_checked(ct_small):
    skin = card("skinlesion-xception")
    result = domain.check(_NoModel(skin), None)
    assert result.in_domain is None and result.score is None
    assert "no labelled samples" in result.reason
    assert result.to_dict()["reason"] == result.reason
    assert "not stated" in result.population
    uploaded = replace(card("pneumonia-xception"), id="user:mine")
    assert "uploaded" in domain.check(_NoModel(uploaded), None).reason
    # Not checked is never a warning by itself; the modality check still speaks.
    study = open_study(ct_small, name="CT_small.dcm")
    assert domain.warning(skin, study, result).startswith("CT_small.dcm is CT;")


def test_the_warning_names_the_score_then_the_modality(ct_small):
    c = card("braintumor-xception")
    study = open_study(ct_small, name="CT_small.dcm")
    out = domain.DomainCheck(False, 5.0, 2.0, domain.METHOD, samples=17, population="p")
    text = domain.warning(c, study, out)
    assert text.startswith("CT_small.dcm looks unlike the images braintumor-xception")
    assert "5.00 is above the threshold 2.00" in text and text.endswith("outside what it learnt.")
    inside = replace(out, in_domain=True, score=1.0)
    assert domain.warning(c, study, inside) == c.outside_domain(study)
    assert inside.sentence().startswith("inside the domain of its 17 labelled samples")
