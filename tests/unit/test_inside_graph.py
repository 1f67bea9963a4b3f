"""core.inside.graph on tiny models built here: receptive fields worked out by hand and
measured by impulses, residual merges, a nested model folded and unfolded, the layout,
and parameters that add up to the model's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.inside.graph import Receptive, input_pixel_mm, layer_graph, millimetres

keras = pytest.importorskip("keras")
layers = keras.layers


def stack(padding: str = "valid", size: int = 32):
    """conv3 s1, conv3 s1, max pool 2, conv3 with dilation 2, then global pooling and a
    dense head: receptive fields 3, 5, 6 and 14."""
    inputs = keras.Input((size, size, 1), name="image")
    x = layers.Conv2D(2, 3, padding=padding, name="c1")(inputs)
    x = layers.Conv2D(2, 3, padding=padding, name="c2")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Conv2D(2, 3, dilation_rate=2, padding=padding, name="dilated")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


def test_receptive_fields_of_a_known_stack_by_hand():
    graph = layer_graph(stack())
    field = {n.path: n.receptive for n in graph.nodes}
    assert field["image"] == Receptive((1, 1), (1, 1), (0, 0))
    # r_out = r_in + (k - 1) j_in; j_out = j_in s; c_out = c_in + ((k - 1) / 2 - p) j_in
    assert field["c1"] == Receptive((3, 3), (1, 1), (1, 1))
    assert field["c2"] == Receptive((5, 5), (1, 1), (2, 2))
    assert field["pool"] == Receptive((6, 6), (2, 2), (2.5, 2.5))  # k 2, s 2: the jump is 2
    # Dilation 2 makes the 3-kernel span 5 units of the pooled map, 2 px apart: 6 + 4 * 2.
    assert field["dilated"] == Receptive((14, 14), (2, 2), (6.5, 6.5))
    assert field["gap"] is None and field["head"] is None  # they see the whole image
    assert graph.node("dilated").output_shape == (10, 10, 2)


def impulse_response(model, layer: str, size: int) -> np.ndarray:
    """(size * size, h, w): the layer's response to a unit impulse at each input pixel,
    minus its response to a blank image; every weight positive, so a unit moves exactly
    when the pixel is in its receptive field."""
    probe = keras.Model(model.input, model.get_layer(layer).output)
    impulses = np.eye(size * size, dtype=np.float32).reshape(-1, size, size, 1)
    blank = np.asarray(probe(np.zeros((1, size, size, 1), np.float32)))
    return np.asarray(probe(impulses))[..., 0] - blank[..., 0]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_receptive_fields_match_impulses(padding):
    """Each unit's patch (Receptive.box) is exactly the set of pixels that move it, with
    'same' padding and strides included (where the patch is cut by the border). After a
    dilated layer the patch has holes (pixels between the taps): there it is their span
    (and at the border, where a tap may fall wholly on padding, it holds them)."""
    size = 16
    inputs = keras.Input((size, size, 1))
    x = layers.Conv2D(1, 3, padding=padding, name="a", kernel_initializer="ones",
                      bias_initializer="zeros")(inputs)
    x = layers.Conv2D(1, 3, strides=2, padding=padding, name="b", kernel_initializer="ones",
                      bias_initializer="zeros")(x)
    x = layers.AveragePooling2D(2, padding=padding, name="p")(x)
    x = layers.Conv2D(1, 2, dilation_rate=2, padding=padding, name="d",
                      kernel_initializer="ones", bias_initializer="zeros")(x)
    model = keras.Model(inputs, x)
    graph = layer_graph(model)
    for layer in ("a", "b", "p", "d"):
        response = impulse_response(model, layer, size)
        field = graph.node(layer).receptive
        _, rows, cols = response.shape
        for row in range(rows):
            for col in range(cols):
                seen = (np.abs(response[:, row, col]) > 1e-6).reshape(size, size)
                top, left, bottom, right = field.box(row, col, size, size)
                expected = np.zeros((size, size), bool)
                expected[top:bottom, left:right] = True
                if layer == "d":
                    assert not (seen & ~expected).any(), (layer, padding, row, col)
                    if bottom - top < field.size[0] or right - left < field.size[1]:
                        continue  # cut by the border
                    rows_seen, cols_seen = np.nonzero(seen)
                    seen = np.zeros_like(seen)
                    seen[rows_seen.min():rows_seen.max() + 1,
                         cols_seen.min():cols_seen.max() + 1] = True
                assert np.array_equal(seen, expected), (layer, padding, row, col)


def test_a_residual_merge_takes_the_largest_field():
    inputs = keras.Input((16, 16, 1), name="image")
    wide = layers.Conv2D(2, 5, padding="same", name="wide")(inputs)
    narrow = layers.Conv2D(2, 1, name="narrow")(inputs)
    merged = layers.Add(name="add")([narrow, wide])
    both = layers.Concatenate(name="cat")([merged, narrow])
    # A squeeze-and-excitation side branch (globally pooled) does not make the field whole.
    gate = layers.Dense(4, activation="sigmoid", name="gate")(
        layers.GlobalAveragePooling2D(name="squeeze")(both))
    scaled = layers.Multiply(name="excite")([both, layers.Reshape((1, 1, 4))(gate)])
    graph = layer_graph(keras.Model(inputs, scaled))
    assert graph.node("narrow").receptive.size == (1, 1)
    assert graph.node("add").receptive.size == (5, 5)
    assert graph.node("cat").receptive.size == (5, 5)
    assert graph.node("excite").receptive.size == (5, 5)
    assert graph.node("add").inputs == ("narrow", "wide")
    assert ("narrow", "add") in graph.edges and ("wide", "add") in graph.edges


def nested_model(sequential: bool = False):
    """A model with a nested backbone of two 3x3 convolutions, used as one layer after a
    rescaling, then a 3x3 convolution and a dense head."""
    if sequential:
        backbone = keras.Sequential([keras.Input((12, 12, 1)),
                                     layers.Conv2D(3, 3, name="conv_a"),
                                     layers.Conv2D(4, 3, name="conv_b")], name="backbone")
    else:
        inner_in = keras.Input((12, 12, 1), name="inner_in")
        x = layers.Conv2D(3, 3, name="conv_a")(inner_in)
        backbone = keras.Model(inner_in, layers.Conv2D(4, 3, name="conv_b")(x),
                               name="backbone")
    inputs = keras.Input((12, 12, 1), name="image")
    x = layers.Rescaling(0.5, name="rescale")(inputs)
    x = layers.Conv2D(2, 3, name="after")(backbone(x))
    outputs = layers.Dense(2, name="head")(layers.Flatten(name="flat")(x))
    return keras.Model(inputs, outputs), backbone


@pytest.mark.parametrize("sequential", [False, True])
def test_a_nested_model_folded_and_unfolded(sequential):
    model, backbone = nested_model(sequential)
    graph = layer_graph(model)
    inner_input = "backbone/inner_in" if not sequential else \
        next(p for p in graph.paths if p.startswith("backbone/") and "conv" not in p)
    assert graph.node("backbone").nested and graph.node("backbone").depth == 0
    conv_b = graph.node("backbone/conv_b")
    assert conv_b.parent == "backbone" and conv_b.depth == 1 and conv_b.inputs == (
        "backbone/conv_a",)
    assert graph.node("backbone/conv_a").inputs == (inner_input,)
    # Walked through: the backbone's 3 + 2 and the outer conv's 2 more.
    assert conv_b.receptive.size == (5, 5)
    assert graph.node("backbone").receptive.size == (5, 5)
    assert graph.node("after").receptive.size == (7, 7)
    assert graph.node("after").inputs == ("backbone",)

    folded = graph.folded()
    assert folded.paths == ("image", "rescale", "backbone", "after", "flat", "head")
    assert set(folded.edges) == {("image", "rescale"), ("rescale", "backbone"),
                                 ("backbone", "after"), ("after", "flat"), ("flat", "head")}
    unfolded = graph.folded({"backbone"})
    assert "backbone" not in unfolded.paths
    assert unfolded.paths.index(inner_input) > unfolded.paths.index("rescale")
    assert unfolded.paths.index("backbone/conv_b") < unfolded.paths.index("after")
    assert ("rescale", inner_input) in unfolded.edges
    assert ("backbone/conv_b", "after") in unfolded.edges
    assert (inner_input, "backbone/conv_a") in unfolded.edges
    assert not any("backbone" in (a, b) for a, b in unfolded.edges)
    # Every edge joins two nodes of the graph it belongs to, forwards.
    for g in (folded, unfolded):
        order = {p: i for i, p in enumerate(g.paths)}
        assert all(order[a] < order[b] for a, b in g.edges)


@pytest.mark.parametrize("sequential", [False, True])
def test_parameters_add_up_to_the_model(sequential):
    model, backbone = nested_model(sequential)
    graph = layer_graph(model)
    top = [n for n in graph.nodes if n.parent is None]
    assert sum(n.parameters for n in top) == model.count_params()
    inside = [n for n in graph.nodes if n.parent == "backbone"]
    assert sum(n.parameters for n in inside) == graph.node("backbone").parameters \
        == backbone.count_params()
    assert graph.node("backbone/conv_a").parameters == 3 * 3 * 1 * 3 + 3


def residual_model():
    inputs = keras.Input((16, 16, 1), name="image")
    x = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    shortcut = layers.Conv2D(4, 1, strides=2, name="shortcut")(x)
    y = layers.Conv2D(4, 3, padding="same", name="conv1")(x)
    y = layers.Conv2D(4, 3, padding="same", name="conv2")(y)
    y = layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(y)
    x = layers.Add(name="add")([y, shortcut])
    return keras.Model(inputs, layers.Dense(2, name="head")(layers.Flatten(name="flat")(x)))


def test_layout_positions_are_unique_and_branches_side_by_side():
    graph = layer_graph(residual_model())
    place = graph.layout()
    assert set(place) == set(graph.paths)
    assert len(set(place.values())) == len(place)
    # y is the topological order; the residual block's two sides get two columns, which
    # join again at the merge.
    assert [place[p][1] for p in graph.paths] == list(range(len(graph.paths)))
    assert place["shortcut"][0] != place["conv1"][0]
    assert place["conv1"][0] == place["conv2"][0] == place["pool"][0]
    assert place["add"][0] == min(place["pool"][0], place["shortcut"][0])
    assert place["stem"][0] == place["image"][0] == place["head"][0] == 0
    nested, _ = nested_model()
    folded = layer_graph(nested).folded({"backbone"})
    assert len(set(folded.layout().values())) == len(folded.nodes)


def test_to_dict_is_json():
    import json

    graph = layer_graph(residual_model())
    data = json.loads(json.dumps(graph.to_dict()))
    pool = next(n for n in data["nodes"] if n["path"] == "pool")
    assert pool["receptive"]["size"] == [9, 9] and pool["output_shape"] == [8, 8, 4]
    assert pool["inputs"] == ["conv2"] and ["pool", "add"] in data["edges"]


def test_millimetres_and_the_input_pixel():
    field = Receptive((10, 10), (2, 2), (4.5, 4.5))
    assert millimetres(field, (0.5, 2.0)) == (5.0, 20.0)
    # A 100 x 200 view of 0.5 x 0.8 mm pixels resized to a 50 x 50 input.
    view = SimpleNamespace(values=np.zeros((100, 200)), spacing=(0.5, 0.8))
    study = SimpleNamespace(view=lambda frame, plane: view)
    model_input = SimpleNamespace(frame=0, plane=None, array=np.zeros((50, 50, 3)))
    assert input_pixel_mm(study, model_input) == pytest.approx((1.0, 3.2))
    view.spacing = None
    assert input_pixel_mm(study, model_input) is None
