"""A segmentation model as the user gives it (a .keras file with its labels) and a whole
volume through it: the Segmenter's outputs, batching, and the mask laid back on the study.

The model is a tiny U-Net (core/nets) trained here for a few steps to draw the bright
voxels of a real MR volume (nibabel's anatomical.nii): enough to give a mask that is
neither empty nor everything, so the checks mean something."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from core.models import ModelError, Segmenter
from core.models.user import load_user_model
from core.segment.run import segment
from core.studies import open_study
from core.studies.viewing import example_path

pytestmark = pytest.mark.unit
SIZE = 32


@cache
def volume():
    return open_study(example_path("anatomical.nii"), name="anatomical.nii")


@cache
def trained_file(tmp: str) -> Path:
    """A 32x32 U-Net trained to mark the brightest quarter of each axial slice."""
    import keras

    from core.nets import unet

    keras.utils.set_random_seed(0)
    from core.models.inputs import InputSpec, prepare

    # The inputs made as the Segmenter makes them (card.prepare with the same spec).
    study = volume()
    spec = InputSpec(SIZE, SIZE, 1, "bilinear", "unit")
    x = np.stack([prepare(study, spec, frame=i, plane="axial").array
                  for i in range(study.count("axial"))])
    y = (x[..., 0] > np.quantile(x, 0.75)).astype(np.int32)
    model = unet((SIZE, SIZE, 1), 2, filters=4, depth=2, batch_norm=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, batch_size=5, verbose=0)
    path = Path(tmp) / "tiny-unet.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> Segmenter:
    path = trained_file(str(tmp_path_factory.mktemp("unet")))
    model = load_user_model(path, "background,bright",
                            {"channels": "grey", "scale": "unit", "resize": "bilinear"})
    assert isinstance(model, Segmenter)
    return model


def test_an_uploaded_unet_is_a_segmentation_model(segmenter):
    assert segmenter.card.task == "segmentation"
    assert segmenter.card.labels == ("background", "bright")


def test_labels_must_match_the_label_channels(tmp_path_factory):
    path = trained_file(str(tmp_path_factory.mktemp("unet2")))
    with pytest.raises(ModelError, match="2 label channels but 3 labels"):
        load_user_model(path, "a,b,c", {"channels": "grey"})


def test_a_segmenter_gives_no_class(segmenter):
    study = volume()
    with pytest.raises(ModelError, match="segmentation model"):
        segmenter.predict(segmenter.card.prepare(study, frame=0, plane="axial"))


def test_whole_volume_mask_in_the_studys_layout(segmenter):
    study = volume()
    result = segment(segmenter, study)
    mask = result.mask
    assert mask.labels.shape == study.pixels.shape
    assert result.plane == study.acquired_plane
    assert len(result.indices) == study.count(result.plane)
    share = (mask.labels == 1).mean()
    assert 0.05 < share < 0.6  # a real mask: neither empty nor everything
    # The mask lies over the bright voxels it was trained to find.
    bright = study.pixels > np.quantile(study.pixels, 0.75)
    inside = (mask.labels == 1)
    assert (bright & inside).sum() / inside.sum() > 0.6
    assert set(result.volumes_ml()) == {"bright"}


def test_batched_equals_one_by_one(segmenter):
    study = volume()
    whole = segment(segmenter, study, batch=16).mask.labels
    single = segment(segmenter, study, batch=1).mask.labels
    assert np.array_equal(whole, single)


def test_one_slice_leaves_the_others_empty(segmenter):
    study = volume()
    plane = study.acquired_plane
    middle = study.count(plane) // 2
    result = segment(segmenter, study, indices=[middle])
    assert result.indices == (middle,)
    view = result.mask.view(middle, plane)
    assert view.any()
    others = [result.mask.view(i, plane).any() for i in range(study.count(plane)) if i != middle]
    assert not any(others)


def test_out_of_range_slice_is_one_line(segmenter):
    with pytest.raises(ModelError, match="out of range"):
        segment(segmenter, volume(), indices=[10_000])


def bright_onnx() -> bytes:
    """A real ONNX segmentation graph, (N, 32, 32, 1) channels last in, (N, 32, 32, 2)
    softmax out: a 1x1 convolution that scores "bright" by the pixel's value (so the
    mask is the pixels above 0.5), written with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[[[-10.0]]], [[[10.0]]]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([5.0, -5.0], np.float32), "b")
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["scores"]),
        helper.make_node("Transpose", ["scores"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Softmax", ["nhwc"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "bright",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 32, 32, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 32, 32, 2])],
        [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_an_uploaded_onnx_segmentation_model_segments_and_explains():
    from core.explain import RegionTarget, explain

    model = load_user_model(bright_onnx(), "background,bright",
                            {"channels": "grey", "scale": "unit"}, name="bright.onnx")
    assert isinstance(model, Segmenter) and model.card.outputs == "probabilities"
    study = volume()
    result = segment(model, study)
    # The mask is exactly the voxels the graph's rule marks, laid back on the study.
    middle = study.count("axial") // 2
    x = model.card.prepare(study, frame=middle, plane="axial").array[..., 0]
    assert np.array_equal(model.labels(x[None, ..., None])[0], (x > 0.5).astype(np.uint8))
    assert result.mask.labels.any() and result.mask.labels.shape == study.pixels.shape
    # Occlusion runs on onnxruntime over a region; gradient methods say why they cannot.
    target = RegionTarget(1, x > 0.5)
    assert explain(model.onnx, x[None, ..., None], "occlusion", target).shape == (1, 32, 32)
    with pytest.raises(Exception, match="needs gradients"):
        explain(model.onnx, x[None, ..., None], "gradcam", target)
