"""Reading studies: real DICOM files from pydicom and pydicom-data, real sample images."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from core.studies import IDENTIFYING_KEYWORDS, StudyError, Window, apply_window, open_study
from tests.conftest import ROOT, dicom_file


def test_ct_is_in_hounsfield_units_as_pydicom_computes_them(ct_small):
    study = open_study(ct_small)
    ds = pydicom.dcmread(ct_small)
    assert (study.format, study.modality, study.units) == ("DICOM", "CT", "HU")
    assert study.shape == [128, 128] and study.frames == 1
    assert study.stored_dtype == "int16"
    np.testing.assert_array_equal(study.image(), apply_modality_lut(ds.pixel_array, ds))
    assert (study.image().min(), study.image().max()) == (-896.0, 1167.0)
    # CT_small has no window of its own: a percentile window is used, and said so.
    assert study.window.source.startswith("auto")


def test_file_window_matches_pydicom_voi(mr_small):
    study = open_study(mr_small)
    ds = pydicom.dcmread(mr_small)
    assert study.window == Window(float(ds.WindowCenter), float(ds.WindowWidth), "file")
    # pydicom keeps the stored bit range (signed if the pixels are): scale it to 8 bits.
    reference = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    low = -(2 ** (ds.BitsStored - 1)) if ds.PixelRepresentation else 0
    reference = (reference - low) / (2**ds.BitsStored - 1) * 255
    assert np.abs(study.display().astype(np.float64) - reference).max() <= 1.0


def test_linear_voi_function_edges():
    values = np.array([-1000.0, 39.5, 40.0, 239.0, 240.0, 3000.0])
    shown = apply_window(values, Window(center=40.0, width=400.0))
    assert shown[0] == 0 and shown[-1] == 255
    assert list(shown) == sorted(shown)
    # An 8-bit image through the full 8-bit window is unchanged.
    ramp = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(apply_window(ramp, Window(128.0, 256.0)), ramp)


def test_monochrome1_film_is_shown_inverted():
    path = dicom_file("RG1_UNCR.dcm")
    study = open_study(path)
    assert study.photometric == "MONOCHROME1" and study.modality == "CR"
    window = study.window
    expected = 255 - apply_window(study.image(), window)
    np.testing.assert_array_equal(study.display(), expected)


def test_compressed_syntaxes_decode():
    for name in ("JPGExtended.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm"):
        study = open_study(dicom_file(name))
        assert study.pixels.size > 0 and np.isfinite(study.pixels).all(), name


def test_identifying_tags_are_kept_apart(ct_small):
    study = open_study(ct_small)
    ds = pydicom.dcmread(ct_small)
    assert "PatientName" in study.identifying
    assert not set(study.metadata) & IDENTIFYING_KEYWORDS
    shown = " ".join(study.metadata.values())
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
        if keyword in ds and str(ds[keyword].value):
            assert str(ds[keyword].value) not in shown


def test_sample_images(brain_samples, chest_samples):
    brain = open_study(brain_samples[0].path)
    assert (brain.format, brain.photometric, brain.shape) == ("JPEG", "RGB", [512, 512])
    assert brain.is_colour and brain.window is None
    chest = open_study(chest_samples[0].path)
    assert chest.photometric == "MONOCHROME2" and not chest.is_colour
    assert chest.window.source == "full 8-bit range"
    np.testing.assert_array_equal(chest.display(), np.asarray(Image.open(chest_samples[0].path)))


def test_16_bit_png_keeps_its_values(ct_small, tmp_path):
    stored = pydicom.dcmread(ct_small).pixel_array.astype(np.int32) + 1024
    path = tmp_path / "ct16.png"
    Image.fromarray(stored.astype(np.uint16)).save(path)
    study = open_study(path)
    assert study.format == "PNG" and study.stored_dtype == "uint16"
    np.testing.assert_array_equal(study.image(), stored.astype(np.float32))
    assert study.display().dtype == np.uint8


def test_rgba_png_drops_alpha(brain_samples, tmp_path):
    rgba = Image.open(brain_samples[0].path).convert("RGBA")
    path = tmp_path / "rgba.png"
    rgba.save(path)
    study = open_study(path)
    assert study.pixels.shape == (1, 512, 512, 3)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A greyscale PNG whose header claims width x height, with the given compressed rows."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(pixels))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("empty.dcm", b"", "empty.dcm: the file is empty"),
        ("noise.bin", np.random.default_rng(0).bytes(4096),
         "noise.bin: not a DICOM, PNG, JPEG or NIfTI file"),
        ("bomb.png", _png(50_000, 50_000), "bomb.png: larger than the 100,000,000-pixel limit"),
        ("big.png", _png(12_000, 10_000), "big.png: 12000x10000 pixels, larger than the"),
    ],
)
def test_bad_bytes_give_one_line_naming_the_file(name, payload, message):
    with pytest.raises(StudyError) as caught:
        open_study(payload, name=name)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("JPEG-lossy.dcm", "JPEG-lossy.dcm: cannot decode the pixel data (JPEG Extended"),
        ("MR_truncated.dcm", "MR_truncated.dcm: cannot decode the pixel data"),
    ],
)
def test_undecodable_dicom_pixels(name, message):
    with pytest.raises(StudyError) as caught:
        open_study(dicom_file(name), name=name)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_truncated_image_files(chest_samples, brain_samples):
    for sample in (chest_samples[0], brain_samples[0]):
        data = sample.path.read_bytes()
        with pytest.raises(StudyError) as caught:
            open_study(data[: len(data) // 2], name=sample.name)
        assert str(caught.value).startswith(f"{sample.name}: cannot decode the image")


def test_wrong_extension_is_read_by_content(ct_small, tmp_path):
    renamed = tmp_path / "scan.png"
    renamed.write_bytes(ct_small.read_bytes())
    assert open_study(renamed).format == "DICOM"


def test_input_bytes_are_not_altered(ct_small):
    data = ct_small.read_bytes()
    before = bytes(data)
    open_study(data, name="CT_small.dcm").display()
    assert data == before


def test_reading_a_study_does_not_import_tensorflow(ct_small):
    code = (
        "import sys; from core.studies import open_study; from core.models.inputs import prepare;"
        "from core.models import card; s = open_study(sys.argv[1]);"
        "prepare(s, card('braintumor-xception').input_spec);"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ct_small)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_png_bytes_round_trip():
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format="PNG")
    study = open_study(buffer.getvalue(), name="ramp.png")
    np.testing.assert_array_equal(study.display(), np.arange(64).reshape(8, 8))


def test_identifying_attributes_follow_the_basic_profile(ct_small):
    ds = pydicom.dcmread(ct_small)
    study = open_study(ct_small)
    # Names, dates and instance UIDs are identifying; the SOP class is not.
    for keyword in ("PatientName", "PatientID", "StudyDate", "StudyInstanceUID",
                    "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        if keyword in ds and str(ds[keyword].value):
            assert study.identifying[keyword] == str(ds[keyword].value), keyword
    assert "SOPClassUID" not in study.identifying
    shown = " ".join(f"{k} {v}" for k, v in study.metadata.items())
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
        assert study.identifying[keyword] not in shown, keyword
