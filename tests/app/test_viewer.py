"""The Viewer page (AppTest, real files) and what it computes (core.studies.viewing)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.models import card
from core.studies import open_study
from core.studies import viewing as viewer
from core.studies.windows import Window
from tests.app.pages import displayed
from tests.app.waiting import settle
from tests.conftest import app_page, dicom_file
from tests.series import write_series

CT = "693_UNCR.dcm"


# -- helpers ------------------------------------------------------------------------------

def viewer_page() -> AppTest:
    at = app_page("views/viewer.py")
    assert at.title[0].value == "Viewer"
    return at


def open_example(at: AppTest, file: str) -> AppTest:
    at.selectbox(key="viewer_example").set_value(file).run()
    assert not at.exception
    return at


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.radio(key="viewer_source").set_value("Upload files").run()
    payload = [(name, data, "application/octet-stream") for name, data in files]
    at.file_uploader(key="viewer_upload").set_value(payload).run()
    assert not at.exception
    return at


def images(at: AppTest) -> list[tuple[str, str]]:
    """(caption as shown, media URL) of every image; the URL is a hash of the image's
    bytes. Captions are markdown: text from the file in them is escaped."""
    return [(displayed(img.caption), img.url)
            for element in at.get("image") for img in element.proto.imgs]


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def page_text(at: AppTest) -> str:
    """Every text the page shows: tables, markdown, captions, notices, image captions."""
    parts = [df.value.to_string() for df in at.dataframe]
    for kind in (at.markdown, at.caption, at.info, at.error, at.warning, at.text):
        parts.extend(displayed(e.value) for e in kind)
    parts.extend(caption for caption, _ in images(at))
    return "\n".join(parts)


def series_zip(folder: Path, slices: int = 12, size: int = 128) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in write_series(folder, slices=slices, size=size):
            archive.write(path, path.name)
    return buffer.getvalue()


# -- the page -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("file", "label", "scale"),
    [
        (CT, "693_UNCR.dcm · image · C 40 HU / W 100 HU (file)", "Scale bar: 50 mm"),
        ("RG1_UNCR.dcm", "RG1_UNCR.dcm · image · C 15000 / W 30000 (file)", "no scale bar"),
        ("anatomical.nii", "anatomical.nii · axial 13 of 25", "Scale bar: 10 mm"),
        ("emri_small.dcm", "emri_small.dcm · frame 1 of 10", "no scale bar"),
    ],
)
def test_example_shows_image_scale_and_tags(file, label, scale):
    at = viewer_page()
    assert not images(at)
    open_example(at, file)
    assert not at.error
    shown = images(at)
    assert len(shown) == 1 and shown[0][0].startswith(label)
    assert any(scale in c.value for c in at.caption)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) > 3


def test_example_volume_and_frames_get_scroll_controls():
    at = open_example(viewer_page(), "anatomical.nii")
    plane = widget(at.radio, "Plane")
    assert plane.options == ["axial", "coronal", "sagittal"] and plane.value == "axial"
    assert widget(at.slider, "Slice").max == 25
    plane.set_value("sagittal").run()
    assert widget(at.slider, "Slice").max == 33
    assert images(at)[0][0].startswith("anatomical.nii · sagittal 17 of 33")

    open_example(at, "emri_small.dcm")
    assert not any(r.label == "Plane" for r in at.radio)
    frame = widget(at.slider, "Frame")
    assert frame.max == 10
    before = images(at)[0][1]
    frame.set_value(4).run()
    assert images(at)[0][0].startswith("emri_small.dcm · frame 4 of 10")
    assert images(at)[0][1] != before


def test_window_preset_and_manual_values_change_the_pixels():
    at = open_example(viewer_page(), CT)
    preset = widget(at.selectbox, "Window preset")
    assert preset.value == "File: C 40 HU / W 100 HU (file)"
    assert "CT bone" in preset.options
    (_, first), = images(at)

    preset.set_value("CT bone").run()
    (caption, bone), = images(at)
    assert caption.endswith("C 400 HU / W 1800 HU (CT bone)")
    assert bone != first
    # The boxes follow the preset; typing in them overrides it.
    assert widget(at.number_input, "Centre (HU)").value == 400
    assert widget(at.number_input, "Width (HU)").value == 1800
    widget(at.number_input, "Centre (HU)").set_value(100).run()
    (caption, manual), = images(at)
    assert caption.endswith("C 100 HU / W 1800 HU (manual)")
    assert manual not in (first, bone)
    assert any("Window used: **C 100 HU / W 1800 HU (manual)**" in displayed(c.value)
               for c in at.caption)

    # Back to the file's window: the very same picture as at first.
    widget(at.selectbox, "Window preset").set_value("File: C 40 HU / W 100 HU (file)").run()
    assert images(at)[0][1] == first


def test_series_zip_upload_gives_slices_and_planes(tmp_path):
    at = upload(viewer_page(), ("series.zip", series_zip(tmp_path / "series")))
    assert not at.error
    plane = widget(at.radio, "Plane")
    assert plane.options == ["axial", "coronal", "sagittal"] and plane.value == "axial"
    slider = widget(at.slider, "Slice")
    assert (slider.min, slider.max, slider.value) == (1, 12, 7)
    assert images(at)[0][0].startswith("series.zip · axial 7 of 12")
    assert any("slices 2.5 mm apart" in c.value for c in at.caption)

    slider.set_value(1).run()
    assert images(at)[0][0].startswith("series.zip · axial 1 of 12")
    widget(at.radio, "Plane").set_value("coronal").run()
    assert widget(at.slider, "Slice").max == 128
    assert images(at)[0][0].startswith("series.zip · coronal 65 of 128")


def test_several_uploaded_files_are_one_series(tmp_path):
    files = [(p.name, p.read_bytes()) for p in write_series(tmp_path, slices=5, size=64)]
    at = upload(viewer_page(), *files)
    assert not at.error
    assert widget(at.slider, "Slice").max == 5
    assert images(at)[0][0].startswith("5 files · axial 3 of 5")


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("JPEG-lossy.dcm", dicom_file("JPEG-lossy.dcm").read_bytes(),
         "JPEG-lossy.dcm: cannot decode the pixel data"),
        ("noise.dcm", np.random.default_rng(0).bytes(4096),
         "noise.dcm: not a DICOM, PNG, JPEG or NIfTI file"),
    ],
)
def test_bad_file_is_one_error_line_and_page_keeps_working(name, payload, expected):
    at = upload(viewer_page(), (name, payload))
    assert len(at.error) == 1
    message = displayed(at.error[0].value)
    assert message.startswith(expected) and "\n" not in message
    assert not images(at)
    assert at.title[0].value == "Viewer"

    # A good file beside the bad one is still shown; the bad one still named (an error
    # when it could not be read, a note when it was skipped as not DICOM).
    upload(at, (name, payload), (CT, dicom_file(CT).read_bytes()))
    assert len(at.error) <= 1 and "\n" not in "".join(e.value for e in at.error)
    assert name in "\n".join(displayed(e.value) for e in (*at.error, *at.info))
    assert images(at)[0][0].startswith(f"{CT} · image")

    # And the examples still open.
    at.radio(key="viewer_source").set_value("Built-in example").run()
    open_example(at, CT)
    assert not at.error and len(images(at)) == 1


def test_identifying_tags_hidden_until_the_toggle():
    identifying = open_study(dicom_file(CT)).identifying
    secrets = [v for v in identifying.values() if len(v) > 4]
    assert "CQ500-CT-310" in secrets  # PatientName / PatientID of this file

    at = open_example(viewer_page(), CT)
    text = page_text(at)
    assert "Modality" in text
    assert not [s for s in secrets if s in text]
    assert not [k for k in ("PatientName", "PatientID") if k in text]

    toggle = next(t for t in at.toggle if t.label == "Show identifying tags (your own file)")
    assert toggle.value is False
    toggle.set_value(True).run()
    text = page_text(at)
    assert all(s in text for s in secrets)
    assert "PatientName" in text

    # Another study starts hidden again.
    open_example(at, "RG1_UNCR.dcm")
    assert next(t for t in at.toggle if t.label.startswith("Show identifying")).value is False
    assert "CQ500-CT-310" not in page_text(at)


def send_to_explain(at: AppTest) -> AppTest:
    widget(at.button, "Send to Explain").click().run()
    # AppTest reruns the page its own switch_page() last named, whatever st.switch_page
    # did; name Explain so that later runs stay there, as the browser does. Its maps are
    # jobs: settle waits for them and reruns it, as the browser's polling does.
    at.switch_page("views/explain.py")
    return settle(at)


def test_send_to_explain_predicts_on_that_image():
    at = open_example(viewer_page(), CT)
    widget(at.selectbox, "Window preset").set_value("CT brain").run()
    send_to_explain(at)
    assert not at.exception and not at.error
    assert at.title[0].value == "Explain"
    assert widget(at.radio, "Study").value == "From the Viewer"
    labels = card("braintumor-xception").labels
    assert at.metric[0].value in labels
    captions = [caption for caption, _ in images(at)]
    assert f"{CT} · image" in captions
    assert any(c.endswith(f"on {CT}") for c in captions)  # the Grad-CAM overlay
    steps = "\n".join(displayed(m.value) for m in at.markdown)
    assert "window C 40 HU / W 80 HU (CT brain) to 8 bits" in steps
    assert any("window C 40 HU / W 80 HU (CT brain)" in displayed(c.value) for c in at.caption)

    # Back on the Viewer, the example is still open (and Streamlit has nothing to warn of).
    at.switch_page("views/viewer.py").run()
    assert not at.exception and not at.warning
    assert images(at)[0][0].startswith(f"{CT} · image")


def test_send_a_volume_slice_to_explain(tmp_path):
    at = upload(viewer_page(), ("series.zip", series_zip(tmp_path / "series")))
    widget(at.radio, "Plane").set_value("coronal").run()
    widget(at.slider, "Slice").set_value(40).run()
    send_to_explain(at)
    assert not at.exception and not at.error
    assert at.title[0].value == "Explain"
    assert widget(at.radio, "Study").value == "From the Viewer"
    assert widget(at.radio, "Plane").value == "coronal"
    assert widget(at.slider, "Slice").value == 40
    assert "series.zip · coronal 40 of 128" in [c for c, _ in images(at)]
    steps = "\n".join(displayed(m.value) for m in at.markdown)
    assert "coronal 40 of 128 (radiological orientation)" in steps
    assert "window C 40 HU / W 100 HU (file) to 8 bits" in steps
    assert at.metric[0].value in card("braintumor-xception").labels

    # Explain's own slice controls move the image the model sees.
    settle(widget(at.slider, "Slice").set_value(10))
    assert "coronal 10 of 128 (radiological orientation)" in "\n".join(
        displayed(m.value) for m in at.markdown)


# -- core.studies.viewing --------------------------------------------------------------------------

def test_picture_is_the_display_image_with_a_true_scale_bar():
    study = open_study(dicom_file(CT), name=CT)
    window = Window(400.0, 1800.0, "CT bone")
    pic = viewer.picture(study, 0, window)
    assert pic.scale == 1 and pic.bar_mm == 50
    rows, cols = pic.shown.shape
    np.testing.assert_array_equal(pic.shown, study.display(0, window))
    np.testing.assert_array_equal(pic.image[:rows], pic.shown)
    strip = pic.image[rows:]
    assert strip.shape[1] == cols and strip.shape[0] >= 28
    # The bar: the longest run of white in the strip is 50 mm at 0.478516 mm a pixel.
    longest = max(_longest_run(row == 255) for row in strip)
    assert longest == round(50 / 0.478516)


def test_small_image_is_enlarged_whole_pixels_and_bar_scaled():
    path = Path(__import__("nibabel").__file__).parent / "tests/data/anatomical.nii"
    study = open_study(path, name="anatomical.nii")
    pic = viewer.picture(study, 12, None, "axial")
    assert pic.shown.shape == (41, 33) and pic.scale == 12
    rows = 41 * 12
    np.testing.assert_array_equal(pic.image[:rows:12, ::12], pic.shown)
    # 33 voxels of 2 mm across: the bar is the longest round length under a quarter.
    assert pic.pixel_mm == 2.0 and pic.bar_mm == 10
    longest = max(_longest_run(row == 255) for row in pic.image[rows:])
    assert longest == 10 / 2.0 * 12


def test_wide_image_is_reduced_and_bar_still_true():
    study = open_study(dicom_file("CT_small.dcm"))
    # A 128-pixel-wide CT reduced to 100 pixels across: the bar follows the reduction.
    pic = viewer.picture(study, 0, None, min_size=0, max_width=100)
    assert pic.scale == 100 / 128 and pic.image.shape[1] == 100
    assert pic.image.shape[0] > 100  # 100 rows of image, then the strip
    longest = max(_longest_run(row == 255) for row in pic.image[100:])
    # 128 x 0.661468 mm = 84.7 mm across; a quarter is 21.2 mm, so a 20 mm bar.
    assert pic.bar_mm == 20 and abs(longest - 20 / (0.661468 * 128 / 100)) <= 1
    assert "reduced to 100 pixels across" in viewer.spacing_caption(pic, study)


def test_png_is_lossless():
    image = viewer.picture(open_study(dicom_file(CT)), 0).image
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(viewer.png(image)))), image)


def test_no_spacing_no_bar():
    study = open_study(dicom_file("emri_small.dcm"))
    pic = viewer.picture(study, 3)
    assert pic.bar_mm is None and pic.pixel_mm is None
    np.testing.assert_array_equal(pic.image[::8, ::8], study.display(3))
    assert "no scale bar" in viewer.spacing_caption(pic, study)


@pytest.mark.parametrize(("limit", "length"),
                         [(0.9, 0.5), (1, 1), (3.2, 2), (61.2, 50), (99, 50), (100, 100)])
def test_nice_length(limit, length):
    assert viewer.nice_length(limit) == pytest.approx(length)


def test_window_choices_default_is_the_studys_own():
    ct = open_study(dicom_file(CT))
    choices, default = viewer.window_choices(ct)
    assert choices[default] == ct.window and default.startswith("File:")
    buffer = io.BytesIO()
    Image.fromarray(ct.display()).save(buffer, format="PNG")
    png = open_study(buffer.getvalue(), name="ct.png")
    choices, default = viewer.window_choices(png)
    assert default == "Default: C 128 / W 256 (full 8-bit range)"
    assert list(choices)[0] == default
    colour = open_study(dicom_file("examples_ybr_color.dcm"))
    assert viewer.window_choices(colour) == ({}, None)


def test_open_uploads_keeps_good_files_beside_bad_ones():
    good = (CT, dicom_file(CT).read_bytes())
    bad = ("JPEG-lossy.dcm", dicom_file("JPEG-lossy.dcm").read_bytes())
    noise = ("noise.bin", os.urandom(2048))
    for files in ([bad, good], [good, bad], [noise, good]):
        opened = viewer.open_uploads(files)
        assert [s.name for s in opened.studies] == [CT], files[0][0]
        assert all("\n" not in e for e in opened.errors)
    assert viewer.open_uploads([noise]).errors == (
        "noise.bin: not a DICOM, PNG, JPEG or NIfTI file",)


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


# -- a mask over the study ------------------------------------------------------------------

def test_a_mask_is_drawn_over_its_study_with_its_volumes(tmp_path):
    from pydicom.data import get_testdata_file

    from core.segment.write import write_nifti
    from core.studies.masks import LabelMap, Segment

    path = Path(__import__("nibabel").__file__).parent / "tests/data/anatomical.nii"
    study = open_study(path, name="anatomical.nii")
    bright = (study.pixels > np.quantile(study.pixels, 0.8)).astype(np.uint8)
    mask = LabelMap("bright", bright, (Segment(1, "bright *voxels*", (255, 0, 0)),), "NIfTI",
                    study.affine, study.pixel_spacing, study.slice_spacing)
    mask_file = write_nifti(mask, tmp_path / "bright.nii.gz")
    at = upload(viewer_page(), ("anatomical.nii", path.read_bytes()))
    plain = images(at)[0][1]
    box = next(u for u in at.file_uploader if u.label.startswith("A mask of this study"))
    box.set_value(("bright.nii.gz", mask_file.read_bytes(), "application/gzip")).run()
    assert not at.exception and not at.error
    assert images(at)[0][1] != plain  # the picture now carries the mask
    # Its segment by name (the file's text, drawn literally), its volume in mL.
    toggle = next(c for c in at.checkbox if displayed(c.label) == "bright *voxels*")
    table = at.dataframe[0].value
    assert list(table["label"]) == ["bright *voxels*"]
    expected = bright.sum() * np.prod(study.spacing) / 1000
    assert abs(table["volume (mL)"][0] - expected) < 0.01
    toggle.uncheck().run()  # hidden: the picture is the plain one again
    assert images(at)[0][1] == plain
    # A mask of another study: one line, the study stays.
    other = get_testdata_file("liver.dcm")
    box = next(u for u in at.file_uploader if u.label.startswith("A mask of this study"))
    box.set_value(("liver.dcm", Path(other).read_bytes(), "application/dicom")).run()
    assert len(at.error) == 1 and "do not fit" in displayed(at.error[0].value)
    assert images(at)[0][1] == plain
