"""Evaluation on labelled sets: the metrics against hand-computed cases, the real models
on their real samples, the `medlens evaluate` command and the Evaluate page."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import evaluate as ev
from core.cli import main
from core.models import card
from tests.app.waiting import settle
from tests.conftest import app_page

WAIT_MS = 120_000  # the browser test's waits for a fresh server's first model run
BRAIN_LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
# braintumor-xception on its 17 samples, measured (`medlens evaluate --model
# braintumor-xception --samples`): two pituitary slices are called meningioma.
XCEPTION_CONFUSION = [[6, 0, 0, 0], [0, 5, 0, 0], [0, 0, 3, 0], [0, 2, 0, 1]]
JSON_KEYS = {"model", "n", "accuracy", "per_class", "confusion_matrix", "labels", "roc_auc",
             "ece", "macro_f1", "skipped", "domain"}


# -- metrics on hand-computed cases -----------------------------------------------------

def test_confusion_and_class_scores_by_hand():
    # true  0 0 1 1 2 ; predicted 0 1 1 1 0 ; class 3 neither present nor predicted.
    matrix = ev.confusion_matrix(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 4)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    a, b, c, d = ev.class_scores(matrix, ["a", "b", "c", "d"])
    assert (a.precision, a.recall, a.f1, a.support) == (0.5, 0.5, 0.5, 2)
    assert (b.precision, b.recall, b.support) == (pytest.approx(2 / 3), 1.0, 2)
    assert b.f1 == pytest.approx(0.8)  # 2PR/(P+R) = 2*(2/3)/(5/3)
    # Present but never predicted: precision undefined, recall and F1 zero.
    assert (c.precision, c.recall, c.f1, c.support) == (None, 0.0, 0.0, 1)
    # Neither present nor predicted: nothing is defined, and macro F1 leaves it out.
    assert (d.precision, d.recall, d.f1, d.support) == (None, None, None, 0)


def test_roc_with_ties_by_hand():
    positive = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    scores = np.array([0.9, 0.5, 0.5, 0.2, 0.2, 0.1])
    fpr, tpr, thresholds = ev.roc_curve(positive, scores)
    # Each tie (0.5, 0.2) is one diagonal step: both rates move at once.
    assert fpr.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3, 1])
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert thresholds[1:].tolist() == [0.9, 0.5, 0.2, 0.1]
    # Positive-negative pairs ranked right: 3 + (2 + 1/2) + (1 + 1/2) of 9.
    assert ev.roc_auc(positive, scores) == pytest.approx(7 / 9)
    assert ev.roc_auc(positive, np.full(6, 0.3)) == 0.5  # all tied: chance
    assert ev.roc_auc(positive, positive.astype(float)) == 1.0  # exactly, not 0.999...
    assert ev.roc_auc(np.ones(3, bool), np.array([0.1, 0.2, 0.3])) is None  # no negatives
    assert ev.roc_auc(np.zeros(3, bool), np.array([0.1, 0.2, 0.3])) is None  # no positives


def test_reliability_and_ece_by_hand():
    confidence = np.array([0.9, 0.8, 0.6, 0.6, 0.35])
    correct = np.array([1, 0, 1, 0, 1], dtype=bool)
    r = ev.reliability(confidence, correct)
    # Bins are ((m-1)/10, m/10]: 0.6 belongs to (0.5, 0.6], 0.9 to (0.8, 0.9].
    assert r.count == (0, 0, 0, 1, 0, 2, 0, 1, 1, 0)
    assert r.accuracy[5] == 0.5 and r.confidence[5] == pytest.approx(0.6)
    assert r.confidence[0] is None and r.accuracy[0] is None
    # (|1-0.9| + |0-0.8| + 2*|0.5-0.6| + |1-0.35|) / 5
    assert r.ece == pytest.approx((0.1 + 0.8 + 0.2 + 0.65) / 5)


def test_evaluation_with_a_class_without_images():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1],
                              [0.3, 0.3, 0.4]])
    e = ev.Evaluation(model="m", labels=("a", "b", "c"), images=tuple(
        ev.LabelledImage(f"x/{i}.png", "x") for i in range(4)),
        true=np.array([0, 0, 1, 1]), probabilities=probabilities)
    assert e.predicted.tolist() == [0, 1, 1, 2]
    assert e.accuracy == 0.5
    assert e.roc_auc["c"] is None and e.roc["c"] is None
    assert e.roc_auc["a"] == 1.0  # a's scores 0.7, 0.4 above b's 0.2, 0.3
    assert any("'c' not defined: the set has no image of it" in n for n in e.notes)
    assert e.macro_auc == pytest.approx((1.0 + e.roc_auc["b"]) / 2)
    # c is predicted once, wrongly: F1 0 counts in the macro mean.
    assert e.per_class[2].f1 == 0.0
    assert e.macro_f1 == pytest.approx(np.mean([s.f1 for s in e.per_class]))
    assert set(e.to_dict()) == JSON_KEYS
    assert e.cells()[0] == ("a", "b", 1)  # errors first
    assert e.cell("b", "c") == [3]


# -- reading sets -----------------------------------------------------------------------

def test_wrapping_folders_are_stepped_into():
    one = ev.from_files([("brain/glioma/a.jpg", b"1"), ("brain/meningioma/b.jpg", b"2"),
                         ("brain/README.md", b"3"), ("__MACOSX/brain/._a.jpg", b"4")], "up")
    assert [(i.name, i.label) for i in one.images] == [("glioma/a.jpg", "glioma"),
                                                       ("meningioma/b.jpg", "meningioma")]
    assert [(s.name, s.reason) for s in one.skipped] == [
        ("README.md", "not inside a label sub-folder")]
    # A one-class set: its only folder holds files only, so it is the label.
    single = ev.from_files([("glioma/a.jpg", b"1"), ("glioma/b.jpg", b"2")], "up")
    assert [i.label for i in single.images] == ["glioma", "glioma"]
    # Images may sit deeper inside their label folder.
    nested = ev.from_files([("brain/glioma/p1/a.jpg", b"1"), ("brain/notumor/b.jpg", b"2")],
                           "up")
    assert [(i.name, i.label) for i in nested.images] == [("glioma/p1/a.jpg", "glioma"),
                                                          ("notumor/b.jpg", "notumor")]


def test_hostile_zips_are_refused(tmp_path):
    for entry in ("../evil.jpg", "/abs/glioma/x.jpg"):
        buffer = tmp_path / "bad.zip"
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr(entry, b"x")
        with pytest.raises(ev.EvaluationError, match="unsafe path"):
            ev.from_zip(buffer)
    with pytest.raises(ev.EvaluationError, match="not a readable zip"):
        ev.from_zip(b"not a zip at all", name="x.zip")


def test_folder_labels_matched_exactly_then_ignoring_case():
    c = card("braintumor-xception")
    labelled = ev.LabelledSet("s", (ev.LabelledImage("Glioma/a.jpg", "Glioma"),
                                    ev.LabelledImage("notumor/b.jpg", "notumor")))
    assert ev.match_labels(c, labelled) == {"Glioma": 0, "notumor": 2}
    odd = ev.LabelledSet("s", labelled.images + (ev.LabelledImage("cat/c.jpg", "cat"),))
    with pytest.raises(ev.EvaluationError, match=r"folder 'cat' is not among "
                       r"braintumor-xception's labels \(glioma, meningioma"):
        ev.match_labels(c, odd)
    assert ev.match_labels(c, odd, only_known_labels=True) == {"Glioma": 0, "notumor": 2}


# -- the real models --------------------------------------------------------------------

def test_xception_on_its_samples(xception, glioma_input):
    e = ev.evaluate(xception, ev.from_samples(xception.card))
    assert e.n == 17 and int(e.correct.sum()) == 15
    assert e.confusion.sum() == 17 and e.confusion.tolist() == XCEPTION_CONFUSION
    assert list(e.labels) == BRAIN_LABELS
    # Batched probabilities equal one image at a time.
    row = [i.name for i in e.images].index("Te-gl_0010.jpg")
    single = xception.probabilities(glioma_input.batch)[0]
    assert e.probabilities[row] == pytest.approx(single, abs=1e-5)
    assert sum(e.calibration.count) == 17 and 0 <= e.ece <= 1
    assert e.cells()[0] == ("pituitary", "meningioma", 2)
    # Against the stored calibration none of its own samples looks outside its domain.
    assert e.domain_summary()["checked"] == 17 and e.outside_domain == []
    assert e.domain_note() is None and "all 17 images" in e.domain_caption()


def test_images_outside_the_models_domain_are_named(brain_samples, chest_samples, tmp_path):
    from core import models

    for label, items in (("NORMAL", brain_samples[:2]), ("PNEUMONIA", chest_samples[-2:])):
        (tmp_path / label).mkdir()
        for s in items:
            shutil.copy(s.path, tmp_path / label / s.name)
    e = ev.evaluate(models.load("pneumonia-xception"), ev.from_folder(tmp_path))
    brains = sorted(f"NORMAL/{s.name}" for s in brain_samples[:2])
    assert sorted(e.outside_domain) == brains
    assert e.domain_note().startswith("2 of 4 images look unlike the images "
                                      "pneumonia-xception was trained on")
    assert e.to_dict()["domain"]["outside"] == e.outside_domain


def test_models_compared_and_a_misfit_reported(xception):
    from core import models

    pneumonia = models.load("pneumonia-xception")
    result = ev.evaluate_models([xception, pneumonia], ev.from_samples(xception.card))
    assert list(result.evaluations) == ["braintumor-xception"]
    assert "'glioma', 'meningioma', 'notumor', 'pituitary' are not among " \
           "pneumonia-xception's labels (NORMAL, PNEUMONIA)" in result.errors["pneumonia-xception"]
    rows = {r["model"]: r for r in result.table()}
    assert set(rows["braintumor-xception"]) == {"model", "n", "accuracy", "macro_f1",
                                                "macro_auc", "ece"}
    assert rows["braintumor-xception"]["accuracy"] == pytest.approx(15 / 17)
    assert rows["pneumonia-xception"]["accuracy"] is None


# -- the command line -------------------------------------------------------------------

def evaluate_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", "--model", "braintumor-xception", *args, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def test_cli_on_folder_zip_and_samples_agree(exported, tmp_path, capsys):
    folder = exported / "braintumor-xception"
    on_folder = evaluate_json(capsys, "--data", str(folder))
    assert set(on_folder) == JSON_KEYS
    assert on_folder["n"] == 17 and on_folder["accuracy"] == pytest.approx(15 / 17)
    assert on_folder["confusion_matrix"] == XCEPTION_CONFUSION
    assert on_folder["labels"] == BRAIN_LABELS and on_folder["skipped"] == []
    assert set(on_folder["per_class"]["pituitary"]) == {"precision", "recall", "f1", "support"}
    assert on_folder["per_class"]["pituitary"]["recall"] == pytest.approx(1 / 3)
    # The same images zipped inside a wrapping folder, and the built-in samples.
    archive = tmp_path / "brain.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.rglob("*.jpg"):
            z.write(path, f"brain/{path.relative_to(folder)}")
    on_zip = evaluate_json(capsys, "--data", str(archive))
    on_samples = evaluate_json(capsys, "--samples")
    for other in (on_zip, on_samples):
        assert {k: v for k, v in other.items() if k != "ece"} == \
               {k: v for k, v in on_folder.items() if k != "ece"}
        assert other["ece"] == pytest.approx(on_folder["ece"], abs=1e-6)
    # The text summary.
    assert main(["evaluate", "--model", "braintumor-xception", "--samples"]) == 0
    text = capsys.readouterr().out
    assert "accuracy 0.882 (15/17)" in text and "pituitary" in text


def test_cli_skips_unreadable_files_and_leaves_out_unknown_folders(exported, tmp_path,
                                                                   capsys):
    folder = tmp_path / "set"
    shutil.copytree(exported / "braintumor-xception", folder)
    (folder / "glioma" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "README.txt").write_text("labels are folder names")
    (folder / "cat").mkdir()
    shutil.copy(folder / "glioma" / "Te-gl_0010.jpg", folder / "cat" / "kitten.jpg")
    capsys.readouterr()
    assert main(["evaluate", "--model", "braintumor-xception", "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folder 'cat' is not among" in err
    result = evaluate_json(capsys, "--data", str(folder), "--only-known-labels")
    assert result["n"] == 17 and result["confusion_matrix"] == XCEPTION_CONFUSION
    skipped = {s["name"]: s["reason"] for s in result["skipped"]}
    assert skipped.keys() == {"README.txt", "glioma/broken.jpg", "cat/kitten.jpg"}
    assert skipped["README.txt"] == "not inside a label sub-folder"
    assert skipped["glioma/broken.jpg"].startswith("cannot decode the image")
    assert "'cat' is not among braintumor-xception's labels" in skipped["cat/kitten.jpg"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "braintumor-xception", "--data", "/no/such/dir"],
         "/no/such/dir: no such file or folder"),
        (["--model", "braintumor-xception", "--data", "EXPORTED"],
         "folders 'brain-tissue-unet', 'braintumor-vgg16', 'braintumor-xception', "
         "'head-ct-unet', 'pneumonia-xception' are not "
         "among braintumor-xception's labels"),
        (["--model", "braintumor-xception", "--data", "EMPTY"], "no images in label sub-folders"),
        (["--model", "braintumor-xception", "--data", "BAD.zip"], "not a readable zip file"),
        (["--model", "braintumor-xception", "--data", "/etc/hostname"],
         "/etc/hostname: not a folder or a .zip file"),
        (["--model", "braintumor-xception", "--data", "TRAVERSAL.zip"], "unsafe path '../x.jpg'"),
        (["--model", "skinlesion-xception", "--samples"],
         "skinlesion-xception has no built-in samples"),
        (["--model-file", "m.keras", "--labels", "a,b", "--samples"],
         "--samples: a --model-file has no built-in samples"),
        (["--model", "nope", "--samples"], "unknown model 'nope'"),
        (["--model", "braintumor-xception"], "one of the arguments --data --samples is required"),
        (["--model", "braintumor-xception", "--samples", "--meta", "sex=male"],
         "--meta: braintumor-xception takes no metadata"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args, expected, exported, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    with zipfile.ZipFile(tmp_path / "traversal.zip", "w") as z:
        z.writestr("../x.jpg", b"x")
    where = {"EXPORTED": exported, "EMPTY": tmp_path / "empty", "BAD.zip": tmp_path / "bad.zip",
             "TRAVERSAL.zip": tmp_path / "traversal.zip"}
    args = [str(where.get(a, a)) for a in args]
    capsys.readouterr()
    assert main(["evaluate", *args]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and expected in err, err
    assert "Traceback" not in err and out == ""


# -- the page ---------------------------------------------------------------------------

def evaluate_page() -> AppTest:
    return app_page("views/evaluate.py")


def test_page_on_samples_with_a_cell_and_its_maps():
    at = evaluate_page()
    assert "not for diagnosis" in at.caption[0].value
    assert at.multiselect[0].value == ["braintumor-xception"]
    settle(at.button[0].click())
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["braintumor-xception"]
    assert table["accuracy"].tolist() == [pytest.approx(15 / 17)]
    assert [m.value for m in at.metric][:2] == ["88.2%", "0.833"]
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # confusion matrix, ROC curves, reliability diagram
    roc = json.loads(charts[1].proto.spec)
    assert [t["name"] for t in roc["data"]][:4] == [f"{label} (AUC 1.000)"
                                                     for label in BRAIN_LABELS]
    # The heatmap's clickable markers carry their cell: [true, predicted, count].
    confusion = json.loads(charts[0].proto.spec)
    cells = confusion["data"][1]["customdata"]
    assert ["pituitary", "meningioma", 2] in cells and len(cells) == 16
    box = next(s for s in at.selectbox if s.label == "Images of a cell")
    assert box.options[0] == "true pituitary → predicted meningioma (2)"
    settle(box.set_value(("pituitary", "meningioma")))
    assert not at.exception
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert captions == ["Te-pi_0015.jpg: Grad-CAM for 'meningioma'",
                        "Te-pi_0016.jpg: Grad-CAM for 'meningioma'"]
    assert any(c.value.startswith("meningioma 0.") for c in at.caption)
    # A chart option redraws from the kept result: nothing is evaluated again.
    kept = at.session_state["evaluate_result"]
    at.toggle[0].set_value(True).run()
    at.slider(key="evaluate_opacity").set_value(0.8).run()
    assert at.session_state["evaluate_result"] is kept and not at.exception
    assert len([img for el in at.get("image") for img in el.proto.imgs]) == 2


def test_page_reports_a_model_that_does_not_fit_the_set():
    at = evaluate_page()
    at.multiselect[0].set_value(["braintumor-xception", "pneumonia-xception"]).run()
    settle(at.button[0].click())
    assert not at.exception
    assert any("pneumonia-xception not evaluated" in e.value and "not among" in e.value
               for e in at.error)
    assert at.dataframe[0].value["model"].tolist() == ["braintumor-xception",
                                                       "pneumonia-xception"]


def test_page_on_an_uploaded_zip_and_folder(exported):
    folder = exported / "braintumor-xception"
    files = sorted(folder.rglob("*.jpg"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in files:
            z.write(path, f"brain/{path.relative_to(folder)}")
    at = evaluate_page()
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader(key="evaluate_zip").set_value(
        ("brain.zip", buffer.getvalue(), "application/zip")).run()
    settle(at.button[0].click())
    assert not at.exception and not at.error
    assert at.dataframe[0].value["n"].tolist() == [17]
    assert at.subheader[0].value == "On brain.zip"
    # A folder: the browser sends each file with its path inside the chosen folder.
    at.radio[0].set_value("Upload a folder").run()
    uploads = [(f"brain/{p.relative_to(folder)}", p.read_bytes(), "image/jpeg")
               for p in files] + [("brain/glioma/broken.jpg", b"not an image", "image/jpeg")]
    at.file_uploader(key="evaluate_folder").set_value(uploads).run()
    settle(at.button[0].click())
    assert not at.exception and not at.error
    assert at.dataframe[0].value["accuracy"].tolist() == [pytest.approx(15 / 17)]
    assert at.expander[-1].label == "1 file(s) skipped"


@pytest.mark.browser
def test_clicking_a_heatmap_cell_in_a_real_browser_shows_its_images(tmp_path):
    """AppTest cannot click a chart: this proves the click itself reaches the page.
    Plotly's heatmap alone returns no point to Streamlit 1.67 (it has no selectPoints);
    the invisible markers over its cells do."""
    from playwright.sync_api import expect

    from tests.browser import VIEWPORT, app_shell, chromium, streamlit_server, wait_idle

    with streamlit_server(tmp_path / "server.log") as url, chromium() as browser:
        page = browser.new_page(viewport={**VIEWPORT, "height": 1600})
        page.goto(f"{url}/evaluate")
        expect(app_shell(page)).to_be_visible(timeout=WAIT_MS)
        wait_idle(page)
        page.get_by_role("button", name="Evaluate").click()
        # A fresh server imports TensorFlow and loads the model on this first run.
        expect(page.get_by_text("Confusion matrix")).to_be_visible(timeout=WAIT_MS)
        wait_idle(page)
        plot = page.locator(".st-key-evaluate_cm_1_braintumor-xception .nsewdrag").first
        box = plot.bounding_box()
        # The centre of the cell: true pituitary (row 4 of 4), predicted meningioma (col 2).
        x, y = box["x"] + box["width"] * 1.5 / 4, box["y"] + box["height"] * 3.5 / 4
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        captions = page.get_by_test_id("stImageCaption")
        expect(captions).to_have_count(2, timeout=WAIT_MS)
        expect(captions.first).to_have_text("Te-pi_0015.jpg: Grad-CAM for 'meningioma'")
        wait_idle(page)  # until the run ends, the previous run's widgets are still shown
        # The click also picked the cell in the keyboard-accessible selectbox.
        expect(page.get_by_role("combobox", name="Images of a cell")).to_have_value(
            "true pituitary → predicted meningioma (2)")
