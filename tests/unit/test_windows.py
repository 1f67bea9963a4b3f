"""VOI: window functions, VOI LUTs and presets, checked against pydicom's own transforms."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi, apply_voi_lut

from core.studies import open_study
from core.studies.windows import CT_PRESETS, Window, apply_window
from tests.conftest import dicom_file

REQUIRED_CT_PRESETS = ("brain", "subdural", "stroke", "lung", "mediastinum", "liver", "bone")


def _to_8_bits(reference: np.ndarray, ds) -> np.ndarray:
    """pydicom keeps the stored bit range (signed if the pixels are): scale it to 0..255."""
    low = -(2 ** (ds.BitsStored - 1)) if ds.PixelRepresentation else 0
    return (reference.astype(np.float64) - low) / (2**ds.BitsStored - 1) * 255


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_match_pydicom(mr_small, function):
    ds = pydicom.dcmread(mr_small)
    ds.VOILUTFunction = function
    values = apply_modality_lut(ds.pixel_array, ds)
    window = Window(float(ds.WindowCenter), float(ds.WindowWidth), "file", function)
    reference = _to_8_bits(apply_voi_lut(ds.pixel_array, ds, prefer_lut=False), ds)
    assert np.abs(apply_window(values, window).astype(np.float64) - reference).max() <= 1.0


def test_file_window_function_is_read(mr_small, tmp_path):
    ds = pydicom.dcmread(mr_small)
    ds.VOILUTFunction = "SIGMOID"
    path = tmp_path / "sigmoid.dcm"
    ds.save_as(path)
    assert open_study(path).window.function == "SIGMOID"


def test_voi_lut_sequence_matches_pydicom():
    path = dicom_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    study = open_study(path)
    assert study.window.lut is not None and study.window.source
    reference = apply_voi(ds.pixel_array, ds).astype(np.float64)
    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    expected = np.round(reference / (2**bits - 1) * 255)
    np.testing.assert_array_equal(study.display().astype(np.float64), expected)
    # The LUT is offered with the other windows, and a manual window still works.
    assert any(w.lut is not None for w in study.presets().values())
    assert not np.array_equal(study.display(window=Window(128, 64)), study.display())


def test_modality_lut_sequence_matches_pydicom():
    path = dicom_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(open_study(path).image(),
                                  apply_modality_lut(ds.pixel_array, ds).astype(np.float32))


def test_ct_presets_are_offered_in_hounsfield_units(ct_small):
    study = open_study(ct_small)
    presets = study.presets()
    for required in REQUIRED_CT_PRESETS:
        assert any(required in name.lower() for name in presets), required
    lung, brain = presets["CT lung"], presets["CT brain"]
    assert (lung.center, lung.width) == CT_PRESETS["CT lung"] == (-600.0, 1500.0)
    # Lung window: air (-1000 HU) is dark grey, not black; brain window: air is black.
    hu = study.image()
    assert not np.array_equal(study.display(window=lung), study.display(window=brain))
    assert apply_window(np.array([-1000.0]), lung)[0] > 0
    assert apply_window(np.array([-1000.0]), brain)[0] == 0
    assert hu.min() < -800


def test_non_ct_gets_no_ct_presets(mr_small):
    presets = open_study(mr_small).presets()
    assert not any(name.startswith("CT ") for name in presets)
    assert any(name.startswith("File:") for name in presets)
    assert any(name.startswith("Auto") for name in presets)


def test_percentile_window_spans_the_values(ct_small):
    study = open_study(ct_small)
    full = study.presets()["Full range (min-max)"]
    hu = study.image()
    assert full.center - full.width / 2 == pytest.approx(hu.min())
    assert full.center + full.width / 2 == pytest.approx(hu.max())


def test_multiple_file_windows_are_all_offered(ct_small, tmp_path):
    ds = pydicom.dcmread(ct_small)
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    ds.WindowCenterWidthExplanation = ["SOFT", "LUNG"]
    path = tmp_path / "two.dcm"
    ds.save_as(path)
    study = open_study(path)
    assert [(w.center, w.width) for w in study.windows] == [(40, 400), (-600, 1500)]
    assert study.window.center == 40 and "SOFT" in study.window.source
