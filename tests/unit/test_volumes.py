"""Series, multi-frame volumes and NIfTI: order, spacing and radiological orientation."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from core.studies import StudyError, open_files, open_study
from tests.conftest import dicom_file
from tests.series import SOURCE, stored_slices, write_series

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def _hu(stored: np.ndarray) -> np.ndarray:
    ds = pydicom.dcmread(get_testdata_file(SOURCE))
    return (stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).astype(np.float32)


def _zip(files: list[Path], names: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, path in enumerate(files):
            archive.writestr(names[i] if names else f"series/{path.name}", path.read_bytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def axial(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("axial")
    write_series(folder, slices=12, size=128, spacing=2.5)
    return folder


def test_series_is_sorted_along_the_slice_normal(axial):
    study = open_study(axial)
    assert study.format == "DICOM series" and study.modality == "CT" and study.units == "HU"
    assert study.shape == [12, 128, 128] and study.slices == 12 and study.is_volume
    # Written under shuffled names: the order comes from ImagePositionPatient.
    np.testing.assert_array_equal(study.pixels, _hu(stored_slices(12, 128)))
    assert study.spacing == pytest.approx((2.5, 0.478516, 0.478516))
    assert study.acquired_plane == "axial" and study.planes == ("axial", "coronal", "sagittal")


def test_series_zip_and_uploads_equal_the_folder(axial):
    folder = open_study(axial)
    files = sorted(axial.iterdir())
    from_zip = open_study(_zip(files), name="series.zip")
    uploads = open_files([(p.name, p.read_bytes()) for p in files])
    for other in (from_zip, uploads):
        np.testing.assert_array_equal(other.pixels, folder.pixels)
        np.testing.assert_allclose(other.affine, folder.affine)


def test_reformats_have_the_true_aspect_ratio(axial):
    study = open_study(axial)
    assert (study.count("axial"), study.count("coronal"), study.count("sagittal")) == (12, 128, 128)
    # 12 slices x 2.5 mm = 30 mm tall, 128 x 0.4785 mm = 61 mm wide.
    coronal = study.display(64, plane="coronal")
    assert coronal.shape == (round(12 * 2.5 / 0.478516), 128)
    # Superior at the top: the last (most superior) slice is the top row of the stored data.
    view = study.view(64, "coronal")
    np.testing.assert_array_equal(view.values[0], study.pixels[-1][64])
    np.testing.assert_array_equal(study.display(5, plane="axial"), study.display(5))


@pytest.mark.parametrize("orientation", ["coronal", "sagittal"])
def test_acquired_plane_is_shown_as_stored_when_already_radiological(tmp_path, orientation):
    write_series(tmp_path, slices=6, size=64, orientation=orientation)
    study = open_study(tmp_path)
    assert study.acquired_plane == orientation
    stored = _hu(stored_slices(6, 64))
    for k in range(6):
        shown = study.view(k, orientation).values
        # Sagittal slices are numbered from the patient's right; written from the left.
        expected = stored[5 - k] if orientation == "sagittal" else stored[k]
        np.testing.assert_array_equal(shown, expected)


def test_other_series_are_reported_not_mixed_in(tmp_path):
    write_series(tmp_path / "a", slices=8, size=64)
    write_series(tmp_path / "b", slices=3, size=32, seed=1)
    study = open_study(tmp_path)
    assert study.shape == [8, 64, 64]
    assert any("other series not mixed in" in note and "3 file(s)" in note
               for note in study.notes)


def test_series_without_positions_falls_back_to_instance_number(tmp_path):
    write_series(tmp_path, slices=5, size=32, positions=False)
    study = open_study(tmp_path)
    np.testing.assert_array_equal(study.pixels, _hu(stored_slices(5, 32)))
    assert not study.is_volume and study.planes == () and study.slices == 5
    assert any("InstanceNumber" in note for note in study.notes)
    assert study.slice_spacing == 2.5  # from SliceThickness, as the files declare


def test_non_images_in_a_folder_are_reported(tmp_path, axial):
    for path in sorted(axial.iterdir())[:4]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "report.dcm").write_bytes(dicom_file("reportsi.dcm").read_bytes())
    study = open_study(tmp_path)
    assert study.frames == 4
    assert any("Basic Text SR" in note for note in study.notes)
    assert any("notes.txt" in note for note in study.notes)


def test_a_folder_without_images_says_what_it_holds(tmp_path):
    (tmp_path / "report.dcm").write_bytes(dicom_file("reportsi.dcm").read_bytes())
    (tmp_path / "plan.dcm").write_bytes(dicom_file("rtplan.dcm").read_bytes())
    with pytest.raises(StudyError) as caught:
        open_study(tmp_path, name="reports")
    message = str(caught.value)
    assert message.startswith("reports: no DICOM images (")
    assert "1 Basic Text SR Storage" in message and "1 RT Plan Storage" in message


def test_enhanced_ct_frames_are_a_volume():
    study = open_study(dicom_file("eCT_Supplemental.dcm"))
    assert study.is_volume and study.shape == [2, 512, 512]
    # Its Pixel Value Transformation says RescaleType US (unspecified): a perfusion map,
    # not HU, so no unit is claimed.
    assert study.units == "" and study.modality == "CT"
    assert study.slice_spacing == pytest.approx(10.0)
    assert study.window.center == 49.0  # from the shared Frame VOI LUT functional group


def test_cine_is_frames_not_a_volume():
    study = open_study(dicom_file("examples_ybr_color.dcm"))
    assert study.shape == [30, 240, 320] and study.is_colour and not study.is_volume
    assert study.slices == 1 and study.planes == () and study.samples_per_pixel == 3
    assert study.display(29).shape == (240, 320, 3)


def test_gzipped_dicom_is_read():
    study = open_study(dicom_file("zipMR.gz"))
    assert study.format == "DICOM" and study.shape == [64, 64]


# -- NIfTI --------------------------------------------------------------------------------

def test_nifti_values_spacing_and_layout():
    path = NIBABEL_DATA / "anatomical.nii"
    img = nib.load(path)
    study = open_study(path)
    assert study.format == "NIfTI" and study.is_volume
    assert study.shape == [25, 41, 33]  # (k, j, i)
    np.testing.assert_array_equal(study.pixels, np.transpose(img.get_fdata(), (2, 1, 0)))
    assert study.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert study.metadata["StoredOrientation"].startswith("LAS")


def test_nifti_is_shown_in_radiological_orientation():
    # The same brain stored LAS and RAS must look the same, and as a radiologist expects:
    # axial with the patient's right on the viewer's left and anterior at the top.
    img = nib.load(NIBABEL_DATA / "anatomical.nii")
    ras = nib.as_closest_canonical(img)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    las_study = open_study(NIBABEL_DATA / "anatomical.nii")
    ras_study = open_study(ras.to_bytes(), name="ras.nii")
    data = ras.get_fdata()  # data[i, j, k]: i to the Right, j Anterior, k Superior
    for plane in ("axial", "coronal", "sagittal"):
        for index in (0, las_study.count(plane) // 2):
            np.testing.assert_array_equal(las_study.view(index, plane).values,
                                          ras_study.view(index, plane).values)
    axial = ras_study.view(10, "axial").values
    # Row 0 is the most anterior (largest j); column 0 the patient's right (largest i).
    np.testing.assert_array_equal(axial, data[::-1, ::-1, 10].T)
    sagittal = ras_study.view(0, "sagittal").values  # most rightward sagittal slice
    # Superior at the top, anterior on the viewer's left.
    np.testing.assert_array_equal(sagittal, data[-1, ::-1, ::-1].T)


def test_nifti_gz_4d_shows_the_first_volume_and_says_so():
    path = NIBABEL_DATA / "example4d.nii.gz"
    img = nib.load(path)
    study = open_study(path)
    assert study.shape == [24, 96, 128]
    np.testing.assert_allclose(study.pixels, np.transpose(img.get_fdata()[..., 0], (2, 1, 0)))
    assert any("volume 1 of 2" in note for note in study.notes)
    assert study.slice_spacing == pytest.approx(2.2, abs=1e-5)
    # Anisotropic voxels: coronal views are stretched to the true aspect ratio.
    assert study.display(0, plane="coronal").shape == (round(24 * 2.2 / 2.0), 128)


def test_truncated_nifti_is_one_line(tmp_path):
    data = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    with pytest.raises(StudyError) as caught:
        open_study(data[: len(data) // 2], name="half.nii")
    assert str(caught.value).startswith("half.nii: cannot read the NIfTI")
    assert "\n" not in str(caught.value)


# -- hostile archives ---------------------------------------------------------------------

def test_zip_with_thousands_of_files_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(5000):
            archive.writestr(f"f{i}.dcm", b"x")
    with pytest.raises(StudyError, match=r"^many\.zip: 5,000 files, more than the 1,000"):
        open_study(buffer.getvalue(), name="many.zip")


@pytest.mark.parametrize("entry", ["../evil.dcm", "/etc/evil.dcm", "a/../../evil.dcm"])
def test_zip_with_path_traversal_is_refused(ct_small, entry):
    data = _zip([ct_small, ct_small], names=["ok.dcm", entry])
    with pytest.raises(StudyError, match=rf"^bad\.zip: unsafe path '{entry}'"):
        open_study(data, name="bad.zip")


def test_gzip_bombs_are_refused_before_inflating():
    # Zeros: neither NIfTI nor DICOM at the head, refused at once.
    zeros = gzip.compress(bytes(64 * 1024**2), compresslevel=1)
    with pytest.raises(StudyError, match=r"^z\.nii\.gz: a gzip file holding neither NIfTI"):
        open_study(zeros * 40, name="z.nii.gz")
    # A real NIfTI followed by 2.5 GB of zeros: stopped at the size its header declares.
    real = gzip.compress((NIBABEL_DATA / "anatomical.nii").read_bytes())
    declared = r"^bomb\.nii\.gz: decompresses to more than \d+ KB \(what its NIfTI header"
    with pytest.raises(StudyError, match=declared):
        open_study(real + zeros * 40, name="bomb.nii.gz")


def test_truncated_gzip_is_one_line():
    data = gzip.compress((NIBABEL_DATA / "anatomical.nii").read_bytes())
    with pytest.raises(StudyError, match=r"^t\.nii\.gz: a truncated gzip stream$"):
        open_study(data[: len(data) // 2], name="t.nii.gz")


def test_dicom_seg_and_sr_are_named_for_what_they_are():
    with pytest.raises(StudyError, match=r"^liver\.dcm: a DICOM Segmentation \(SEG\).*Liver"):
        open_study(dicom_file("liver.dcm"), name="liver.dcm")
    with pytest.raises(StudyError, match=r"^report\.dcm: a DICOM object without pixel data "
                       r"\(Basic Text SR Storage\)"):
        open_study(dicom_file("reportsi.dcm"), name="report.dcm")


def test_gzip_of_garbage_is_one_line():
    data = gzip.compress(b"hello world" * 10)
    with pytest.raises(StudyError, match=r"^x\.gz: a gzip file holding neither NIfTI nor DICOM$"):
        open_study(data, name="x.gz")


def test_an_undecodable_file_does_not_hide_a_good_one():
    good = ("693_UNCR.dcm", dicom_file("693_UNCR.dcm").read_bytes())
    bad = ("JPEG-lossy.dcm", dicom_file("JPEG-lossy.dcm").read_bytes())
    for files in ([good, bad], [bad, good]):
        study = open_files(files)
        assert study.name == "693_UNCR.dcm" and study.shape == [512, 512]
    study = open_files([bad, good])
    assert any(n.startswith("not readable: JPEG-lossy.dcm: cannot decode") for n in study.notes)


def test_model_input_from_a_reformat_records_plane_slice_and_aspect(axial):
    from core.models import card
    from core.models.inputs import prepare

    study = open_study(axial)
    made = prepare(study, card("braintumor-vgg16").input_spec, frame=64, plane="coronal")
    assert made.plane == "coronal" and made.source_shape == (63, 128)
    assert made.steps[0] == "coronal 65 of 128 (radiological orientation)"
    assert any("resampled to 128x63 for true aspect ratio" in step for step in made.steps)
    assert any(step.startswith("window C ") for step in made.steps)
    assert made.array.shape == (240, 240, 3)
