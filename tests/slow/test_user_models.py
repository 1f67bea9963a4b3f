"""The user's own model: real model files uploaded as a user would, checked before use.

The built-in models' own files stand in for a researcher's: uploaded with the right
labels and preprocessing they must give exactly the built-in predictions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import models
from core.explain import explain_input
from core.models import ModelError, card, model_file
from core.models.user import UNSAFE_SETTING, load_user_model
from core.studies import open_study
from tests.cli import medlens

XCEPTION_PREP = "scale=xception,resize=nearest"
TUMOUR_LABELS = "glioma,meningioma,notumor,pituitary"


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """Small Keras files of the kinds users upload: plain, with a Lambda layer, with an
    input of any size."""
    import keras

    folder = tmp_path_factory.mktemp("models")
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)).save(
        folder / "plain.keras")
    y = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    y = keras.layers.GlobalAveragePooling2D()(y)
    keras.Model(inp, keras.layers.Dense(2)(y)).save(folder / "lambda.keras")
    free = keras.Input((None, None, 3))
    z = keras.layers.Conv2D(4, 3, activation="relu")(free)
    z = keras.layers.GlobalAveragePooling2D()(z)
    keras.Model(free, keras.layers.Dense(3)(z)).save(folder / "any_size.keras")
    return folder


def _inputs(c, brain_samples, n=3):
    return [c.prepare(open_study(s.path)) for s in brain_samples[:n]]


def test_uploaded_keras_file_predicts_as_the_built_in(brain_samples):
    built_in = models.load("braintumor-xception")
    path = model_file(built_in.card)
    user = load_user_model(path.read_bytes(), TUMOUR_LABELS, XCEPTION_PREP, name=path.name,
                           license="none stated")
    c = user.card
    assert c.id.startswith("user:braintumor_xception_model_val-acc_0.916-")
    assert not c.builtin and c.id not in {b.id for b in models.cards()}
    assert c.input_shape == (150, 150, 3) and c.outputs == "logits"  # linear last layer
    assert c.source["sha256"] == built_in.card.source["sha256"]
    assert "not for diagnosis" in c.intended_use and c.license.endswith("none stated")
    for ours, theirs in zip(_inputs(c, brain_samples), _inputs(built_in.card, brain_samples),
                            strict=True):
        np.testing.assert_array_equal(ours.array, theirs.array)
        assert user.predict(ours) == built_in.predict(theirs)
    # Explanations work on it as on any Keras model.
    gradcam = explain_input(user, _inputs(c, brain_samples, 1)[0], "gradcam")
    assert gradcam.layer == "xception/block14_sepconv2_act" and gradcam.map.max() == 1.0


def test_uploaded_onnx_file_predicts_as_the_built_in(brain_samples):
    built_in = models.load("braintumor-vgg16")
    user = load_user_model(model_file(built_in.card), TUMOUR_LABELS,
                           "scale=unit,resize=bicubic")
    assert user.runtime == "onnx" and user.card.input_shape == (240, 240, 3)
    assert user.card.outputs == "probabilities"  # detected: its outputs sum to 1
    assert user.parameters == built_in.parameters
    for ours, theirs in zip(_inputs(user.card, brain_samples),
                            _inputs(built_in.card, brain_samples), strict=True):
        np.testing.assert_allclose(user.probabilities(ours.batch),
                                   built_in.probabilities(theirs.batch), atol=1e-6)
    # Forward-only methods run on it; gradient methods say why they cannot.
    occlusion = explain_input(user, _inputs(user.card, brain_samples, 1)[0], "occlusion",
                              patch=0.25, stride=1.0)
    assert occlusion.map.shape == (512, 512)
    with pytest.raises(ValueError, match="onnxruntime"):
        explain_input(user, _inputs(user.card, brain_samples, 1)[0], "gradcam")


def test_lambda_layer_is_refused_unless_the_server_allows_it(small_models, monkeypatch):
    monkeypatch.delenv(UNSAFE_SETTING, raising=False)
    with pytest.raises(ModelError, match=(
            r"^lambda.keras: refused: the file holds Python code \(a Lambda layer or "
            r"similar\), which safe mode does not run; .* MEDLENS_ALLOW_UNSAFE_MODELS=1$")):
        load_user_model(small_models / "lambda.keras", "a,b")
    monkeypatch.setenv(UNSAFE_SETTING, "1")
    allowed = load_user_model(small_models / "lambda.keras", "a,b")
    assert allowed.card.outputs == "logits"


@pytest.mark.parametrize(("name", "labels", "preprocess", "message"), [
    ("plain.keras", "a,b,c", None,
     r"^plain.keras: the model has 2 outputs but 3 labels were given \(a, b, c\)$"),
    ("plain.keras", "a", None, "labels: give at least two"),
    ("plain.keras", "a,a", None, "labels: a label is given twice"),
    ("plain.keras", "a,b", "scale=bogus", "preprocess scale: 'bogus' is not one of"),
    ("plain.keras", "a,b", "colour=red", "preprocess: unknown key 'colour'"),
    ("plain.keras", "a,b", "size=32x32", "size 32x32 given, but the model takes 64x64"),
    ("any_size.keras", "a,b,c", None, "the model's input size is not fixed"),
    ("plain.h5", "a,b", None, r"a model must be a .keras or .onnx file \(re-save an .h5"),
    ("missing.keras", "a,b", None, "missing.keras: no such file"),
])
def test_bad_uploads_are_one_line(small_models, name, labels, preprocess, message):
    with pytest.raises(ModelError, match=message) as error:
        load_user_model(small_models / name, labels, preprocess)
    assert "\n" not in str(error.value)


def test_any_size_input_takes_the_given_size(small_models):
    user = load_user_model(small_models / "any_size.keras", "a,b,c", "size=96x80")
    assert user.card.input_shape == (96, 80, 3)
    assert user.probabilities(np.zeros((1, 96, 80, 3), np.float32)).shape == (1, 3)


def test_not_a_model_and_two_inputs_are_refused(small_models):
    with pytest.raises(ModelError, match=r"^junk.keras: not a loadable Keras model \("):
        load_user_model(b"not a zip file", "a,b", name="junk.keras")
    with pytest.raises(ModelError, match=r"^junk.onnx: not a loadable ONNX model"):
        load_user_model(b"\x00" * 64, "a,b", name="junk.onnx")
    skin = model_file(card("skinlesion-xception"))
    with pytest.raises(ModelError, match="takes 2 inputs; an uploaded model must take one"):
        load_user_model(skin, "akiec,bcc,bkl,df,mel,nv,vasc")


def test_cli_model_file(brain_samples, small_models, tmp_path):
    path = str(brain_samples[0].path)
    model = str(model_file(card("braintumor-xception")))
    built_in = json.loads(medlens("predict", "--model", "braintumor-xception", path,
                                  "--json").stdout)[0]
    run = medlens("predict", "--model-file", model, "--labels", TUMOUR_LABELS,
                  "--preprocess", XCEPTION_PREP, path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["probabilities"] == built_in["probabilities"]
    run = medlens("explain", "--model-file", str(small_models / "plain.keras"), "--labels",
                  "left,right", "--method", "gradcam", path, "--out", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["layer"] == "conv"


@pytest.mark.parametrize(("args", "message"), [
    (["--model-file", "MODEL"], "give its --labels"),
    (["--model", "braintumor-xception", "--labels", "a,b"], "--labels goes with --model-file"),
    (["--model-file", "LAMBDA", "--labels", "a,b"], "refused: the file holds Python code"),
    (["--model-file", "MODEL", "--labels", "a,b", "--preprocess", "scale"],
     "preprocess: 'scale' is not KEY=VALUE"),
    (["--model-file", "MODEL", "--model", "braintumor-xception"], "not allowed with argument"),
])
def test_cli_bad_model_file_exits_2(brain_samples, small_models, args, message, monkeypatch):
    monkeypatch.delenv(UNSAFE_SETTING, raising=False)
    swap = {"MODEL": str(small_models / "plain.keras"),
            "LAMBDA": str(small_models / "lambda.keras")}
    run = medlens("predict", *[swap.get(a, a) for a in args], str(brain_samples[0].path))
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
