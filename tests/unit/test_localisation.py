"""The pointing game (Zhang et al. 2018) and the energy-based pointing game (Wang et al.
2020) on maps and masks worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.explain.errors import ExplainError
from core.explain.metrics.localisation import (
    OPTIONS,
    POINTING_TOLERANCE,
    energy_pointing_game,
    localisation,
    localisation_report,
    pointing_game,
    random_hit,
    uniform_energy,
)


def mask_at(rows: slice, cols: slice, shape=(40, 40)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def peak_at(row: int, col: int, shape=(40, 40)) -> np.ndarray:
    saliency = np.full(shape, 0.1, np.float32)
    saliency[row, col] = 1.0
    return saliency


def test_a_peak_inside_the_mask_is_a_hit():
    assert pointing_game(peak_at(5, 5), mask_at(slice(3, 8), slice(3, 8)))


def test_the_tolerance_counts_in_the_masks_pixels():
    mask = mask_at(slice(0, 40), slice(30, 40))  # columns 30..39
    saliency = peak_at(20, 20)  # 10 pixels left of the mask
    assert OPTIONS["tolerance"].default == POINTING_TOLERANCE == 15
    assert pointing_game(saliency, mask)  # the paper's 15 pixels
    assert pointing_game(saliency, mask, tolerance=10)
    assert not pointing_game(saliency, mask, tolerance=9.9)
    assert not pointing_game(saliency, mask, tolerance=0)


def test_an_empty_map_points_at_nothing():
    assert not pointing_game(np.zeros((40, 40)), np.ones((40, 40), bool))


def test_ties_go_to_the_first_pixel_in_raster_order():
    saliency = np.zeros((40, 40))
    saliency[2, 30] = saliency[30, 2] = 1.0
    assert pointing_game(saliency, mask_at(slice(0, 5), slice(28, 33)), tolerance=0)
    assert not pointing_game(saliency, mask_at(slice(28, 33), slice(0, 5)), tolerance=0)


def test_energy_is_the_share_of_the_mass_inside():
    saliency = np.zeros((40, 40), np.float32)
    saliency[0:2, 0:2] = 1.0  # 4 inside the mask, mass 4
    saliency[10:12, 10:16] = 1.0  # 12 outside, mass 12
    mask = mask_at(slice(0, 5), slice(0, 5))
    assert energy_pointing_game(saliency, mask) == pytest.approx(4 / 16)
    saliency[0, 0] = 5.0  # mass 8 inside
    assert energy_pointing_game(saliency, mask) == pytest.approx(8 / 20)


def test_negative_values_carry_no_energy():
    saliency = np.zeros((40, 40), np.float32)
    saliency[0, 0] = 1.0
    saliency[20, 20] = -3.0  # outside, but negative: no mass
    assert energy_pointing_game(saliency, mask_at(slice(0, 2), slice(0, 2))) == 1.0


def test_a_uniform_map_gets_the_area_share():
    mask = mask_at(slice(0, 10), slice(0, 20))  # 200 of 1600 pixels
    assert uniform_energy(mask) == 0.125
    assert energy_pointing_game(np.ones((40, 40)), mask) == pytest.approx(0.125)


def test_an_empty_map_has_no_energy():
    assert math.isnan(energy_pointing_game(np.zeros((40, 40)), np.ones((40, 40), bool)))


def test_the_chance_of_a_random_hit():
    mask = np.zeros((11, 11), bool)
    mask[5, 5] = True
    assert random_hit(mask, tolerance=0) == pytest.approx(1 / 121)
    # The four neighbours lie 1 away, the diagonals sqrt(2).
    assert random_hit(mask, tolerance=1) == pytest.approx(5 / 121)
    assert random_hit(mask, tolerance=1.5) == pytest.approx(9 / 121)


def test_a_batch_report():
    mask = mask_at(slice(0, 10), slice(0, 10))
    maps = np.stack([peak_at(5, 5), peak_at(35, 35), np.zeros((40, 40))])
    report = localisation_report(maps, mask, tolerance=3)
    assert report["pointing_game"] == [True, False, False]
    assert report["hit_rate"] == pytest.approx(1 / 3)
    inside = (0.1 * 99 + 1.0) / (0.1 * 1599 + 1.0)
    assert report["energy"][0] == pytest.approx(inside)
    assert report["energy"][1] == pytest.approx(0.1 * 100 / (0.1 * 1599 + 1.0))
    assert math.isnan(report["energy"][2])
    assert report["mean_energy"] == pytest.approx((report["energy"][0] + report["energy"][1]) / 2)
    assert report["uniform_energy"] == [100 / 1600] * 3
    assert report["random_hit"] == [pytest.approx(random_hit(mask, 3))] * 3
    assert report["tolerance"] == 3.0


def test_one_mask_per_map_and_one_map_alone():
    masks = np.stack([mask_at(slice(0, 10), slice(0, 10)), mask_at(slice(30, 40), slice(30, 40))])
    maps = np.stack([peak_at(35, 35), peak_at(35, 35)])
    assert localisation_report(maps, masks, tolerance=0)["pointing_game"] == [False, True]
    assert localisation_report(peak_at(35, 35), masks[1])["pointing_game"] == [True]


@pytest.mark.parametrize("call, message", [
    (lambda: localisation_report(np.zeros((2, 40, 40)), np.ones((3, 40, 40), bool)),
     "masks of shape (3, 40, 40) for maps of shape (2, 40, 40)"),
    (lambda: pointing_game(np.zeros((40, 40)), np.ones((20, 20), bool)),
     "mask of shape (20, 20), the map is (40, 40)"),
    (lambda: energy_pointing_game(np.ones((40, 40)), np.zeros((40, 40), bool)),
     "the mask is empty"),
    (lambda: pointing_game(np.ones((40, 40)), np.ones((40, 40), bool), tolerance=-1),
     "tolerance must be at least 0"),
])
def test_bad_requests_are_one_line_errors(call, message):
    with pytest.raises(ExplainError) as error:
        call()
    assert str(error.value) == message


def test_the_single_map_result_carries_the_energy():
    result = localisation(peak_at(5, 5), mask=mask_at(slice(0, 10), slice(0, 10)))
    assert result.pointing_hit
    assert result.energy == pytest.approx((0.1 * 99 + 1.0) / (0.1 * 1599 + 1.0))
    assert result.uniform_energy == pytest.approx(100 / 1600)
    assert set(result.to_dict()) >= {"energy", "uniform_energy", "pointing_hit", "iou"}
