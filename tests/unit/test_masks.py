"""Label maps (core.studies.masks) on real files: pydicom's liver DICOM SEGs, nibabel's
NIfTI brains with masks made from them, a real DICOM series, PNGs written here."""

from __future__ import annotations

import io
import random
from pathlib import Path

import highdicom as hd
import nibabel
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes

from core.studies import StudyError, open_study
from core.studies.masks import (
    DEFAULT_COLOURS,
    LabelMap,
    Segment,
    default_colour,
    draw,
    fit,
    from_views,
    read_labels,
)
from core.studies.study import PLANES
from tests.conftest import dicom_file
from tests.series import write_series

NIFTI = Path(nibabel.__file__).parent / "tests" / "data"
LIVER = (221, 130, 101)  # RecommendedDisplayCIELabValue [41661, 41167, 40792] as RGB
SEGS = ("liver.dcm", "liver_expb.dcm", "liver_1frame.dcm", "liver_expb_1frame.dcm")


def one_line(exc: pytest.ExceptionInfo, name: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{name}: "), text
    return text


# -- DICOM SEG ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SEGS)
def test_liver_segs_open_with_their_segment_colour_and_geometry(name):
    labels = read_labels(dicom_file(name), name=name)
    ds = pydicom.dcmread(dicom_file(name))
    frames = int(ds.get("NumberOfFrames") or 1)
    assert labels.source == "DICOM SEG"
    assert labels.segments == (Segment(1, "Liver", LIVER),)
    assert labels.labels.shape == (frames, 512, 512) and labels.labels.dtype == np.uint8
    assert labels.pixel_spacing == pytest.approx((0.810547, 0.810547))
    assert labels.slice_spacing == pytest.approx(1.0)
    # Slices ascend along the normal (+z here), frame 0 lying at z = -128.69 mm, as
    # core.studies.dicom orders a series: each slice is the frame at its position.
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
         for f in ds.PerFrameFunctionalGroupsSequence][:frames]  # 1frame: 3 groups
    assert labels.affine[:3, 3] == pytest.approx([-235.2, -226.8, min(z)])
    assert labels.affine[:3, 2] == pytest.approx([0, 0, 1])
    stored = ds.pixel_array.reshape(frames, 512, 512)
    np.testing.assert_array_equal(labels.labels, stored[np.argsort(z)])
    voxel_ml = 0.810547**2 * 1.0 / 1000
    assert labels.volumes_ml() == pytest.approx(
        {"Liver": np.count_nonzero(stored) * voxel_ml})
    assert labels.segment("liver") is labels.segments[0] and labels.segment(1).name == "Liver"


def test_big_endian_seg_reads_as_its_little_endian_twin():
    little = read_labels(dicom_file("liver.dcm"))
    big = read_labels(dicom_file("liver_expb.dcm"))
    np.testing.assert_array_equal(little.labels, big.labels)
    np.testing.assert_allclose(little.affine, big.affine)


def test_one_frame_seg_is_the_first_slice_of_the_three():
    three = read_labels(dicom_file("liver.dcm")).labels
    one = read_labels(dicom_file("liver_1frame.dcm")).labels
    np.testing.assert_array_equal(one[0], three[0])
    assert not np.array_equal(one[0], three[1])


def test_seg_that_does_not_fit_the_study_names_both():
    labels = read_labels(dicom_file("liver.dcm"), name="liver_seg.dcm")
    study = open_study(dicom_file("CT_small.dcm"), name="CT_small.dcm")
    with pytest.raises(StudyError) as exc:
        fit(labels, study)
    assert one_line(exc, "liver_seg.dcm") == (
        "liver_seg.dcm: 3 slices of 512x512 do not fit CT_small.dcm (1 image of 128x128)")


def test_opening_a_seg_as_a_study_says_to_open_it_as_a_mask():
    with pytest.raises(StudyError, match=r"^liver\.dcm: a DICOM Segmentation \(SEG\) of 3 "
                       r"frame\(s\), segments: Liver; a label map: open it as a mask"):
        open_study(dicom_file("liver.dcm"), name="liver.dcm")


def test_a_dicom_image_is_not_a_label_map():
    with pytest.raises(StudyError, match=r"^ct\.dcm: a DICOM CT Image Storage object, not a "
                       r"label map"):
        read_labels(dicom_file("CT_small.dcm"), name="ct.dcm")


def _fractional_seg(tmp_path: Path) -> tuple[Path, np.ndarray, int]:
    """A FRACTIONAL SEG over the real CT_small.dcm, written with highdicom: two
    overlapping segments of probabilities."""
    source = pydicom.dcmread(dicom_file("CT_small.dcm"))
    rows, cols = np.mgrid[0:128, 0:128]
    first = np.clip(1 - np.hypot(rows - 50, cols - 50) / 40, 0, 1)  # 0.5 within 20 px
    second = np.clip(1 - np.hypot(rows - 70, cols - 70) / 40, 0, 1)
    array = np.stack([first, second], axis=-1)[None].astype(np.float32)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=label,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Bone,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            display_color=hd.color.CIELabColor.from_rgb(*rgb))
        for n, label, rgb in ((1, "first", (0, 200, 0)), (2, "second", (0, 0, 255)))]
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=array,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="MedLens tests",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    path = tmp_path / "fractional.dcm"
    seg.save_as(path)
    expected = np.where(second >= 0.5, 2, np.where(first >= 0.5, 1, 0))
    return path, expected, int(np.count_nonzero((first >= 0.5) & (second >= 0.5)))


def test_fractional_seg_is_thresholded_and_overlaps_are_counted(tmp_path):
    path, expected, overlap = _fractional_seg(tmp_path)
    labels = read_labels(path, name="fractional.dcm")
    assert [(s.number, s.name) for s in labels.segments] == [(1, "first"), (2, "second")]
    assert labels.segments[0].colour == pytest.approx((0, 200, 0), abs=2)
    np.testing.assert_array_equal(labels.labels[0], expected)
    assert any("FRACTIONAL (probability)" in n and "0.5" in n for n in labels.notes)
    assert overlap > 0
    assert f"{overlap:,} voxels belong to more than one segment: the later segment is " \
        "kept" in labels.notes
    # It belongs to CT_small.dcm: same grid, same pixel spacing.
    study = open_study(dicom_file("CT_small.dcm"), name="CT_small.dcm")
    fitted = fit(labels, study)
    np.testing.assert_array_equal(fitted.view(0), expected)


def test_a_seg_declaring_too_many_frames_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(dicom_file("liver.dcm"))
    ds.NumberOfFrames = 2_000
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    with pytest.raises(StudyError) as exc:
        read_labels(path, name="huge.dcm")
    assert "larger than the" in one_line(exc, "huge.dcm")


def test_memory_budget_applies_to_label_maps(monkeypatch):
    monkeypatch.setenv("MEDLENS_STUDY_MEMORY_MB", "5")
    with pytest.raises(StudyError) as exc:
        read_labels(dicom_file("liver.dcm"), name="liver.dcm")
    assert "MB a study may use" in one_line(exc, "liver.dcm")


# -- NIfTI ----------------------------------------------------------------------------------

def _brain_mask() -> tuple[nibabel.Nifti1Image, np.ndarray]:
    """anatomical.nii and a 3-label mask made from its intensities, on its grid."""
    img = nibabel.load(NIFTI / "anatomical.nii")
    data = np.asarray(img.dataobj, dtype=np.float32)
    low, high = np.percentile(data, [50, 85])
    mask = (data > low).astype(np.uint8) + (data > high).astype(np.uint8)
    return img, mask


def _save(mask: np.ndarray, affine: np.ndarray, path: Path, dtype=np.uint8) -> Path:
    nibabel.save(nibabel.Nifti1Image(mask.astype(dtype), affine), path)
    return path


def test_nifti_mask_pairs_with_its_t1_voxel_for_voxel_in_every_plane(tmp_path):
    img, mask = _brain_mask()
    study = open_study(NIFTI / "anatomical.nii", name="anatomical.nii")
    labels = read_labels(_save(mask, img.affine, tmp_path / "m.nii.gz"), name="m.nii.gz")
    assert labels.source == "NIfTI" and [s.number for s in labels.segments] == [1, 2]
    assert labels.segments[0].colour == DEFAULT_COLOURS[0]
    labels = fit(labels, study)
    low, high = np.percentile(np.asarray(img.dataobj, dtype=np.float32), [50, 85])
    for plane in PLANES:
        assert labels.count(plane) == study.count(plane)
        for index in range(0, study.count(plane), 5):
            values = study.view(index, plane).values
            expected = (values > low).astype(np.uint8) + (values > high)
            np.testing.assert_array_equal(labels.view(index, plane), expected)
    voxel_ml = 8 / 1000  # 2 mm isotropic
    assert labels.volumes_ml()["label 2"] == pytest.approx(np.sum(mask == 2) * voxel_ml)


def test_mask_stored_in_another_axis_order_is_reordered_to_the_study(tmp_path):
    img, mask = _brain_mask()
    study = open_study(NIFTI / "anatomical.nii", name="anatomical.nii")
    # The same voxels stored flipped along i and with j and k swapped (a LAS-like layout
    # another tool may write): the affine says where each lies.
    ornt = np.array([[0, -1], [2, 1], [1, 1]])  # i flipped, j and k swapped
    flipped = nibabel.orientations.apply_orientation(mask, ornt)
    transform = nibabel.orientations.inv_ornt_aff(ornt, mask.shape)
    path = _save(flipped, img.affine @ transform, tmp_path / "other.nii")
    other = read_labels(path, name="other.nii")
    assert other.labels.shape != study.pixels.shape
    fitted = fit(other, study)
    direct = fit(read_labels(_save(mask, img.affine, tmp_path / "m.nii"), name="m"), study)
    np.testing.assert_array_equal(fitted.labels, direct.labels)
    assert "reordered to the study's axes" in fitted.notes


def test_mask_one_voxel_off_or_of_another_spacing_is_refused(tmp_path):
    img, mask = _brain_mask()
    study = open_study(NIFTI / "anatomical.nii", name="anatomical.nii")
    shifted = img.affine.copy()
    shifted[0, 3] += 2.0  # one voxel along x
    with pytest.raises(StudyError) as exc:
        fit(read_labels(_save(mask, shifted, tmp_path / "s.nii"), name="s.nii"), study)
    assert one_line(exc, "s.nii").endswith("2 mm away do not fit anatomical.nii "
                                           "(25 slices of 33x41)")
    finer = img.affine @ np.diag([1.01, 1, 1, 1])
    with pytest.raises(StudyError, match=r"^f\.nii: .*other voxel axes.*anatomical\.nii"):
        fit(read_labels(_save(mask, finer, tmp_path / "f.nii"), name="f.nii"), study)
    with pytest.raises(StudyError, match=r"^c\.nii: 24 slices of 33x41 do not fit"):
        fit(read_labels(_save(mask[:, :, 1:], img.affine, tmp_path / "c.nii"), name="c.nii"),
            study)


def test_float_nifti_with_whole_values_is_read_and_fractions_are_refused(tmp_path):
    img, mask = _brain_mask()
    whole = read_labels(_save(mask, img.affine, tmp_path / "w.nii", np.float32), name="w")
    assert whole.labels.dtype == np.uint8 and whole.labels.max() == 2
    fractions = mask.astype(np.float32) * 0.5
    with pytest.raises(StudyError, match=r"^p\.nii: non-integer values \(e\.g\. 0\.5\): a "
                       r"probability map"):
        read_labels(_save(fractions, img.affine, tmp_path / "p.nii", np.float32),
                    name="p.nii")
    with pytest.raises(StudyError, match=r"^n\.nii: negative values"):
        read_labels(_save(-mask.astype(np.int16), img.affine, tmp_path / "n.nii", np.int16),
                    name="n.nii")


# -- from_views: the inverse of view --------------------------------------------------------

def _round_trip(study) -> None:
    rng = np.random.default_rng(0)
    labels = LabelMap("m", rng.integers(0, 4, study.pixels.shape[:3], dtype=np.uint8),
                      tuple(Segment(k, f"s{k}", default_colour(k)) for k in (1, 2, 3)),
                      "test", study.affine, study.pixel_spacing, study.slice_spacing)
    for plane in PLANES:
        views = np.stack([labels.view(i, plane) for i in range(labels.count(plane))])
        assert views.shape[1:] == study.view(0, plane).values.shape
        back = from_views(study, plane, views, labels.segments, "back")
        np.testing.assert_array_equal(back.labels, labels.labels)
        assert back.source == "model"


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_from_views_inverts_view_in_every_plane_on_nifti(name):
    _round_trip(open_study(NIFTI / name, name=name))  # example4d is oblique


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_from_views_inverts_view_on_a_dicom_series(tmp_path, orientation):
    write_series(tmp_path / "s", slices=6, size=32, orientation=orientation)
    study = open_study(tmp_path / "s")
    assert study.is_volume and study.acquired_plane == orientation
    _round_trip(study)


def test_from_views_refuses_the_wrong_shape():
    study = open_study(NIFTI / "anatomical.nii")
    with pytest.raises(ValueError, match="views of"):
        from_views(study, "axial", np.zeros((3, 4, 5), np.uint8), (), "x")


# -- PNG ----------------------------------------------------------------------------------

def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def test_png_grey_values_are_labels_and_0_255_is_label_1():
    grey = np.zeros((20, 30), np.uint8)
    grey[2:8, 3:9], grey[10:15, 10:20] = 1, 3
    labels = read_labels(None, data=_png(grey), name="grey.png")
    assert labels.source == "PNG" and [s.number for s in labels.segments] == [1, 3]
    np.testing.assert_array_equal(labels.labels[0], grey)
    binary = read_labels(None, data=_png((grey > 0).astype(np.uint8) * 255), name="b.png")
    np.testing.assert_array_equal(binary.labels[0], (grey > 0).astype(np.uint8))
    assert binary.notes and "255 read as label 1" in binary.notes[0]
    # The same size of picture: it fits; another size does not.
    study = open_study(_png(np.full((20, 30), 128, np.uint8)), name="picture.png")
    np.testing.assert_array_equal(fit(labels, study).view(0), grey)
    other = open_study(_png(np.zeros((21, 30), np.uint8)), name="other.png")
    with pytest.raises(StudyError, match=r"^grey\.png: 1 image of 30x20 do not fit "
                       r"other\.png \(1 image of 30x21\)$"):
        fit(labels, other)


def test_rgb_png_is_refused_unless_its_channels_are_equal():
    grey = np.zeros((10, 10), np.uint8)
    grey[2:5, 2:5] = 2
    same = read_labels(None, data=_png(np.stack([grey] * 3, axis=-1)), name="same.png")
    np.testing.assert_array_equal(same.labels[0], grey)
    colour = np.stack([grey, grey * 0, grey], axis=-1)
    with pytest.raises(StudyError, match=r"^c\.png: a colour picture"):
        read_labels(None, data=_png(colour), name="c.png")
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, format="JPEG")
    with pytest.raises(StudyError, match=r"^m\.jpg: a JPEG"):
        read_labels(None, data=jpeg.getvalue(), name="m.jpg")


def test_other_inputs_are_one_line(tmp_path):
    for data, name, words in ((b"", "e.nii", "the file is empty"),
                              (b"PK\x03\x04" + bytes(40), "z.zip", "a zip archive"),
                              (b"hello" * 100, "t.txt", "not a DICOM, PNG, JPEG or NIfTI")):
        with pytest.raises(StudyError) as exc:
            read_labels(None, data=data, name=name)
        assert words in one_line(exc, name)
    with pytest.raises(StudyError, match=r"no such file"):
        read_labels(tmp_path / "missing.nii")


# -- drawing --------------------------------------------------------------------------------

def test_draw_fills_and_outlines_each_visible_segment_in_its_colour():
    picture = np.full((40, 40), 100, np.uint8)
    labels = np.zeros((40, 40), np.uint8)
    labels[10:30, 10:30], labels[0:5, 0:5] = 1, 2
    segments = (Segment(1, "a", (255, 0, 0)), Segment(2, "b", (0, 0, 255)))
    out = draw(picture, labels, segments)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[20, 20], [178, 50, 50])  # 100 * 0.5 + 255 * 0.5
    np.testing.assert_array_equal(out[10, 20], [255, 0, 0])  # outline, opacity 1
    np.testing.assert_array_equal(out[11, 20], [255, 0, 0])  # 2 px wide
    np.testing.assert_array_equal(out[12, 20], [178, 50, 50])
    np.testing.assert_array_equal(out[9, 20], [100, 100, 100])  # outside: untouched
    hidden = draw(picture, labels, segments, visible={"b"})
    np.testing.assert_array_equal(hidden[20, 20], [100, 100, 100])
    assert tuple(hidden[4, 4]) == (0, 0, 255)  # on segment b's outline
    none = draw(picture, labels, segments, fill=0.0, outline=0.0)
    np.testing.assert_array_equal(none, np.repeat(picture[..., None], 3, axis=2))


def test_draw_resizes_labels_nearest_to_the_true_aspect_picture():
    study_picture = np.zeros((40, 20, 3), np.uint8)  # rows at twice the column spacing
    labels = np.zeros((20, 20), np.uint8)
    labels[5:10, :] = 1
    out = draw(study_picture, labels, (Segment(1, "a", (0, 255, 0)),), spacing=(2.0, 1.0),
               outline=0.5, width=1)
    painted = np.flatnonzero(out[:, 10, 1])
    assert painted.tolist() == list(range(10, 20))  # rows 5..9 of 20 -> 10..19 of 40
    with pytest.raises(ValueError, match="does not show"):
        draw(study_picture, labels, (), spacing=(1.0, 1.0))


def test_default_colours_are_distinct_and_cycle():
    assert len(set(DEFAULT_COLOURS)) == len(DEFAULT_COLOURS)
    assert default_colour(1) == DEFAULT_COLOURS[0]
    assert default_colour(len(DEFAULT_COLOURS) + 1) == DEFAULT_COLOURS[0]


# -- hostile input --------------------------------------------------------------------------

def _mutations(data: bytes, count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(mutated))
            if rng.random() < 0.7:
                mutated[at] = rng.randrange(256)
            else:  # cut the file short
                del mutated[at:]
                break
        yield bytes(mutated)


@pytest.mark.parametrize("source", ["seg", "nifti"])
def test_mutated_label_files_give_a_label_map_or_one_line(tmp_path, source):
    if source == "seg":
        data = dicom_file("liver_1frame.dcm").read_bytes()
    else:
        img, mask = _brain_mask()
        data = _save(mask, img.affine, tmp_path / "m.nii").read_bytes()
    outcomes = {"map": 0, "error": 0}
    for mutated in _mutations(data, 60, seed=1):
        try:
            labels = read_labels(None, data=mutated, name="fuzz")
        except StudyError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("fuzz: "), str(exc)
            outcomes["error"] += 1
        else:
            assert labels.labels.ndim == 3
            outcomes["map"] += 1
    assert outcomes["map"] and outcomes["error"], outcomes
