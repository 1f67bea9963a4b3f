"""The model zoo: layer and node tables of the real models, `medlens models show`, and
the Model zoo page."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import models
from core.cli import main
from core.models.architecture import architecture, card_facts, keras_architecture
from tests import trained
from tests.app.pages import displayed
from tests.conftest import app_page


@pytest.fixture(scope="module")
def xception_table():
    return architecture(models.load("braintumor-xception"))


def test_nested_backbone_rows_follow_their_model(xception_table):
    arch, keras_model = xception_table, models.load("braintumor-xception").keras_model
    assert [r.name for r in arch.top_level] == [layer.name for layer in keras_model.layers]
    assert arch.parameters == keras_model.count_params()
    assert sum(r.parameters for r in arch.top_level) == keras_model.count_params()
    assert sum(r.trainable for r in arch.top_level) == arch.trainable
    backbone = keras_model.get_layer("xception")
    [parent] = arch.nested
    assert (parent.path, parent.type, parent.depth, parent.children) == \
        ("xception", "Functional", 0, True)
    assert parent.parameters == backbone.count_params()
    inside = arch.inside(parent)
    assert len(inside) == len(backbone.layers)
    assert all(r.depth == 1 and r.path == f"xception/{r.name}" for r in inside)
    assert sum(r.parameters for r in inside) == backbone.count_params()
    # The backbone was frozen in training: only the head is trainable.
    assert parent.trainable == 0 and arch.trainable == sum(
        r.trainable for r in arch.top_level if r.name in ("dense", "dense_1"))
    last = next(r for r in arch.layers if r.path == "xception/block14_sepconv2_act")
    assert last.output_shape == str(tuple(backbone.get_layer(last.name).output.shape))
    assert parent.output_shape == "(None, 5, 5, 2048)"  # a nested model's list of one
    assert arch.inputs[0].shape == (None, 150, 150, 3)
    assert [t.name for t in arch.outputs] == ["dense_1"] and arch.outputs[0].shape[-1] == 4


def test_two_input_model_lists_both_inputs():
    classifier = models.load("skinlesion-xception")
    arch = architecture(classifier)
    inputs = [r for r in arch.top_level if r.type == "InputLayer"]
    assert [r.output_shape for r in inputs] == ["(None, 254, 254, 3)", "(None, 10)"]
    assert [t.shape for t in arch.inputs] == [(None, 254, 254, 3), (None, 10)]
    assert arch.parameters == classifier.keras_model.count_params() == \
        sum(r.parameters for r in arch.top_level)
    assert any(r.path == "xception/block14_sepconv2_act" for r in arch.layers)
    summary = arch.summary()
    assert summary["file_bytes"] == classifier.path.stat().st_size
    assert summary["layers"] == len(classifier.keras_model.layers)


def test_vgg16_node_table_adds_up_to_its_initializers():
    classifier = models.load("braintumor-vgg16")
    arch = architecture(classifier)
    assert arch.runtime == "onnx" and arch.opset == 13
    assert arch.parameters == sum(r.parameters for r in arch.layers) == classifier.parameters
    convs = [r for r in arch.layers if r.type == "Conv"]
    assert len(convs) == 13  # VGG16's thirteen 3x3 convolutions
    # Shape inference gives NCHW shapes (tf2onnx transposes the NHWC input once).
    assert convs[0].output_shape.endswith("64, 240, 240)")
    assert convs[-1].output_shape.endswith("512, 15, 15)")
    assert convs[0].parameters == 3 * 3 * 3 * 64 + 64
    assert [(t.name, t.shape[1:]) for t in arch.inputs] == [("input", (240, 240, 3))]
    assert [(t.name, t.shape[1:]) for t in arch.outputs] == [("dense_3", (4,))]
    # Where inference stops (after tf2onnx's Reshape), the table says so.
    unknown = sum(r.output_shape == "unknown" for r in arch.layers)
    assert unknown and any(f"{unknown} of {len(arch.layers)}" in n for n in arch.notes)


def test_shared_layers_and_several_outputs_are_named_not_crashed():
    import keras

    x1, x2 = keras.Input((8,), name="x1"), keras.Input((6,), name="x2")
    inner_in = keras.Input((8,))
    two_heads = keras.Model(inner_in, [keras.layers.Dense(3, name="a")(inner_in),
                                       keras.layers.Dense(2, name="b")(inner_in)],
                            name="two_heads")
    shared = keras.layers.Dense(5, name="shared")
    flatten = keras.layers.Flatten(name="flatten")  # called on (8,) and (6,): two shapes
    a, b = two_heads(x1)
    out = keras.layers.Concatenate()([shared(x1), shared(x1), flatten(x1), flatten(x2), a, b])
    model = keras.Model([x1, x2], out)
    arch = keras_architecture(model, "shared", 0)
    rows = {r.path: r for r in arch.layers}
    assert rows["shared"].output_shape == "(None, 5) (called 2 times)"
    assert rows["flatten"].output_shape == "called 2 times: (None, 8); (None, 6)"
    assert rows["two_heads"].output_shape == "2 outputs: (None, 3), (None, 2)"
    assert rows["two_heads/a"].depth == 1
    assert sum(r.parameters for r in arch.top_level) == model.count_params()


def tiny_onnx(path: Path) -> int:
    """A real ONNX classifier (NHWC input, one 3x3 convolution, softmax over 2); returns
    its number of weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(2, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("GlobalAveragePool", ["conv"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["scores"], name="flatten"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 16, 16, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return 2 * 3 * 3 * 3 + 2


def test_uploaded_onnx_table_while_its_file_exists(tmp_path):
    from core.models.user import load_user_model

    path = tmp_path / "tiny.onnx"
    weights = tiny_onnx(path)
    arch = architecture(load_user_model(path, "no,yes"))
    assert arch.parameters == weights == sum(r.parameters for r in arch.layers)
    assert [(r.type, r.output_shape) for r in arch.layers] == [
        ("Transpose", "(N, 3, 16, 16)"), ("Conv", "(N, 2, 16, 16)"),
        ("GlobalAveragePool", "(N, 2, 1, 1)"), ("Flatten", "(N, 2)"), ("Softmax", "(N, 2)")]
    # An upload from the page comes as bytes: its file lives as long as its classifier.
    uploaded = load_user_model(path.read_bytes(), "no,yes", name="tiny.onnx")
    assert architecture(uploaded).parameters == weights
    kept = Path(uploaded.path)
    assert kept.is_file() and kept != path
    del uploaded
    gc.collect()
    assert not kept.exists()


def test_card_facts_say_labels_metadata_and_use():
    skin = card_facts(models.card("skinlesion-xception"))
    assert "mel (Melanoma)" in skin["Labels"]
    assert skin["Metadata"].startswith("a second input of 10 values")
    assert "254x254" in skin["Input"] and "tf-bilinear" in skin["Input"]
    assert skin["Intended use"] == "Research and teaching; not for diagnosis."
    vgg = card_facts(models.card("braintumor-vgg16"))
    assert "Metadata" not in vgg and vgg["Runtimes"] == "onnx (default), keras"


# -- medlens models show -----------------------------------------------------------------

def test_cli_models_show_text(capsys):
    assert main(["models", "show", "skinlesion-xception"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.startswith("skinlesion-xception: ")
    assert "Intended use: Research and teaching; not for diagnosis." in out.out
    assert "Metadata: a second input of 10 values" in out.out
    assert "sha256 df1a81a62ffa" in out.out


def test_cli_models_show_layers_json(capsys, xception_table):
    assert main(["models", "show", "braintumor-xception", "--layers", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["id"] == "braintumor-xception" and found["license"]
    assert found["summary"]["parameters"] == xception_table.parameters == 21_124_268
    assert len(found["layers"]) == len(xception_table.layers)
    assert {"name", "path", "type", "output_shape", "parameters", "trainable", "depth",
            "children"} == set(found["layers"][0])
    assert any(r["path"] == "xception/block14_sepconv2_act" for r in found["layers"])


def test_cli_models_show_onnx_nodes_text(capsys):
    assert main(["models", "show", "braintumor-vgg16", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "16,363,147 parameters; 56 nodes" in out
    assert any(line.split()[1:2] == ["Conv"] for line in out.splitlines())


@pytest.mark.parametrize("argv, words", [
    (["models", "show", "no-such-model"], "unknown model 'no-such-model'"),
    (["models", "show"], "give a model ID or --model-file"),
    (["models", "show", "braintumor-xception", "--runtime", "onnx"], "cannot run on 'onnx'"),
    (["models", "show", "--model-file", "missing.keras"], "give its --labels"),
])
def test_cli_models_show_bad_input_is_one_line(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def shapes_file(tmp_path_factory) -> Path:
    """The test suite's trained shape classifier with a nested backbone, as a file."""
    path = tmp_path_factory.mktemp("zoo") / "shapes.keras"
    trained.nested(list(trained.shape_weights())).save(path)
    return path


def test_cli_models_show_a_model_file(capsys, shapes_file):
    argv = ["models", "show", "--model-file", str(shapes_file), "--labels",
            ",".join(trained.SHAPES), "--layers", "--json"]
    assert main(argv) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["id"].startswith("user:shapes-")
    assert [r["path"] for r in found["layers"] if r["depth"] == 1][-1] == "backbone/conv3"
    assert found["summary"]["parameters"] == sum(
        r["parameters"] for r in found["layers"] if r["depth"] == 0)


# -- the page -----------------------------------------------------------------------------

def zoo_page() -> AppTest:
    return app_page("views/zoo.py")


def test_zoo_page_shows_every_card_and_a_table_on_demand():
    at = zoo_page()
    assert at.title[0].value == "Model zoo"
    assert at.caption[0].value == "Research and teaching; not for diagnosis."
    names = [displayed(s.value) for s in at.subheader]
    assert names == [c.name for c in models.cards()] and len(names) == 6
    assert sum("not for diagnosis" in w.value for w in at.warning) == 6
    assert not at.dataframe  # nothing is loaded until asked for
    assert any("Melanoma" in m.value and "Metadata" in m.value for m in at.markdown)
    at.toggle(key="zoo_layers_braintumor-xception").set_value(True).run()
    assert not at.exception and not at.error
    top, inside = (d.value for d in at.dataframe)
    assert list(top["name"]) == ["input_layer_1", "xception", "global_average_pooling2d",
                                 "dense", "dropout", "dense_1"]
    assert int(top["parameters"].sum()) == 21_124_268
    assert "xception/block14_sepconv2_act" in set(inside["path"])
    assert any(e.label.startswith("Inside `xception`") for e in at.expander)
    assert any(c.value.startswith("21,124,268 parameters") for c in at.caption)


def test_an_upload_gets_its_card(shapes_file):
    from core.models.user import load_user_model

    upload = load_user_model(shapes_file.read_bytes(), list(trained.SHAPES),
                             "scale=unit", name="shapes.keras")
    at = app_page("views/zoo.py", session_state={"user_models": {upload.card.id: upload}})
    assert [s.value for s in at.subheader][-1] == "shapes.keras"
    assert any(c.value == f"`{upload.card.id}` · uploaded: in this session only"
               for c in at.caption)
    assert sum("not for diagnosis" in w.value for w in at.warning) == 7
    at.toggle(key=f"zoo_layers_{upload.card.id}").set_value(True).run()
    assert not at.exception
    top, inside = (d.value for d in at.dataframe)
    assert list(top["name"]) == ["image", "backbone", "pool", "scores"]
    assert list(inside["path"])[-1] == "backbone/conv3"
