"""The `medlens` command: its JSON shapes, its files, and bad input (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import medlens, medlens_process
from tests.conftest import dicom_file


def test_models_list():
    run = medlens_process("models", "list", "--json")
    assert run.returncode == 0 and run.stderr == ""
    found = json.loads(run.stdout)
    assert [c["id"] for c in found] == ["brain-tissue-unet", "braintumor-vgg16",
                                        "braintumor-xception", "head-ct-unet",
                                        "pneumonia-xception", "skinlesion-xception"]
    for c in found:
        assert {"id", "task", "purpose", "labels", "input_shape", "architecture", "source",
                "license"} <= set(c)
        assert c["task"] == ("segmentation" if c["id"].endswith("-unet") else "classification")


def test_samples_export_layout(exported):
    files = sorted(p.relative_to(exported) for p in exported.rglob("*") if p.is_file())
    # The labelled images, and each segmentation volume with its ground truth.
    assert len(files) == 17 + 16 + 17 + 2 * 2 + 1  # Colin27 has no ground truth
    assert Path("head-ct-unet/cranium-ct.nii.gz") in files
    assert Path("brain-tissue-unet/mni152-t1.truth.nii.gz") in files
    assert Path("braintumor-xception/glioma/Te-gl_0010.jpg") in files
    assert Path("pneumonia-xception/PNEUMONIA/person1946_bacteria_4874.jpeg") in files
    assert Path("braintumor-vgg16/pituitary/Te-pi_0016.jpg") in files


def test_predict_json(exported):
    paths = sorted(str(p) for p in (exported / "pneumonia-xception").rglob("*.jpeg"))[:3]
    run = medlens("predict", "--model", "pneumonia-xception", *paths, "--json")
    assert run.returncode == 0 and run.stderr == ""
    results = json.loads(run.stdout)
    assert [r["path"] for r in results] == paths
    for r in results:
        assert set(r) == {"path", "label", "probabilities", "runtime", "domain"}
        assert r["runtime"] == "keras"
        assert set(r["probabilities"]) == {"NORMAL", "PNEUMONIA"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_explain_writes_map_and_overlay(exported, tmp_path):
    path = exported / "braintumor-xception" / "meningioma" / "Te-me_0016.jpg"
    run = medlens_process("explain", "--model", "braintumor-xception", "--method", "gradcam++",
                  str(path), "--out", str(tmp_path), "--json")
    assert run.returncode == 0 and run.stderr == ""
    result = json.loads(run.stdout)
    assert set(result) == {"method", "label", "layer", "runtime", "seconds", "options",
                           "domain", "flat", "dynamic_range", "equal_by_construction",
                           "uniform_gradients"}
    assert result["method"] == "gradcam++" and result["label"] == "meningioma"
    assert result["runtime"] == "keras" and result["options"] == {}
    assert result["layer"] == "xception/block14_sepconv2_act" and result["seconds"] > 0
    cols, rows = Image.open(path).size
    heatmap = np.load(tmp_path / "Te-me_0016.gradcam++.npy")
    assert heatmap.shape == (rows, cols) and heatmap.dtype == np.float32
    assert 0 <= heatmap.min() and heatmap.max() == pytest.approx(1.0)
    picture = Image.open(tmp_path / "Te-me_0016.gradcam++.png")
    assert picture.size == (cols, rows) and picture.mode == "RGB"


def test_explain_metrics_and_sanity_check(exported, tmp_path):
    path = exported / "braintumor-xception" / "glioma" / "Te-gl_0010.jpg"
    run = medlens("explain", "--model", "braintumor-xception", "--method", "gradcam",
                  str(path), "--out", str(tmp_path), "--metrics", "--sanity-check", "--json")
    assert run.returncode == 0 and run.stderr == ""
    result = json.loads(run.stdout)
    metrics = result["metrics"]
    petsiuk = {"deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"}
    assert set(metrics) == petsiuk | {"road", "random", "inverted", "verdict"}
    assert all(0 <= metrics[k] <= 1 for k in petsiuk)  # the four keys keep their meaning
    assert set(metrics["road"]) >= {"morf", "lerf", "combined"}
    assert metrics["random"]["low"] <= metrics["random"]["mean"] <= metrics["random"]["high"]
    assert metrics["random"]["resolution"] == {"grid": [5, 5]}  # block14's grid
    assert metrics["verdict"] in ("better", "worse", "indistinguishable")
    assert metrics["inverted"]["road"]["combined"] == pytest.approx(
        -metrics["road"]["combined"], abs=0.05)
    sanity = result["sanity"]
    assert len(sanity["layers"]) == len(sanity["spearman"]) > 10
    assert sanity["layers"][0] == "dense_1"  # from the top down
    assert all(-1 <= r <= 1 for r in sanity["spearman"])
    assert sanity["verdict"].split(":")[0] in ("pass", "fail", "inconclusive")
    assert sanity["rule"].startswith("pass when") and len(sanity["flat"]) == len(sanity["layers"])
    assert isinstance(result["flat"], bool) and 0 <= result["dynamic_range"] <= 1


@pytest.mark.parametrize("method", ["scorecam", "integrated-gradients", "occlusion", "rise"])
def test_explain_takes_method_options(exported, tmp_path, method):
    cheap = {"scorecam": "max_channels=4", "integrated-gradients": "steps=4",
             "occlusion": "patch=0.5", "rise": "samples=8"}[method]
    path = exported / "braintumor-vgg16" / "pituitary" / "Te-pi_0016.jpg"
    run = medlens("explain", "--model", "braintumor-vgg16", "--method", method, "--option",
                  cheap, str(path), "--out", str(tmp_path), "--json")
    assert run.returncode == 0 and run.stderr == ""
    result = json.loads(run.stdout)
    key, value = cheap.split("=")
    assert result["options"][key] == float(value)
    # Forward-only methods stay on onnxruntime; the others run on the Keras port.
    assert result["runtime"] == ("onnx" if method in ("occlusion", "rise") else "keras")
    assert np.load(tmp_path / f"Te-pi_0016.{method}.npy").max() == pytest.approx(1.0)


def test_studies_info_json(ct_small):
    run = medlens("studies", "info", str(ct_small), "--json")
    assert run.returncode == 0 and run.stderr == ""
    (info,) = json.loads(run.stdout)
    window = info.pop("window")
    assert info == {"path": str(ct_small), "format": "DICOM", "modality": "CT",
                    "shape": [128, 128], "dtype": "int16", "photometric": "MONOCHROME2",
                    "frames": 1, "slices": 1, "samples_per_pixel": 1, "units": "HU",
                    "spacing": [0.661468, 0.661468],
                    "transfer_syntax": "Explicit VR Little Endian", "planes": [],
                    "orientation": None, "notes": []}
    assert set(window) == {"center", "width", "source"} and window["width"] > 0


def test_studies_info_reports_a_bad_file_among_good(ct_small, tmp_path):
    bad = dicom_file("JPEG-lossy.dcm")
    run = medlens("studies", "info", str(ct_small), str(bad), "--json")
    assert run.returncode == 2
    good, failed = json.loads(run.stdout)
    assert good["format"] == "DICOM"
    assert failed["path"] == str(bad) and "cannot decode the pixel data" in failed["error"]
    assert run.stderr.count("\n") == 1


def big_png(folder: Path) -> str:
    """A real 12000 x 10000 PNG (120 M pixels, a few hundred kB compressed)."""
    path = folder / "big.png"
    Image.new("L", (12_000, 10_000)).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["predict", "--model", "nope", "x.png"], "unknown model 'nope'"),
        (["predict", "--model", "braintumor-xception", "/no/such.png"],
         "/no/such.png: no such file"),
        (["predict", "--model", "braintumor-xception", "JPEG-lossy.dcm"],
         "JPEG-lossy.dcm: cannot decode the pixel data"),
        (["explain", "--model", "braintumor-xception", "--method", "lime", "x.png",
          "--out", "o"], "argument --method: invalid choice: 'lime'"),
        (["explain", "--model", "braintumor-xception", "--method", "gradcam",
          "--target", "cat", "x.png", "--out", "o"], "--target: unknown label 'cat'"),
        (["explain", "--model", "braintumor-vgg16", "--method", "gradcam", "--runtime",
          "onnx", "CT_small.dcm", "--out", "o"], "braintumor-vgg16 runs on onnxruntime"),
        (["explain", "--model", "braintumor-xception", "--method", "smoothgrad", "--option",
          "steps=3", "x.png", "--out", "o"], "smoothgrad: unknown option 'steps'"),
        (["explain", "--model", "braintumor-xception", "--method", "rise", "--option",
          "samples", "x.png", "--out", "o"], "--option samples: expected KEY=VALUE"),
        (["explain", "--model", "braintumor-xception", "--method", "rise", "--option",
          "samples=0", "x.png", "--out", "o"], "rise: samples must be at least 1"),
        (["explain", "--model", "braintumor-vgg16", "--method", "occlusion", "--runtime",
          "onnx", "--sanity-check", "CT_small.dcm", "--out", "o"],
         "--sanity-check randomises weights: braintumor-vgg16 on onnx has none"),
        (["predict"], "the following arguments are required"),
        ([], "the following arguments are required: COMMAND"),
        (["studies", "info", "/etc/hostname"],
         "/etc/hostname: not a DICOM, PNG, JPEG or NIfTI file"),
        (["studies", "info", "big.png"], "big.png: 12000x10000 pixels, larger than the"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, expected, tmp_path):
    args = [str(dicom_file(a)) if a.endswith(".dcm") else a for a in args]
    args = [big_png(tmp_path) if a == "big.png" else a for a in args]
    args = [str(tmp_path / "o") if a == "o" else a for a in args]
    run = medlens(*args)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and expected in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists()


def test_cli_offers_every_explanation_method():
    from core.cli.common import method_names
    from core.explain import METHOD_TITLES, METHODS

    # --method's choices (explain, compare) are read from the registry, not copied.
    assert method_names() == tuple(METHODS) == tuple(METHOD_TITLES)


def test_predict_warns_outside_the_models_domain(ct_small):
    run = medlens("predict", "--model", "braintumor-vgg16", str(ct_small), "--json")
    assert run.returncode == 0 and run.stderr == ""
    result = json.loads(run.stdout)[0]
    assert result["warning"].endswith("is CT; braintumor-vgg16 was trained on brain MRI "
                                      "slices (MR): its output here is outside what it learnt.")
