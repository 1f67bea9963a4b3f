"""Writing label maps (core.segment.write): NIfTI round trips through nibabel and
`open_study`, DICOM SEG from real DICOM (a single file, a series, an enhanced multi-frame
CT) read back with highdicom, with and without the source's identity, PNG, and the
source headers a DICOM study keeps."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from core.segment.write import _pseudonym, write_dicom_seg, write_nifti, write_png
from core.studies import StudyError, open_study
from core.studies.deid import identifying, identifying_kind
from core.studies.masks import LabelMap, Segment
from tests.series import write_series

pytestmark = pytest.mark.unit

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
SEGMENTS = (Segment(1, "Bone", (255, 255, 255)), Segment(4, "Soft tissue", (200, 80, 60)))


def labels_for(study, seed: int = 0, segments=SEGMENTS, name: str = "head-ct") -> LabelMap:
    """A label map on the study's grid that differs from slice to slice."""
    shape = study.pixels.shape[:3]
    values = np.zeros(shape, np.uint8)
    rows, cols = shape[1:]
    for k in range(shape[0]):
        values[k, rows // 8 + k: rows // 2 + k, cols // 8: cols // 2] = segments[0].number
        values[k, rows // 2 + 2: rows - 4, cols // 2 + k: cols - 4] = segments[-1].number
    if seed:
        values = np.random.default_rng(seed).choice(
            [0] + [s.number for s in segments], size=shape).astype(np.uint8)
    return LabelMap(name, values, segments, "model", study.affine, study.pixel_spacing,
                    study.slice_spacing)


def read_seg(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.seg.segread(path)


def planes(labels: LabelMap, k: int) -> np.ndarray:
    return np.stack([labels.labels[k] == s.number for s in labels.segments], axis=-1)


def leaked(source: pydicom.Dataset, data: bytes) -> dict[str, str]:
    """The source's identifying values found anywhere in `data`. A value that is also part
    of a technical attribute of the source ("0.000000" is a weight and an orientation) is
    not evidence of a leak, and neither are one- to three-character values ("O", "M")."""
    technical = " ".join(str(e.value) for e in source.iterall()
                         if e.VR not in ("SQ", "OB", "OW") and
                         not identifying_kind(e.keyword or "", e.VR))
    found = {}
    for keyword, value in identifying(source).items():
        if len(value) >= 4 and value not in technical and value.encode() in data:
            found[keyword] = value
    return found


# -- NIfTI ------------------------------------------------------------------------------

def test_nifti_round_trip_through_nibabel_and_open_study(tmp_path):
    source = NIBABEL_DATA / "anatomical.nii"  # stored LAS: the x axis flipped
    study = open_study(source)
    labels = labels_for(study, seed=3)
    path = write_nifti(labels, tmp_path / "mask.nii.gz")
    img = nib.load(path)
    # The same voxels and the same RAS affine as the file the study came from.
    np.testing.assert_array_equal(np.asarray(img.dataobj), labels.labels.transpose(2, 1, 0))
    np.testing.assert_allclose(img.affine, nib.load(source).affine, atol=1e-5)
    assert img.get_data_dtype() == np.uint8 and "".join(nib.aff2axcodes(img.affine)) == "LAS"
    back = open_study(path)
    np.testing.assert_array_equal(back.pixels, labels.labels)
    np.testing.assert_allclose(back.affine, study.affine, atol=1e-5)
    assert back.spacing == pytest.approx(study.spacing)


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_nifti_from_a_dicom_series_keeps_its_lps_geometry(tmp_path, orientation):
    write_series(tmp_path / "series", slices=5, size=48, orientation=orientation, spacing=3.0)
    study = open_study(tmp_path / "series")
    labels = labels_for(study, seed=1)
    back = open_study(write_nifti(labels, tmp_path / "mask.nii"))
    np.testing.assert_array_equal(back.pixels, labels.labels)
    np.testing.assert_allclose(back.affine, study.affine, atol=1e-4)
    assert back.acquired_plane == study.acquired_plane == orientation
    # Cut the same way in every plane as the study would cut these values.
    same_grid = replace(study, pixels=labels.labels.astype(np.float32))
    for plane in ("axial", "coronal", "sagittal"):
        index = study.count(plane) // 2
        np.testing.assert_array_equal(back.view(index, plane).values,
                                      same_grid.view(index, plane).values)


def test_nifti_uses_uint16_past_255_labels_and_names_its_segments(tmp_path):
    values = np.zeros((3, 8, 9), np.uint16)
    values[1, 2:4, 3:5] = 300
    labels = LabelMap("big", values, (Segment(300, "Lesion", (255, 0, 0)),), "model",
                      pixel_spacing=(0.5, 0.7), slice_spacing=2.0)
    img = nib.load(write_nifti(labels, tmp_path / "big.nii"))
    assert img.get_data_dtype() == np.uint16 and int(np.asarray(img.dataobj).max()) == 300
    assert img.header.get_zooms() == pytest.approx((0.7, 0.5, 2.0))
    comment = img.header.extensions[0].get_content().decode()
    assert '"name": "Lesion"' in comment and '"colour": [255, 0, 0]' in comment


def test_nifti_of_one_image_keeps_its_pixel_spacing(tmp_path):
    values = np.zeros((1, 10, 12), np.uint8)
    values[0, 2:5, 3:9] = 1
    labels = LabelMap("png", values, (SEGMENTS[0],), "PNG", pixel_spacing=(0.3, 0.6))
    back = open_study(write_nifti(labels, tmp_path / "one.nii"))
    np.testing.assert_array_equal(back.pixels, values)
    assert back.pixel_spacing == pytest.approx((0.3, 0.6))


# -- DICOM SEG ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ct_small():
    return get_testdata_file("CT_small.dcm")


def test_seg_from_one_file_replaces_the_identity(tmp_path, ct_small):
    source = pydicom.dcmread(ct_small)
    assert str(source.PatientName) and source.InstitutionName  # something to hide
    study = open_study(ct_small)
    labels = labels_for(study)
    path = write_dicom_seg(labels, study, tmp_path / "mask.seg.dcm", algorithm="head-ct-unet")
    data = path.read_bytes()
    assert leaked(source, data) == {}
    for value in (str(source.PatientName), source.PatientID, source.InstitutionName,
                  source.StudyInstanceUID, source.SOPInstanceUID, source.FrameOfReferenceUID):
        assert value.encode() not in data
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert str(seg.PatientName) == "Anonymous^Patient" and seg.PatientID == "ANONYMOUS"
    assert seg.PatientBirthDate == "" and seg.AccessionNumber == ""
    assert seg.PatientIdentityRemoved == "YES"
    assert seg.StudyInstanceUID == _pseudonym(source.StudyInstanceUID)
    # Named, coloured, numbered 1..S, made by the model.
    items = seg.SegmentSequence
    assert [i.SegmentLabel for i in items] == ["Bone", "Soft tissue"]
    assert [int(i.SegmentNumber) for i in items] == [1, 2]
    rgb = hd.color.CIELabColor.from_dicom_value(items[1].RecommendedDisplayCIELabValue).to_rgb()
    assert np.allclose(rgb, (200, 80, 60), atol=2)
    assert items[0].SegmentAlgorithmType == "AUTOMATIC"
    assert items[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == \
        "MedLens head-ct-unet"
    assert items[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Bone"
    # It references the source under its pseudonym, and holds the same mask.
    seg = read_seg(path)
    referenced = [uid for _, _, uid in seg.get_source_image_uids()]
    assert referenced == [_pseudonym(source.SOPInstanceUID)]
    pixels = seg.get_pixels_by_source_instance([referenced[0]], segment_numbers=[1, 2])
    np.testing.assert_array_equal(pixels[0].astype(bool), planes(labels, 0))


def test_seg_keeps_the_identity_only_when_asked(tmp_path, ct_small):
    source = pydicom.dcmread(ct_small)
    study = open_study(ct_small)
    path = write_dicom_seg(labels_for(study), study, tmp_path / "pacs.dcm", keep_identity=True)
    seg = pydicom.dcmread(path)
    assert str(seg.PatientName) == str(source.PatientName)
    assert seg.PatientID == source.PatientID
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.SOPInstanceUID != source.SOPInstanceUID
    uids = [uid for _, _, uid in read_seg(path).get_source_image_uids()]
    assert uids == [source.SOPInstanceUID]


def test_seg_of_a_series_references_each_slice_in_order(tmp_path):
    files = write_series(tmp_path / "series", slices=6, size=64)  # written shuffled
    study = open_study(tmp_path / "series")
    labels = labels_for(study)
    sources = [pydicom.dcmread(f) for f in files]  # in true slice order
    kept = write_dicom_seg(labels, study, tmp_path / "kept.dcm", keep_identity=True)
    seg = read_seg(kept)
    for k, source in enumerate(sources):
        pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID],
                                                   segment_numbers=[1, 2])
        np.testing.assert_array_equal(pixels[0].astype(bool), planes(labels, k))
    hidden = write_dicom_seg(labels, study, tmp_path / "hidden.dcm")
    data = hidden.read_bytes()
    for source in sources:
        assert leaked(source, data) == {}
    seg = read_seg(hidden)
    pixels = seg.get_pixels_by_source_instance(
        [_pseudonym(s.SOPInstanceUID) for s in sources], segment_numbers=[1, 2])
    np.testing.assert_array_equal(pixels.astype(bool),
                                  np.stack([planes(labels, k) for k in range(6)]))


def test_seg_of_an_enhanced_multiframe_ct_maps_frames_to_slices(tmp_path):
    path = get_testdata_file("eCT_Supplemental.dcm")
    study = open_study(path)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    labels = labels_for(study)
    seg = read_seg(write_dicom_seg(labels, study, tmp_path / "ect.dcm", keep_identity=True))
    normal = study.affine[:3, 2]
    for frame, item in enumerate(source.PerFrameFunctionalGroupsSequence):
        position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        k = int(round((position - study.affine[:3, 3]) @ normal / (normal @ normal)))
        pixels = seg.get_pixels_by_source_frame(source.SOPInstanceUID, [frame + 1],
                                                segment_numbers=[1, 2])
        np.testing.assert_array_equal(pixels[0].astype(bool), planes(labels, k))


def test_seg_of_an_empty_map_is_written(tmp_path, ct_small):
    study = open_study(ct_small)
    labels = labels_for(study)
    labels.labels[:] = 0
    seg = pydicom.dcmread(write_dicom_seg(labels, study, tmp_path / "empty.dcm"))
    assert int(seg.NumberOfFrames) >= 1 and len(seg.SegmentSequence) == 2


def test_seg_needs_a_dicom_study_and_a_map_that_fits(tmp_path, ct_small):
    nifti = open_study(NIBABEL_DATA / "anatomical.nii")
    with pytest.raises(StudyError, match="DICOM SEG needs a DICOM study") as caught:
        write_dicom_seg(labels_for(nifti), nifti, tmp_path / "x.dcm")
    assert "\n" not in str(caught.value)
    study = open_study(ct_small)
    wrong = LabelMap("wrong.nii", np.zeros((1, 64, 64), np.uint8), SEGMENTS, "NIfTI")
    with pytest.raises(StudyError, match="wrong.nii .* does not fit"):
        write_dicom_seg(wrong, study, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


# -- what a DICOM study keeps of its files ------------------------------------------------

def test_a_dicom_study_keeps_its_headers_in_slice_order_without_pixels(tmp_path, ct_small):
    single = open_study(ct_small)
    assert len(single.sources) == 1 and "PixelData" not in single.sources[0]
    assert single.sources[0].PatientName == pydicom.dcmread(ct_small).PatientName
    assert getattr(single.sources[0], "buffer", None) is None  # no file's bytes held
    assert "sources" not in repr(single)
    files = write_series(tmp_path / "series", slices=5, size=32)
    series = open_study(tmp_path / "series")
    numbers = [int(ds.InstanceNumber) for ds in series.sources]
    assert numbers == [int(pydicom.dcmread(f).InstanceNumber) for f in files]
    assert all("PixelData" not in ds for ds in series.sources)
    assert open_study(NIBABEL_DATA / "anatomical.nii").sources == ()


# -- PNG -----------------------------------------------------------------------------------

def test_png_holds_the_pixels_and_nothing_else(tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = write_png(picture, tmp_path / "overlay.png")
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(img), picture)
        assert img.info.get("dpi") is None and not getattr(img, "text", {})
    grey = write_png(picture[..., 0], tmp_path / "grey.png")
    with Image.open(grey) as img:
        np.testing.assert_array_equal(np.asarray(img), picture[..., 0])
    with pytest.raises(ValueError, match="uint8"):
        write_png(picture.astype(np.float32), tmp_path / "bad.png")
