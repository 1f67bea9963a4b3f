"""Dice, IoU, HD95 and label-map comparison (core.segment.metrics): hand-checkable shapes,
MONAI's empty-mask conventions, a brute-force HD95, and properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from core.segment.metrics import CONVENTION, compare, dice, hd95, iou, per_slice_dice, surface
from core.studies.masks import LabelMap, Segment
from core.studies.study import StudyError

pytestmark = pytest.mark.unit


def square(shape=(40, 40), top=10, left=10, size=10) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top: top + size, left: left + size] = True
    return mask


def test_squares_offset_by_three_columns_by_hand():
    truth, pred = square(), square(left=13)
    # Overlap 10 rows x 7 columns of 100 + 100 pixels.
    assert dice(pred, truth) == pytest.approx(2 * 70 / 200)
    assert iou(pred, truth) == pytest.approx(70 / 130)
    # The far column of each square (10 of its 36 surface pixels, more than 5%) is 3
    # columns from the other's: 3 x the column spacing, whatever the row spacing.
    assert hd95(pred, truth, spacing=(1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(pred, truth, spacing=(2.0, 1.0)) == pytest.approx(3.0)
    assert hd95(pred, truth) == pytest.approx(3.0)


def test_cubes_offset_along_slices_use_the_slice_spacing():
    truth = np.zeros((20, 20, 20), dtype=bool)
    truth[5:11, 5:11, 5:11] = True
    pred = np.roll(truth, 2, axis=0)
    # The far face: 36 of 152 surface voxels, 2 slices of 2.5 mm away.
    assert hd95(pred, truth, spacing=(2.5, 0.5, 0.5)) == pytest.approx(5.0)
    assert dice(pred, truth) == pytest.approx(2 * 4 * 36 / (2 * 216))


def test_single_voxels_give_their_distance_in_mm():
    pred, truth = np.zeros((9, 9), bool), np.zeros((9, 9), bool)
    pred[2, 2], truth[5, 6] = True, True
    assert hd95(pred, truth, spacing=(0.8, 1.5)) == pytest.approx(math.hypot(3 * 0.8, 4 * 1.5))


def test_empty_masks_follow_monai():
    empty, some = np.zeros((8, 8), bool), square((8, 8), 2, 2, 3)
    # Both empty: undefined everywhere.
    assert math.isnan(dice(empty, empty)) and math.isnan(iou(empty, empty))
    assert math.isnan(hd95(empty, empty, (1, 1)))
    # A present label missed: Dice and IoU 0, HD95 unbounded.
    assert dice(empty, some) == 0.0 and iou(empty, some) == 0.0
    assert hd95(empty, some, (1, 1)) == math.inf
    # An empty truth: Dice/IoU undefined (ignore_empty), HD95 inf (MONAI's value).
    assert math.isnan(dice(some, empty)) and math.isnan(iou(some, empty))
    assert hd95(some, empty, (1, 1)) == math.inf


def brute_hd95(pred: np.ndarray, truth: np.ndarray, spacing) -> float:
    """Every pair of surface voxels: the percentile of each direction, then the max."""
    scale = np.asarray(spacing, dtype=float)
    a = np.argwhere(surface(pred)) * scale
    b = np.argwhere(surface(truth)) * scale
    d = cdist(a, b)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def blob(rng: np.random.Generator, shape) -> np.ndarray:
    mask = rng.random(shape) < 0.35
    return mask


@pytest.mark.parametrize("seed", range(6))
def test_hd95_matches_all_pairs_of_surface_voxels(seed):
    rng = np.random.default_rng(seed)
    shape = (6, 12, 14) if seed % 2 else (15, 17)
    spacing = (3.0, 0.7, 1.1)[-len(shape):]
    pred, truth = blob(rng, shape), blob(rng, shape)
    assert hd95(pred, truth, spacing) == pytest.approx(brute_hd95(pred, truth, spacing))


def test_hd95_is_not_the_percentile_of_pooled_distances():
    # A small prediction far from part of a large truth: the directions differ, and the
    # larger directed P95 is reported.
    truth = np.zeros((60, 60), bool)
    truth[5:55, 5:55] = True
    pred = np.zeros_like(truth)
    pred[5:10, 5:10] = True
    s = np.argwhere(surface(pred)).astype(float)
    t = np.argwhere(surface(truth)).astype(float)
    d = cdist(s, t)
    pooled = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
    directed = max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))
    assert directed != pytest.approx(pooled)
    assert hd95(pred, truth) == pytest.approx(directed)


def test_shapes_and_spacing_must_match():
    with pytest.raises(ValueError, match="different shapes"):
        dice(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="spacings"):
        hd95(np.ones((3, 3), bool), np.ones((3, 3), bool), spacing=(1, 1, 1))


masks = st.integers(0, 2**20 - 1).map(
    lambda bits: np.array([(bits >> i) & 1 for i in range(20)], dtype=bool).reshape(4, 5))


@settings(max_examples=200, deadline=None)
@given(masks, masks)
def test_dice_properties(a, b):
    if a.any() and b.any():
        assert dice(a, b) == pytest.approx(dice(b, a))
    value = dice(a, b)
    if b.any():
        assert 0.0 <= value <= 1.0
        assert (value == 1.0) == bool(np.array_equal(a, b))
        assert iou(a, b) <= value + 1e-12  # IoU = D / (2 - D) <= D
        assert iou(a, b) == pytest.approx(value / (2 - value))
    else:
        assert math.isnan(value)


@settings(max_examples=100, deadline=None)
@given(masks, masks)
def test_hd95_symmetric_and_zero_on_itself(a, b):
    h = hd95(a, b, (1.0, 2.0))
    assert h == hd95(b, a, (1.0, 2.0)) or (math.isnan(h) and math.isnan(hd95(b, a, (1.0, 2.0))))
    if a.any():
        assert hd95(a, a, (1.0, 2.0)) == 0.0
        assert h >= 0.0


def test_per_slice_dice_is_nan_where_the_truth_slice_is_empty():
    truth = np.zeros((3, 4, 4), bool)
    pred = np.zeros_like(truth)
    truth[0, :2], pred[0, :1] = True, True  # 4 of 8 pixels: Dice 2*4/12
    truth[1, 1:3, 1:3], pred[1] = True, False  # missed: 0
    pred[2, 0, 0] = True  # truth empty: NaN
    values = per_slice_dice(pred, truth)
    assert values[0] == pytest.approx(8 / 12) and values[1] == 0.0 and math.isnan(values[2])


def labelmap(labels: np.ndarray, segments: tuple[Segment, ...], name: str,
             spacing=(0.5, 0.5), slice_spacing: float | None = 2.0) -> LabelMap:
    return LabelMap(name=name, labels=labels.astype(np.uint8), segments=segments,
                    source="model", pixel_spacing=spacing, slice_spacing=slice_spacing)


def test_compare_matches_labels_by_name_not_number():
    truth_labels = np.zeros((4, 20, 20), np.uint8)
    truth_labels[1:3, 2:8, 2:8] = 1  # grey matter
    truth_labels[0:4, 10:16, 10:16] = 2  # white matter
    pred_labels = np.zeros_like(truth_labels)
    pred_labels[1:3, 2:8, 2:8] = 7  # same grey matter, other number
    pred_labels[0:4, 10:16, 12:18] = 3  # white matter two columns right
    pred_labels[0, 0, 0] = 9  # a label the truth does not have
    truth = labelmap(truth_labels, (Segment(1, "Grey matter", (0, 0, 255)),
                                    Segment(2, "White matter", (255, 255, 255)),
                                    Segment(3, "CSF", (0, 255, 0))), "truth.nii.gz")
    pred = labelmap(pred_labels, (Segment(7, "grey MATTER", (1, 2, 3)),
                                  Segment(3, "white matter", (4, 5, 6)),
                                  Segment(9, "Lesion", (7, 8, 9))), "pred")
    result = compare(pred, truth)
    assert result.labels == ("Grey matter", "White matter")
    assert result.dice["Grey matter"] == 1.0 and result.hd95_mm["Grey matter"] == 0.0
    assert result.dice["White matter"] == pytest.approx(2 * 4 / 12)
    assert result.iou["White matter"] == pytest.approx(4 / 8)
    assert result.hd95_mm["White matter"] == pytest.approx(1.0)  # 2 columns of 0.5 mm
    assert result.unmatched == {"CSF": "truth only", "Lesion": "prediction only"}
    grey = result.per_slice["Grey matter"]
    assert math.isnan(grey[0]) and grey[1] == 1.0 and math.isnan(grey[3])
    assert result.worst_slice("grey matter") in (1, 2)
    assert result.spacing == (2.0, 0.5, 0.5)
    assert result.convention == CONVENTION
    assert result.mean("dice") == pytest.approx((1.0 + 2 / 3) / 2)


def test_compare_json_is_strict_json():
    truth_labels = np.zeros((2, 6, 6), np.uint8)
    truth_labels[0, 1:3, 1:3] = 1
    pred_labels = np.zeros_like(truth_labels)  # bone missed: Dice 0, HD95 inf
    segs = (Segment(1, "Bone", (255, 255, 255)),)
    out = compare(labelmap(pred_labels, segs, "p"), labelmap(truth_labels, segs, "t")).to_dict()
    text = json.dumps(out, allow_nan=False)  # raises on NaN or inf
    back = json.loads(text)
    assert back["dice"] == {"Bone": 0.0} and back["hd95_mm"] == {"Bone": "inf"}
    assert back["per_slice_dice"]["Bone"] == [0.0, None]
    assert back["worst_slice"] == {"Bone": 0}


def test_compare_one_image_is_two_dimensional_and_needs_spacing_for_hd95():
    truth = square((1, 12, 12)[1:], 2, 2, 5)[None]
    pred = square((12, 12), 2, 4, 5)[None]
    segs = (Segment(1, "Lesion", (255, 0, 0)),)
    result = compare(labelmap(pred, segs, "p", (1.0, 3.0), None),
                     labelmap(truth, segs, "t", (1.0, 3.0), None))
    assert result.hd95_mm["Lesion"] == pytest.approx(6.0)
    unknown = compare(labelmap(pred, segs, "p", None, None), labelmap(truth, segs, "t", None, None))
    assert math.isnan(unknown.hd95_mm["Lesion"]) and "HD95 not computed" in unknown.notes[0]


def test_compare_refuses_maps_that_do_not_fit_in_one_line():
    segs = (Segment(1, "Bone", (255, 255, 255)),)
    a = labelmap(np.zeros((2, 6, 6)), segs, "a.nii")
    b = labelmap(np.zeros((3, 6, 6)), segs, "b.nii")
    with pytest.raises(StudyError, match="a.nii .* b.nii .*different shapes") as error:
        compare(a, b)
    assert "\n" not in str(error.value)
    c = labelmap(np.zeros((2, 6, 6)), segs, "c.nii", spacing=(1.0, 1.0))
    with pytest.raises(StudyError, match="different voxel spacings"):
        compare(a, c)
