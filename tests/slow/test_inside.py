"""core.inside on the built-in braintumor-xception (a nested Xception backbone) and its 17
labelled samples: the layer graph and receptive fields, feature maps against an
independent sub-model of the backbone, statistics and separation per layer, and the
`medlens inside` and `medlens models show --graph` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.inside.features import feature_maps, layer_stats, separation
from core.inside.graph import layer_graph
from tests.cli import medlens

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def model(xception):
    return xception.keras_model


@pytest.fixture(scope="module")
def batch(xception, brain_samples):
    from core.models.inputs import prepare
    from core.studies import open_study

    spec = xception.card.input_spec
    images = np.stack([prepare(open_study(s.path), spec).array for s in brain_samples])
    return images, np.array([s.label for s in brain_samples])


def test_graph_of_the_nested_xception(model):
    graph = layer_graph(model)
    backbone = model.get_layer("xception")
    inside = [n for n in graph.nodes if n.parent == "xception"]
    assert len(inside) == len(backbone.layers) == 132
    assert sum(n.parameters for n in graph.nodes if n.parent is None) == model.count_params()
    assert graph.folded().paths == ("input_layer_1", "xception", "global_average_pooling2d",
                                    "dense", "dropout", "dense_1")
    last = graph.node("xception/block14_sepconv2_act")
    assert last.output_shape == (5, 5, 2048)
    assert last.receptive.covers(150, 150)  # every one of the 5x5 units sees it all
    assert last.receptive.jump == (32, 32)
    first = graph.node("xception/block1_conv1")  # 3x3, stride 2, valid
    assert (first.receptive.size, first.receptive.jump) == ((3, 3), (2, 2))
    unfolded = graph.folded({"xception"})
    assert ("input_layer_1", "xception/input_layer") in unfolded.edges
    assert ("xception/block14_sepconv2_act", "global_average_pooling2d") in unfolded.edges
    assert len(set(unfolded.layout().values())) == len(unfolded.nodes)


def test_feature_maps_equal_an_independent_sub_model(model, glioma_input):
    backbone = model.get_layer("xception")
    sub = keras.Model(backbone.input, backbone.get_layer("block1_conv1_act").output)
    expected = np.moveaxis(np.asarray(sub([glioma_input.array[None]]))[0], -1, 0)
    maps = feature_maps(model, glioma_input.array, "xception/block1_conv1_act")
    assert maps.shape == (32, 74, 74) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_layer_stats_over_the_samples(model, batch):
    images, _ = batch
    stats = layer_stats(model, images)
    assert len(stats) == 131 and all(s.images == 17 for s in stats)  # every spatial layer
    by = {s.layer: s for s in stats}
    # A ReLU zeroes a share of its inputs; a convolution before it almost none.
    assert 0.05 < by["xception/block1_conv1_act"].sparsity < 0.95
    assert by["xception/block1_conv1"].sparsity < 0.01
    assert by["xception/block1_conv1"].dead_channels == 0
    assert all(0 <= s.dead_channels <= s.shape[0] for s in stats)


def test_separation_gives_a_row_per_layer(model, batch):
    images, labels = batch
    rows = separation(model, images, labels)
    assert len(rows) == 131
    assert set(rows[-1]["classes"]) == {"glioma", "meningioma", "notumor", "pituitary"}
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    # Better than always answering the largest class (6 gliomas of 17) somewhere.
    assert max(r["accuracy"] for r in rows) > 6 / 17


def test_cli_inside_writes_the_maps(exported, tmp_path, model, xception):
    path = exported / "braintumor-xception" / "glioma" / "Te-gl_0010.jpg"
    run = medlens("inside", "--model", "braintumor-xception", str(path), "--layer",
                  "block1_conv1_act", "--out", str(tmp_path), "--json")
    assert run.returncode == 0 and run.stderr == ""
    result = json.loads(run.stdout)
    assert set(result) == {"layer", "shape", "mean", "sparsity", "dead_channels"}
    assert result["layer"] == "xception/block1_conv1_act" and result["shape"] == [32, 74, 74]
    maps = np.load(tmp_path / "Te-gl_0010.xception_block1_conv1_act.npy")
    assert maps.shape == (32, 74, 74) and maps.dtype == np.float32
    from core.studies import open_study

    model_input = xception.card.prepare(open_study(path))
    np.testing.assert_array_equal(maps, feature_maps(model, model_input.array,
                                                     "xception/block1_conv1_act"))
    assert result["sparsity"] == pytest.approx(float(np.mean(maps == 0)))
    assert result["mean"] == pytest.approx(float(maps.mean()), rel=1e-5)


def test_cli_inside_refuses_a_bad_layer_in_one_line(exported, tmp_path):
    path = exported / "braintumor-xception" / "glioma" / "Te-gl_0010.jpg"
    run = medlens("inside", "--model", "braintumor-xception", str(path), "--layer",
                  "block99_conv", "--out", str(tmp_path))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "block99_conv" in run.stderr
    assert "models show" in run.stderr


def test_models_show_graph_json():
    run = medlens("models", "show", "braintumor-xception", "--graph", "--json")
    assert run.returncode == 0 and run.stderr == ""
    graph = json.loads(run.stdout)["graph"]
    nodes = {n["path"]: n for n in graph["nodes"]}
    last = nodes["xception/block14_sepconv2_act"]
    assert last["output_shape"] == [5, 5, 2048] and last["receptive"]["size"][0] >= 150
    assert nodes["xception"]["parameters"] == sum(
        n["parameters"] for n in graph["nodes"] if n["parent"] == "xception")
    assert nodes["dense_1"]["receptive"] is None and nodes["dense_1"]["parameters"] == 516
    assert ["xception", "global_average_pooling2d"] in graph["edges"]
