"""skinlesion-xception (sklesion 0.2.2): an image input and a metadata input, fed exactly
as the package's own SkinLesionClassifier.preprocess feeds them.

No labelled skin images ship anywhere reachable from here, so the model runs on the brain
MRI samples (real JPEGs, outside its domain): the tests check the input path, the
metadata and the explanations, not the model's accuracy (the package reports 0.825 on
1511 HAM10000 test images).
"""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

from core import models
from core.explain import explain_input
from core.models import ModelError, card, package_path
from core.models.metadata import MetadataError
from core.studies import open_study
from tests.cli import medlens

SKIN = "skinlesion-xception"


class _NumpyOnly(pickle.Unpickler):
    """Reads the package's constants (numpy scalars and arrays, dicts) and nothing else:
    any other global in the file is refused rather than run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


@pytest.fixture(scope="module")
def props() -> dict:
    data = package_path("sklesion", "sklesion/model_props.pkl").read_bytes()
    return _NumpyOnly(io.BytesIO(data)).load()


@pytest.fixture(scope="module")
def skin():
    return models.load(SKIN)


@pytest.fixture(scope="module")
def mri_path(brain_samples):
    return next(s for s in brain_samples if s.name == "Te-gl_0010.jpg").path


@pytest.fixture(scope="module")
def mri(mri_path):
    return open_study(mri_path)


def test_card_matches_the_package_constants(props):
    c = card(SKIN)
    assert tuple(int(v) for v in props["img_shape"]) == c.input_shape[:2]
    assert [props["i_cl_map"][i] for i in sorted(props["i_cl_map"])] == list(c.labels)
    fields = {f.name: f for f in c.metadata.fields}
    assert list(props["oh_map"]["sex"]) == list(fields["sex"].values)
    assert list(props["oh_map"]["loc"]) == list(fields["location"].values)
    assert fields["age"].missing_fill == pytest.approx(float(props["age_mean"]))
    assert fields["age"].divide_by == float(props["age_max"])
    assert c.metadata.width == 10 and "MIT" in c.license


def test_metadata_vector_is_the_packages(props):
    """The package's preprocess: sex one-hot + location one-hot + age / age_max + missing
    flag (a missing age filled with the training mean)."""
    spec = card(SKIN).metadata
    oh = props["oh_map"]
    given = spec.encode({"sex": "female", "location": "trunk", "age": 45})
    expected = [*oh["sex"]["female"], *oh["loc"]["trunk"], 45 / props["age_max"], 0]
    np.testing.assert_allclose(given, expected, rtol=1e-6)
    unknown = spec.encode()
    expected = [*oh["sex"]["unknown"], *oh["loc"]["unknown"],
                props["age_mean"] / props["age_max"], 1]
    np.testing.assert_allclose(unknown, expected, rtol=1e-6)
    assert spec.describe({"age": "70"}) == "sex unknown, location unknown, age 70"


@pytest.mark.parametrize(("answers", "message"), [
    ({"sex": "robot"}, "metadata sex: 'robot' is not one of female, male, unknown"),
    ({"age": "old"}, "metadata age: 'old' is not a number"),
    ({"age": 130}, "metadata age: 130 is outside 0-90 years"),
    ({"height": 1}, "unknown metadata field 'height'"),
])
def test_bad_metadata_is_one_line(answers, message):
    with pytest.raises(MetadataError, match=message):
        card(SKIN).metadata.encode(answers)


def test_image_is_made_as_the_package_makes_it(skin, mri, mri_path):
    """tf.image.decode_jpeg + tf.image.resize (bilinear, no antialiasing), raw 0-255.

    The resize is tf.image.resize's to float rounding. The JPEG decoders differ: PIL and
    tf.image.decode_jpeg disagree by up to 5 grey levels here (mean 0.3), so the whole
    path is compared by its effect on the probabilities."""
    import tensorflow as tf

    from core.models.inputs import resize

    decoded = tf.image.decode_jpeg(tf.io.read_file(str(mri_path)), channels=3)
    theirs = tf.image.resize(decoded, (254, 254)).numpy()
    np.testing.assert_allclose(resize(decoded.numpy(), 254, 254, "tf-bilinear"), theirs,
                               atol=2e-3)
    ours = skin.card.prepare(mri)
    assert ours.array.shape == (254, 254, 3)
    assert np.abs(ours.array - theirs).mean() < 0.5
    metadata = ours.metadata[None]
    p_ours = skin.probabilities([ours.array[None], metadata])[0]
    p_theirs = skin.probabilities([theirs[None], metadata])[0]
    assert np.abs(p_ours - p_theirs).max() < 0.01
    assert ours.steps[-3:] == ("resized 512x512 to 254x254 (tf-bilinear)",
                               "scaled: raw 0-255 values",
                               "metadata: sex unknown, location unknown, age unknown")


def test_two_inputs_run_and_metadata_matters(skin, mri):
    c = skin.card
    unknown = skin.predict(c.prepare(mri))
    older = skin.predict(c.prepare(mri, metadata={"sex": "male", "location": "trunk",
                                                  "age": 70}))
    assert sum(unknown.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    # Measured on Te-gl_0010.jpg: nv 0.92 with nothing known, 0.48 for a man of 70 (trunk).
    assert unknown.label == "nv" and unknown.probabilities["nv"] == pytest.approx(0.92, abs=0.02)
    assert older.probabilities["nv"] == pytest.approx(0.48, abs=0.03)
    with pytest.raises(ModelError, match="skinlesion-xception: metadata sex"):
        c.prepare(mri, metadata={"sex": "x"})
    with pytest.raises(ModelError, match="braintumor-xception takes no metadata"):
        card("braintumor-xception").prepare(mri, metadata={"sex": "male"})


def test_maps_are_for_the_image_input(skin, mri):
    model_input = skin.card.prepare(mri, metadata={"sex": "female"})
    gradcam = explain_input(skin, model_input, "gradcam")
    assert gradcam.layer == "xception/block14_sepconv2_act"
    assert gradcam.map.shape == (512, 512) and gradcam.map.max() == pytest.approx(1.0)
    occlusion = explain_input(skin, model_input, "occlusion", target="mel",
                              patch=0.5, stride=1.0)  # 4 patches: the shapes are the point
    assert occlusion.label == "mel" and occlusion.input_map.shape == (254, 254)


def test_cli_takes_metadata(mri_path, tmp_path):
    path = str(mri_path)
    run = medlens("predict", "--model", SKIN, "--meta", "sex=male,location=trunk,age=70",
                  path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["probabilities"]["nv"] == pytest.approx(0.48, abs=0.03)
    run = medlens("explain", "--model", SKIN, "--meta", "age=30", "--method", "gradcam", path,
                  "--out", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["layer"] == "xception/block14_sepconv2_act"
    bad = medlens("predict", "--model", SKIN, "--meta", "age=200", path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "metadata age: 200 is outside 0-90 years" in bad.stderr

