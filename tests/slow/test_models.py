"""The real demo models: cards, files, inputs made as in training, accuracy on samples."""

from __future__ import annotations

import numpy as np
import pytest

from core import models
from core.models import ModelError, card, cards, model_file, sha256
from core.models.inputs import prepare
from core.models.samples import samples
from core.studies import open_study

# Correct predictions on the packages' own labelled samples, as measured
# (`medlens predict --model ID` over `medlens samples export` output).
MEASURED_CORRECT = {
    "braintumor-xception": (15, 17),
    "pneumonia-xception": (13, 16),
    "braintumor-vgg16": (17, 17),
}


SEGMENTERS = {"brain-tissue-unet", "head-ct-unet"}  # trained in MedLens (core/segment)


def test_every_card_is_complete():
    # No labelled skin images ship anywhere reachable: skinlesion-xception has no samples.
    assert {c.id for c in cards()} == (set(MEASURED_CORRECT) | {"skinlesion-xception"}
                                       | SEGMENTERS)
    for c in cards():
        assert c.labels and len(c.input_shape) == 3
        if c.id in SEGMENTERS:  # the data, split and seed say what it learnt
            assert c.task == "segmentation" and c.origin == "trained in MedLens"
            assert {"data", "data_licence", "split", "seed", "command"} <= set(c.source)
            assert c.evaluation["held_out"]["dice"] and c.plane
        else:
            assert c.task == "classification"
            assert c.source["package"] and c.source["version"]
        assert len(c.source["sha256"]) == 64
        assert c.license
        assert "not for diagnosis" in c.intended_use
        assert c.runtime in ("keras", "onnx")
        assert set(c.to_dict()) >= {"id", "task", "labels", "input_shape", "architecture",
                                    "source", "license"}


@pytest.mark.parametrize("model_id", sorted(MEASURED_CORRECT) + ["skinlesion-xception"]
                         + sorted(SEGMENTERS))
def test_model_file_matches_its_card(model_id):
    c = card(model_id)
    assert sha256(model_file(c)) == c.source["sha256"]


def test_unknown_model_is_one_line():
    with pytest.raises(ModelError, match=r"^unknown model 'nope' \(known: "):
        card("nope")


@pytest.mark.parametrize("model_id", ["braintumor-xception", "pneumonia-xception"])
def test_input_is_made_as_the_package_trained_it(model_id):
    """Keras load_img (PIL, RGB, nearest) + xception.preprocess_input, as in the package."""
    import keras

    c = card(model_id)
    for sample in samples(c)[:4]:
        ours = prepare(open_study(sample.path), c.input_spec).array
        image = keras.utils.load_img(sample.path, target_size=c.input_shape[:2],
                                     interpolation="nearest")
        theirs = keras.applications.xception.preprocess_input(
            keras.utils.img_to_array(image))
        np.testing.assert_array_equal(ours, theirs)


def test_input_steps_are_recorded(brain_samples, ct_small):
    c = card("braintumor-xception")
    steps = prepare(open_study(brain_samples[0].path), c.input_spec).steps
    assert steps == (
        "RGB used as is",
        "resized 512x512 to 150x150 (nearest)",
        "scaled: x / 127.5 - 1 (Xception preprocess_input), range [-1, 1]",
    )
    ct = prepare(open_study(ct_small), card("braintumor-vgg16").input_spec)
    assert ct.steps[0].startswith("window C ") and " HU" in ct.steps[0]
    assert "grey replicated to 3 channels (RGB)" in ct.steps
    assert ct.seen.shape == (240, 240, 3) and ct.array.max() <= 1.0


@pytest.mark.parametrize("model_id", sorted(MEASURED_CORRECT))
def test_accuracy_on_the_labelled_samples(model_id):
    c = card(model_id)
    classifier = models.load(model_id)
    found = samples(c)
    batch = np.stack([prepare(open_study(s.path), c.input_spec).array for s in found])
    p = classifier.probabilities(batch)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    correct = sum(c.labels[i] == s.label for i, s in zip(p.argmax(axis=1), found, strict=True))
    assert (correct, len(found)) == MEASURED_CORRECT[model_id]
    # One at a time gives the same answer as the batch.
    single = classifier.predict(prepare(open_study(found[0].path), c.input_spec))
    assert single.label == c.labels[int(p[0].argmax())]


def test_a_study_outside_the_models_domain_is_named(brain_samples, ct_small, mr_small):
    """A head CT given to an MRI model gets a warning; an MR or a JPEG (no modality) not."""
    c = card("braintumor-xception")
    warning = c.outside_domain(open_study(ct_small, name="CT_small.dcm"))
    assert warning == ("CT_small.dcm is CT; braintumor-xception was trained on brain MRI "
                       "slices (MR): its output here is outside what it learnt.")
    assert c.outside_domain(open_study(mr_small)) is None
    assert c.outside_domain(open_study(brain_samples[0].path)) is None
    assert card("pneumonia-xception").outside_domain(open_study(mr_small)) is not None
