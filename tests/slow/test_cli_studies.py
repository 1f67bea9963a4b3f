"""`medlens studies info|export|render` and `--plane` for predict/explain, on real files.

Commands run in-process through `core.cli.main` (capsys), except where a fresh process
is the point (TensorFlow must not be imported) or a Keras model is loaded.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut

from core.cli import main
from core.studies import open_study
from core.studies.windows import Window, apply_window
from tests.conftest import ROOT, dicom_file
from tests.series import stored_slices, write_series

MEDLENS = str(Path(sys.executable).parent / "medlens")
NIFTI = Path(nibabel.__file__).parent / "tests" / "data"
SLICES, SIZE = 12, 128
SERIES_SPACING = 2.5  # write_series' default slice spacing, mm
CT_PIXEL = 0.661468  # CT_small.dcm PixelSpacing
SERIES_PIXEL = 0.478516  # 693_UNCR.dcm PixelSpacing, which the series keeps
IDENTIFYING = ("PatientName", "PatientID", "StudyInstanceUID")


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_naming(err: str, name: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("medlens"), err
    assert name in err and "Traceback" not in err, err


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kinds.append(data[at + 4:at + 8])
        at += 12 + length
    return kinds


def read_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    # Pixels only: no tEXt/zTXt/iTXt/eXIf chunk that could carry header data.
    assert set(png_chunks(data)) <= {b"IHDR", b"IDAT", b"IEND"}, png_chunks(data)
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "series"
    write_series(folder, slices=SLICES, size=SIZE)
    return folder


@pytest.fixture(scope="module")
def series_zip(series) -> Path:
    path = series.parent / "series.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(series.iterdir()):
            archive.write(file, f"series/{file.name}")
    return path


def series_hu() -> np.ndarray:
    source = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    stored = stored_slices(SLICES, SIZE).astype(np.float64)
    return stored * float(source.RescaleSlope) + float(source.RescaleIntercept)


# -- info -------------------------------------------------------------------------------

def info(capsys, *paths) -> tuple[int, list[dict], str]:
    code, out, err = cli(capsys, "studies", "info", *paths, "--json")
    return code, json.loads(out), err


def test_info_ct_slice(capsys, ct_small):
    code, (found,), err = info(capsys, ct_small)
    assert code == 0 and err == ""
    assert found["path"] == str(ct_small)
    assert (found["format"], found["modality"], found["dtype"], found["photometric"]) == (
        "DICOM", "CT", "int16", "MONOCHROME2")
    assert found["shape"] == [128, 128] and found["frames"] == 1 and found["slices"] == 1
    assert found["units"] == "HU" and found["spacing"] == [CT_PIXEL, CT_PIXEL]
    assert found["transfer_syntax"] == "Explicit VR Little Endian"
    assert found["samples_per_pixel"] == 1
    assert found["planes"] == [] and found["orientation"] is None
    assert found["window"]["width"] > 0 and found["window"]["source"].startswith("auto")


def test_info_multiframe(capsys):
    path = dicom_file("emri_small.dcm")
    code, (found,), _ = info(capsys, path)
    assert code == 0
    assert found["shape"] == [10, 64, 64] and found["frames"] == 10
    assert found["slices"] == 1  # a cine: frames without slice geometry
    assert found["modality"] == "MR" and found["samples_per_pixel"] == 1


def test_info_colour_samples_are_not_in_the_shape(capsys):
    code, (found,), _ = info(capsys, dicom_file("US1_UNCR.dcm"))
    assert code == 0
    assert found["shape"] == [480, 640] and found["frames"] == 1
    assert found["samples_per_pixel"] == 3 and found["photometric"] == "RGB"
    assert found["window"] is None


def test_info_series_folder_and_zip_are_one_study_each(capsys, series, series_zip):
    folder = f"{series}/"  # the path is reported exactly as given, slash included
    code, found, err = info(capsys, folder, series_zip)
    assert code == 0 and err == ""
    assert [f["path"] for f in found] == [folder, str(series_zip)]
    for f in found:
        assert f["format"] == "DICOM series" and f["modality"] == "CT"
        assert f["shape"] == [SLICES, SIZE, SIZE]
        assert f["slices"] == SLICES and f["frames"] == SLICES
        assert f["spacing"] == pytest.approx([SERIES_SPACING, SERIES_PIXEL, SERIES_PIXEL])
        assert f["planes"] == ["axial", "coronal", "sagittal"] and f["orientation"] == "axial"
        assert f["units"] == "HU"


@pytest.mark.parametrize(
    ("name", "shape", "note"),
    [("anatomical.nii", [25, 41, 33], None),
     ("example4d.nii.gz", [24, 96, 128], "4-D NIfTI: volume 1 of 2")],
)
def test_info_nifti(capsys, name, shape, note):
    path = NIFTI / name
    img = nibabel.load(path)
    code, (found,), _ = info(capsys, path)
    assert code == 0 and found["format"] == "NIfTI"
    assert found["shape"] == shape and found["slices"] == shape[0]
    i, j, k = (float(z) for z in img.header.get_zooms()[:3])
    assert found["spacing"] == pytest.approx([k, j, i], rel=1e-5)
    assert found["orientation"] == "axial"
    assert (note is None) == (found["notes"] == [])
    assert note is None or note in found["notes"][0]


def test_info_lists_good_studies_around_a_bad_one(capsys, ct_small, series_zip):
    code, found, err = info(capsys, ct_small, "/no/such.dcm", series_zip)
    assert code == 2
    assert [f["path"] for f in found] == [str(ct_small), "/no/such.dcm", str(series_zip)]
    assert found[0]["format"] == "DICOM" and found[2]["format"] == "DICOM series"
    assert found[1] == {"path": "/no/such.dcm", "error": "/no/such.dcm: no such file"}
    one_line_naming(err, "/no/such.dcm")


def test_info_text(capsys, ct_small, series):
    code, out, _ = cli(capsys, "studies", "info", ct_small, series)
    assert code == 0
    ct, volume = out.splitlines()
    assert ct.startswith(f"{ct_small}: DICOM CT 128x128 int16 MONOCHROME2") and "HU" in ct
    assert volume.startswith(f"{series}: DICOM series CT 12x128x128") and "axial volume" in volume


# -- export -----------------------------------------------------------------------------

def export(capsys, path, out: Path) -> np.ndarray:
    code, stdout, err = cli(capsys, "studies", "export", path, "--out", out)
    assert code == 0 and err == "", err
    assert str(out) in stdout
    values = np.load(out, allow_pickle=False)
    assert values.dtype == np.float32
    return values


def test_export_ct_is_pydicom_modality_lut(capsys, ct_small, tmp_path):
    values = export(capsys, ct_small, tmp_path / "ct.npy")
    ds = pydicom.dcmread(ct_small)
    assert values.shape == (1, 128, 128)
    np.testing.assert_array_equal(values[0], apply_modality_lut(ds.pixel_array, ds))


def test_export_multiframe_is_the_whole_cine(capsys, tmp_path):
    path = dicom_file("emri_small.dcm")
    values = export(capsys, path, tmp_path / "cine.npy")
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(values, apply_modality_lut(ds.pixel_array, ds))


def test_export_series_folder_and_zip(capsys, series, series_zip, tmp_path):
    expected = series_hu()
    for source in (series, series_zip):
        values = export(capsys, source, tmp_path / f"{source.name}.npy")
        assert values.shape == (SLICES, SIZE, SIZE)
        np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_export_nifti_is_nibabel_data_as_slices_rows_columns(capsys, name, tmp_path):
    img = nibabel.load(NIFTI / name)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]  # the volume the study shows (its note says so)
    values = export(capsys, NIFTI / name, tmp_path / "volume.npy")
    np.testing.assert_array_equal(values, np.transpose(data, (2, 1, 0)))


def test_export_writes_exactly_the_given_name(capsys, ct_small, tmp_path):
    out = tmp_path / "values"  # np.save(path) would have added .npy
    export(capsys, ct_small, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values"]


@pytest.mark.parametrize("command", ["export", "render"])
@pytest.mark.parametrize(
    ("out", "expected"),
    [("missing/x.out", "the folder"), (".", "is a folder")],
)
def test_out_must_be_a_file_in_an_existing_folder(capsys, ct_small, tmp_path, command,
                                                  out, expected):
    target = tmp_path / out
    code, stdout, err = cli(capsys, "studies", command, ct_small, "--out", target)
    assert code == 2 and stdout == ""
    one_line_naming(err, str(target))
    assert expected in err
    assert list(tmp_path.iterdir()) == []


# -- render -----------------------------------------------------------------------------

def render(capsys, path, out: Path, *args) -> np.ndarray:
    code, stdout, err = cli(capsys, "studies", "render", path, "--out", out, *args)
    assert code == 0 and err == "", err
    assert str(out) in stdout
    return read_png(out)


@pytest.fixture
def paths(ct_small, series, series_zip) -> dict[str, Path]:
    return {
        "ct": ct_small, "cine": dicom_file("emri_small.dcm"),
        "colour": dicom_file("US1_UNCR.dcm"), "series": series, "zip": series_zip,
        "nifti": NIFTI / "anatomical.nii", "nifti4d": NIFTI / "example4d.nii.gz",
    }


@pytest.mark.parametrize(
    ("key", "args", "index", "plane"),
    [
        ("ct", [], 0, None),
        ("cine", ["--frame", "7"], 7, None),
        ("cine", ["--slice", "7"], 7, None),
        ("colour", [], 0, None),
        ("series", [], SLICES // 2, "axial"),  # a volume opens at its middle slice
        ("series", ["--plane", "coronal", "--slice", "40"], 40, "coronal"),
        ("zip", ["--plane", "sagittal"], SIZE // 2, "sagittal"),
        ("nifti", ["--plane", "sagittal", "--frame", "10"], 10, "sagittal"),
        ("nifti4d", ["--plane", "coronal"], 48, "coronal"),
    ],
)
def test_render_is_the_viewer_image_bit_for_bit(capsys, paths, tmp_path, key, args, index,
                                                plane):
    picture = render(capsys, paths[key], tmp_path / "shown.png", *args)
    expected = open_study(paths[key]).display(index, None, plane)
    assert picture.dtype == np.uint8
    np.testing.assert_array_equal(picture, expected)


def test_render_window_is_the_voi_of_the_hounsfield_values(capsys, ct_small, tmp_path):
    ds = pydicom.dcmread(ct_small)
    hu = apply_modality_lut(ds.pixel_array, ds)
    picture = render(capsys, ct_small, tmp_path / "w.png", "--window", "40,80")
    np.testing.assert_array_equal(picture, apply_window(hu, Window(40.0, 80.0)))
    # A negative centre is a value, not an option.
    lung = render(capsys, ct_small, tmp_path / "lung.png", "--window", "-600,1500")
    np.testing.assert_array_equal(lung, apply_window(hu, Window(-600.0, 1500.0)))


def test_render_presets_by_name_or_short_form(capsys, ct_small, tmp_path):
    ds = pydicom.dcmread(ct_small)
    hu = apply_modality_lut(ds.pixel_array, ds)
    default = render(capsys, ct_small, tmp_path / "default.png")
    lung = render(capsys, ct_small, tmp_path / "lung.png", "--preset", "lung")
    assert not np.array_equal(lung, default)
    np.testing.assert_array_equal(lung, apply_window(hu, Window(-600.0, 1500.0)))
    named = render(capsys, ct_small, tmp_path / "named.png", "--preset", "ct LUNG")
    np.testing.assert_array_equal(named, lung)
    for short, (center, width) in {"brain": (40, 80), "bone": (400, 1800)}.items():
        picture = render(capsys, ct_small, tmp_path / f"{short}.png", "--preset", short)
        np.testing.assert_array_equal(picture, apply_window(hu, Window(center, width)))


def test_render_reformats_have_the_true_aspect(capsys, series, tmp_path):
    rows = round(SLICES * SERIES_SPACING / SERIES_PIXEL)
    for plane in ("coronal", "sagittal"):
        picture = render(capsys, series, tmp_path / f"{plane}.png", "--plane", plane)
        assert picture.shape == (rows, SIZE)
    assert render(capsys, series, tmp_path / "axial.png", "--plane", "axial").shape == (
        SIZE, SIZE)


def test_render_monochrome1_is_inverted(capsys, tmp_path):
    path = dicom_file("RG1_UNCR.dcm")
    study = open_study(path)
    assert study.photometric == "MONOCHROME1"
    picture = render(capsys, path, tmp_path / "film.png")
    np.testing.assert_array_equal(picture, 255 - apply_window(study.image(), study.window))


@pytest.mark.parametrize(
    ("key", "args", "expected"),
    [
        ("ct", ["--window", "40"], "--window 40: expected CENTER,WIDTH"),
        ("ct", ["--window", "a,b"], "--window a,b: expected CENTER,WIDTH"),
        ("ct", ["--window", "40,80,3"], "expected CENTER,WIDTH"),
        ("ct", ["--window", "40,0"], "the width must be greater than 0"),
        ("ct", ["--window", "40,-5"], "the width must be greater than 0"),
        ("ct", ["--window", "nan,80"], "must be finite"),
        ("ct", ["--window", "40,80", "--preset", "lung"],
         "argument --preset: not allowed with argument --window"),
        ("ct", ["--frame", "0", "--slice", "0"],
         "argument --slice: not allowed with argument --frame"),
        ("ct", ["--frame", "1"], "--frame 1 is out of range (0..0)"),
        ("ct", ["--frame", "-1"], "--frame -1 is out of range (0..0)"),
        ("cine", ["--frame", "10"], "--frame 10 is out of range (0..9)"),
        ("series", ["--slice", "12"], "--slice 12 is out of range of the axial plane (0..11)"),
        ("series", ["--plane", "coronal", "--slice", "128"],
         "--slice 128 is out of range of the coronal plane (0..127)"),
        ("ct", ["--plane", "coronal"], "--plane coronal: not a volume (a single image)"),
        ("ct", ["--plane", "axial"], "--plane axial: not a volume (a single image)"),
        ("cine", ["--plane", "sagittal"], "not a volume (10 frames without slice geometry)"),
        ("ct", ["--plane", "oblique"], "argument --plane: invalid choice: 'oblique'"),
        ("ct", ["--preset", "spleen"], "unknown --preset 'spleen' (presets: 'CT brain';"),
        ("nifti", ["--preset", "lung"], "unknown --preset 'lung' (presets: 'Auto"),
        ("ct", ["--preset", "soft tissue"], "--preset 'soft tissue' is ambiguous"),
        ("colour", ["--preset", "auto"], "a colour image has no windows"),
        ("colour", ["--window", "40,80"], "a colour image is shown as stored"),
    ],
)
def test_render_refuses_bad_arguments(capsys, paths, tmp_path, key, args, expected):
    out = tmp_path / "x.png"
    code, stdout, err = cli(capsys, "studies", "render", paths[key], "--out", out, *args)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and expected in err, err
    # A malformed option is named by the option; anything found on reading, by the file.
    if not err.startswith(("medlens studies render: argument", "medlens: --window")):
        one_line_naming(err, str(paths[key]))
    assert not out.exists()


def test_unknown_preset_lists_every_valid_one(capsys, ct_small, tmp_path):
    code, _, err = cli(capsys, "studies", "render", ct_small, "--out", tmp_path / "x.png",
                       "--preset", "spleen")
    assert code == 2
    for name in open_study(ct_small).presets():
        assert f"'{name}'" in err


# -- bad input, for every command -------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A greyscale PNG that claims width x height (tests/test_study.py::_png)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


def _many_entries(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(5000):
            archive.writestr(f"IM{i:05d}", b"x")


def _evil_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.dcm", dicom_file("CT_small.dcm").read_bytes())
        archive.writestr("../evil.dcm", dicom_file("CT_small.dcm").read_bytes())


_ZEROS = gzip.compress(bytes(64 * 1024**2), compresslevel=1)  # 64 MB in 64 KB


def _zeros_bomb(path: Path) -> None:
    """2.5 GB of zeros in 2.5 MB of gzip."""
    path.write_bytes(_ZEROS * 40)


def _nifti_bomb(path: Path) -> None:
    """A real NIfTI, then 2.5 GB of zeros: more than its header declares."""
    nifti = (Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii").read_bytes()
    path.write_bytes(gzip.compress(nifti) + _ZEROS * 40)


BAD_FILES = {
    "empty.dcm": (lambda p: p.write_bytes(b""), "the file is empty"),
    "noise.bin": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
                  "not a DICOM, PNG, JPEG or NIfTI file"),
    "MR_truncated.dcm": (None, "cannot decode the pixel data"),
    "JPEG-lossy.dcm": (None, "cannot decode the pixel data (JPEG Extended"),
    "liver.dcm": (None, "a DICOM Segmentation (SEG) of 3 frame(s), segments: Liver"),
    "reportsi.dcm": (None, "a DICOM object without pixel data (Basic Text SR Storage)"),
    "bomb.png": (lambda p: p.write_bytes(_png_header(50_000, 50_000)),
                 "larger than the 100,000,000-pixel limit"),
    "many.zip": (_many_entries, "5,000 files, more than the 1,000-file limit"),
    "evil.zip": (_evil_zip, "unsafe path '../evil.dcm' in the zip"),
    "zeros.nii.gz": (_zeros_bomb, "a gzip file holding neither NIfTI nor DICOM"),
    "bomb.nii.gz": (_nifti_bomb, "decompresses to more than"),
}

COMMANDS = {
    "info": lambda path, out: ["studies", "info", path],
    "info-json": lambda path, out: ["studies", "info", path, "--json"],
    "export": lambda path, out: ["studies", "export", path, "--out", out / "x.npy"],
    "render": lambda path, out: ["studies", "render", path, "--out", out / "x.png"],
    # A study is read before any model is loaded: these stay fast and TF-free.
    "predict": lambda path, out: ["predict", "--model", "braintumor-vgg16", path],
    "explain": lambda path, out: ["explain", "--model", "braintumor-xception", "--method",
                                  "gradcam", path, "--out", out / "maps"],
    "inside": lambda path, out: ["inside", "--model", "braintumor-xception", path,
                                 "--layer", "block1_conv1", "--out", out / "maps"],
}


def bad_file(name: str, folder: Path) -> Path:
    make, _ = BAD_FILES[name]
    if make is None:
        return dicom_file(name)
    path = folder / name
    make(path)
    return path


# `studies info` describes a SEG (test_info_on_dicom_seg); every other command refuses it.
BAD_CASES = [(name, command) for name in BAD_FILES for command in COMMANDS
             if not (name == "liver.dcm" and command.startswith("info"))]


@pytest.mark.parametrize(("name", "command"), BAD_CASES)
def test_bad_files_exit_2_with_one_line_naming_the_file(capsys, tmp_path, name, command):
    (tmp_path / "in").mkdir()
    path = bad_file(name, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = cli(capsys, *COMMANDS[command](path, out))
    assert code == 2
    one_line_naming(err, f"medlens: {path}: ")
    assert BAD_FILES[name][1] in err, err
    assert list(out.iterdir()) == []
    if command == "info-json":
        assert json.loads(stdout) == [{"path": str(path), "error": err[len("medlens: "):-1]}]
    elif command != "info":
        assert stdout == ""


@pytest.mark.parametrize("name", ["liver.dcm", "liver_expb_1frame.dcm"])
def test_info_on_dicom_seg(capsys, name):
    """A DICOM SEG is a label map: `studies info` lists its segments and their frames."""
    path = dicom_file(name)
    frames = int(pydicom.dcmread(path).get("NumberOfFrames") or 1)
    code, out, err = cli(capsys, "studies", "info", path, "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == [{
        "path": str(path), "format": "dicom-seg", "segmentation_type": "BINARY",
        "frames": frames, "rows": 512, "columns": 512,
        "segments": [{"number": 1, "label": "Liver", "colour": [221, 130, 101],
                      "frames": frames}]}]
    code, out, err = cli(capsys, "studies", "info", path)
    assert code == 0 and err == ""
    assert out == (f"{path}: DICOM SEG BINARY {frames} frame(s) of 512x512; segments: "
                   f"1 Liver rgb(221,130,101) in {frames} frame(s)\n")
    # Any other command still reads it as a study, and says to open it as a mask.
    code, out, err = cli(capsys, "studies", "render", path, "--out", "x.png")
    assert code == 2
    one_line_naming(err, f"medlens: {path}: ")
    assert "a label map: open it as a mask over its study" in err


def test_files_that_must_work(capsys, ct_small, tmp_path, brain_samples):
    """A DICOM named .png, a 16-bit PNG and an RGBA PNG are read by content."""
    renamed = tmp_path / "scan.png"
    renamed.write_bytes(ct_small.read_bytes())
    stored = pydicom.dcmread(ct_small).pixel_array.astype(np.int32) + 1024
    sixteen = tmp_path / "ct16.png"
    Image.fromarray(stored.astype(np.uint16)).save(sixteen)
    rgba = tmp_path / "rgba.png"
    Image.open(brain_samples[0].path).convert("RGBA").save(rgba)

    code, found, err = info(capsys, renamed, sixteen, rgba)
    assert code == 0 and err == ""
    assert [f["format"] for f in found] == ["DICOM", "PNG", "PNG"]
    assert found[1]["dtype"] == "uint16" and found[1]["shape"] == [128, 128]
    assert found[2]["samples_per_pixel"] == 3 and found[2]["notes"] == ["alpha channel dropped"]

    np.testing.assert_array_equal(export(capsys, sixteen, tmp_path / "16.npy")[0], stored)
    shown = render(capsys, rgba, tmp_path / "rgba-shown.png")
    assert shown.shape == (512, 512, 3)
    np.testing.assert_array_equal(shown, open_study(rgba).display())
    np.testing.assert_array_equal(render(capsys, renamed, tmp_path / "dcm.png"),
                                  open_study(ct_small).display())


# -- predict and explain on any 2-D image of a study ------------------------------------

def test_predict_on_a_reformat_is_the_model_on_that_image(capsys, series):
    from core import models
    from core.models.inputs import prepare

    code, out, err = cli(capsys, "predict", "--model", "braintumor-vgg16", series,
                         "--plane", "sagittal", "--slice", "40", "--json")
    assert code == 0 and err == ""
    (result,) = json.loads(out)
    c = models.card("braintumor-vgg16")
    expected = models.load(c.id).predict(
        prepare(open_study(series), c.input_spec, frame=40, plane="sagittal"))
    assert result["label"] == expected.label
    assert result["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    code, out, _ = cli(capsys, "predict", "--model", "braintumor-vgg16", series,
                       "--plane", "sagittal", "--frame", "40", "--json")
    assert json.loads(out) == [result]


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--plane", "coronal"], "--plane coronal: not a volume"),
     (["--slice", "1"], "--slice 1 is out of range (0..0)"),
     (["--frame", "0", "--slice", "0"], "not allowed with argument --frame")],
)
def test_predict_refuses_a_bad_image_choice_before_loading(capsys, ct_small, args, expected):
    code, out, err = cli(capsys, "predict", "--model", "braintumor-vgg16", ct_small, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and expected in err


def test_explain_overlay_is_on_the_viewer_image_of_the_plane(series, tmp_path):
    from core.explain.overlay import overlay

    run = subprocess.run([MEDLENS, "explain", "--model", "braintumor-xception", "--method",
                          "gradcam", str(series), "--plane", "coronal", "--slice", "70",
                          "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    shown = open_study(series).display(70, None, "coronal")
    heatmap = np.load(tmp_path / "series.gradcam.npy")
    assert heatmap.shape == shown.shape  # true aspect: 63 x 128, not 12 x 128
    picture = read_png(tmp_path / "series.gradcam.png")
    np.testing.assert_array_equal(picture, overlay(shown, heatmap, 0.4, "jet"))
    assert_no_identifying_bytes(next(series.iterdir()), [
        tmp_path / "series.gradcam.npy", tmp_path / "series.gradcam.png"])


# -- what is written, what is imported --------------------------------------------------

def assert_no_identifying_bytes(source: Path, written: list[Path], text: str = "") -> None:
    ds = pydicom.dcmread(source)
    values = [str(ds[k].value) for k in IDENTIFYING if k in ds and str(ds[k].value)]
    assert len(values) == len(IDENTIFYING)  # the check means something
    for value in values:
        for path in written:
            assert value.encode() not in path.read_bytes(), (value, path)
        assert value not in text


def test_nothing_written_holds_identifying_data(capsys, ct_small, series, tmp_path):
    written = []
    for source, stem in ((ct_small, "ct"), (series, "series")):
        export(capsys, source, tmp_path / f"{stem}.npy")
        render(capsys, source, tmp_path / f"{stem}.png")
        written += [tmp_path / f"{stem}.npy", tmp_path / f"{stem}.png"]
    _, out, _ = cli(capsys, "studies", "info", ct_small, series, "--json")
    assert_no_identifying_bytes(ct_small, written[:2], out)
    assert_no_identifying_bytes(next(series.iterdir()), written[2:], out)


def test_studies_commands_do_not_import_tensorflow(ct_small, series_zip, tmp_path):
    code = (
        "import sys; from core.cli import main; out = sys.argv[3];"
        "codes = [main(['studies', 'info', sys.argv[1], sys.argv[2], '--json']),"
        " main(['studies', 'export', sys.argv[2], '--out', out + '/v.npy']),"
        " main(['studies', 'render', sys.argv[2], '--plane', 'coronal', '--preset', 'lung',"
        "       '--out', out + '/c.png']),"
        " main(['studies', 'render', sys.argv[1], '--window', '40,80', '--out', out + '/w.png'])];"
        "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules, file=sys.stderr)"
    )
    run = subprocess.run([sys.executable, "-c", code, str(ct_small), str(series_zip),
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.split() == ["[0,", "0,", "0,", "0]", "False", "False"]


def test_library_warnings_do_not_reach_stderr(tmp_path):
    """numpy warns (two lines) when nibabel's complex voxels are cast to real numbers."""
    path = tmp_path / "complex.nii"
    path.write_bytes(nibabel.Nifti1Image(np.ones((4, 4, 3), np.complex64), np.eye(4)).to_bytes())
    run = subprocess.run([MEDLENS, "studies", "info", str(path)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode in (0, 2) and run.stderr.count("\n") <= 1, run.stderr
    assert "Warning" not in run.stderr
