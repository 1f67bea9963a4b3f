"""Hostile uploads on the pages (issue 12): each file of tests.unit.hostile, and files
whose name and tags carry markdown, uploaded on the Viewer (and some on Explain).

What a page must do with them: no exception; a file that cannot be read is one error line
naming it, its text shown literally (escaped markdown, never rendered); no traceback or
server path, no UID; and the page goes on: the next good upload opens. One AppTest
session per page serves every case, as one browser tab would.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.jobs import executor
from tests.app.pages import displayed
from tests.conftest import app_page, dicom_file
from tests.unit import hostile

GOOD = "CT_small.dcm"
# Everything Streamlit would render if it were not escaped: emphasis, a javascript link,
# HTML, LaTeX, an icon, a colour directive, an autolink and a typographic arrow.
PAYLOAD = ("**bold** [link](javascript:alert(1)) <b>html</b> $x$ :material/home: :red[x] "
           "www.example.com a -> b")
SHORT = "**HU** $x$ :red[u]"  # DICOM LO values (RescaleType...) hold 64 characters
RAW = ("**bold**", "[link](", "<b>", "$x$", ":material/home:", ":red[", "**HU**", ":red[u]")
ESCAPED = ("\\*\\*bold\\*\\*", "\\[link\\]\\(", "\\<b\\>", "\\$x\\$")  # PAYLOAD's, escaped


# -- the files ------------------------------------------------------------------------------

def payload_dicom() -> bytes:
    """CT_small.dcm with the payload in the tags the Viewer shows: RescaleType (the units,
    in widget labels and captions), WindowCenterWidthExplanation (the window's name) and
    SeriesDescription."""
    return hostile.with_elements(
        dicom_file(GOOD), RescaleType=SHORT, WindowCenter=40, WindowWidth=400,
        WindowCenterWidthExplanation=SHORT, SeriesDescription=PAYLOAD[:64])


def payload_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)).save(
        buffer, format="PNG")
    return buffer.getvalue()


# A zip entry's name may not hold ":" (the readers refuse it as a drive): the rest.
ENTRY = "**bold** [link](js) <b>html $x$ ~~s~~ a -> b"


def zip_beside(entry: str) -> bytes:
    return hostile.zip_of({"study/ct.dcm": dicom_file(GOOD).read_bytes(),
                           f"study/{entry}.txt": b"x"})


# (file name, bytes): a DICOM and a PNG that open, and a file that does not, all named
# with the payload; zips whose entry carries it (skipped with a note, or refused).
PAYLOAD_FILES = {
    "dicom": (f"{PAYLOAD}.dcm", payload_dicom),
    "png": (f"{PAYLOAD}.png", payload_png),
    "bad": (f"{PAYLOAD}.dcm", lambda: b"not a study " * 50),
    "zip": ("entries.zip", lambda: zip_beside(ENTRY)),
    # An entry leading outside the zip refuses it: the error names the entry, literally.
    # (A colon inside a name is only a character: "javascript:" alone refuses nothing.)
    "zip_refused": ("traversal.zip", lambda: zip_beside("../" + PAYLOAD[:37])),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile_uploads")


@pytest.fixture(scope="module")
def quiet() -> Iterator[None]:
    """No background model loading: these pages read studies only (app.py warms the
    models once per process; on two cores that would slow every run here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(executor()), "warm", lambda self, load, ids: threading.Thread())
        yield


@pytest.fixture(scope="module")
def viewer(quiet) -> AppTest:
    at = app_page("views/viewer.py")
    at.radio(key="viewer_source").set_value("Upload files").run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def explain(quiet) -> AppTest:
    at = app_page("views/explain.py")
    at.radio[0].set_value("Upload a file").run()
    assert not at.exception
    return at


# -- reading the page ---------------------------------------------------------------------------

def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="viewer_upload").set_value(
        [(name, data, "application/octet-stream")]).run()
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """Every markdown source the page sent: texts, notices, labels, captions, options of
    radios, metric values, expander labels."""
    found = []
    for kind in (at.markdown, at.caption, at.info, at.error, at.warning, at.success,
                 at.title, at.header, at.subheader):
        found.extend(e.value for e in kind)
    for kind in (at.radio, at.selectbox, at.multiselect, at.number_input, at.slider,
                 at.toggle, at.checkbox, at.button, at.text_input, at.file_uploader):
        found.extend(str(w.label) for w in kind)
    found.extend(o for r in at.radio for o in r.options)
    found.extend(f"{m.label}\n{m.value}" for m in at.metric)
    found.extend(e.label for e in at.expander)
    found.extend(img.caption for e in at.get("image") for img in e.proto.imgs)
    return found


def plain_texts(at: AppTest) -> list[str]:
    """What the page shows as plain text: selectbox options, tables."""
    found = [str(o) for s in at.selectbox for o in s.options]
    found.extend(df.value.to_string() for df in at.dataframe)
    return found


def captions(at: AppTest) -> list[str]:
    return [displayed(img.caption) for e in at.get("image") for img in e.proto.imgs]


def assert_literal(at: AppTest) -> None:
    """No markdown from a file reaches the page unescaped, and nothing of a traceback."""
    sources = markdown_sources(at)
    for raw in RAW:
        assert not [s for s in sources if raw in s], f"{raw!r} sent as markdown"
    shown = "\n".join(displayed(s) for s in sources) + "\n".join(plain_texts(at))
    assert "Traceback" not in shown and "site-packages" not in shown
    assert str(Path(__file__).parents[2]) not in shown  # no server path


def assert_one_error_naming(at: AppTest, name: str, message: str | None = None) -> str:
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    text = displayed(at.error[0].value)
    assert hostile.one_line_naming(text, name), text
    if message is not None:
        assert text == message  # the reader's own message, shown as it reads
    return text


def assert_good_upload_opens(at: AppTest) -> None:
    upload(at, GOOD, dicom_file(GOOD).read_bytes())
    assert not at.exception and not at.error
    assert captions(at)[0].startswith(f"{GOOD} · image")


# -- the Viewer -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", hostile.FAST, ids=lambda c: c.name)
def test_each_hostile_file_on_the_viewer(viewer: AppTest, folder: Path, case) -> None:
    path = case.write(folder)
    expected = hostile.outcome(path, case.name, prepare=False)  # what the readers say
    at = upload(viewer, case.name, path.read_bytes())
    assert not at.exception
    assert at.title[0].value == "Viewer"
    if expected["outcome"] == "study_error":
        assert_one_error_naming(at, case.name, expected["message"])
        assert not captions(at)
    else:
        assert expected["outcome"] == "opened", expected
        assert not at.error and captions(at)[0].startswith(case.name)
        notes = [displayed(i.value) for i in at.info]
        assert notes == expected["notes"]  # each note literally, one line each
    assert all("\n" not in displayed(e.value) for e in (*at.error, *at.info))
    assert_literal(at)
    text = "\n".join(displayed(s) for s in markdown_sources(at)) + "\n".join(plain_texts(at))
    # Series are told apart by number, never by UID (uid_controls.zip holds two).
    assert "1.2.826.0.1.3680043" not in text
    assert_good_upload_opens(at)


def test_a_bad_file_named_with_markdown_is_one_literal_error(viewer: AppTest) -> None:
    name, build = PAYLOAD_FILES["bad"]
    at = upload(viewer, name, build())
    text = assert_one_error_naming(at, name)
    assert text.startswith(f"{PAYLOAD}.dcm: ")
    source = at.error[0].value
    assert all(escaped in source for escaped in ESCAPED), source
    assert "\u2060" in source  # the word joiner after ":" of :material/ and :red[
    assert_literal(at)
    assert_good_upload_opens(at)


@pytest.mark.parametrize("kind", ["dicom", "png"])
def test_a_study_named_and_tagged_with_markdown_shows_it_literally(viewer: AppTest,
                                                                  kind: str) -> None:
    name, build = PAYLOAD_FILES[kind]
    at = upload(viewer, name, build())
    assert not at.exception and not at.error
    (caption,) = captions(at)
    assert caption.startswith(f"{name} · image · ")
    assert_literal(at)
    if kind == "dicom":
        # The units (RescaleType) in the window boxes' labels, the file's window name in
        # the presets (plain text) and in the captions, the units in the summary.
        labels = [str(n.label) for n in at.number_input]
        assert [displayed(label) for label in labels] == [f"Centre ({SHORT})",
                                                          f"Width ({SHORT})"]
        assert all("\\*\\*HU\\*\\*" in label for label in labels)
        preset = next(s for s in at.selectbox if s.label == "Window preset")
        assert preset.value == f"File: C 40 {SHORT} / W 400 {SHORT} (file, {SHORT})"
        assert caption.endswith(f"C 40 {SHORT} / W 400 {SHORT} (file, {SHORT})")
        shown = [displayed(c.value) for c in at.caption]
        assert f"Window used: **C 40 {SHORT} / W 400 {SHORT} (file, {SHORT})**" in shown
        assert any(f"values in {SHORT}" in c for c in shown)
    assert_good_upload_opens(at)


def test_zip_entries_named_with_markdown_are_literal(viewer: AppTest) -> None:
    name, build = PAYLOAD_FILES["zip"]
    at = upload(viewer, name, build())
    assert not at.exception and not at.error
    notes = [displayed(i.value) for i in at.info]
    assert any(ENTRY in note for note in notes), notes
    assert any("\\*\\*bold\\*\\*" in i.value for i in at.info)
    assert_literal(at)
    name, build = PAYLOAD_FILES["zip_refused"]
    at = upload(viewer, name, build())
    assert PAYLOAD[:37] in assert_one_error_naming(at, name)
    assert_literal(at)
    assert_good_upload_opens(at)


def test_a_bad_file_beside_good_ones_keeps_them(viewer: AppTest, folder: Path) -> None:
    """Several files that are not one series: each good one is offered, the bad one is
    one error line, and the File picker (plain text) names them as they are."""
    bad = hostile.case("broken_chunk.png")
    files = [(bad.name, bad.write(folder).read_bytes()),
             (f"{PAYLOAD}.png", payload_png()), ("plain.png", payload_png())]
    viewer.file_uploader(key="viewer_upload").set_value(
        [(n, d, "application/octet-stream") for n, d in files]).run()
    at = viewer
    assert not at.exception
    assert_one_error_naming(at, bad.name)
    picker = next(s for s in at.selectbox if s.label == "File")
    assert picker.options == [f"{PAYLOAD}.png", "plain.png"]
    assert len(at.info) == 1 and "\n" not in at.info[0].value  # "do not make one study"
    assert_literal(at)
    picker.set_value(1).run()
    assert not at.exception and captions(at)[0].startswith("plain.png · image")
    assert_good_upload_opens(at)


# -- Explain --------------------------------------------------------------------------------------

def test_hostile_uploads_on_explain(explain: AppTest, folder: Path) -> None:
    at = explain
    for case in (hostile.case("nested_20_long_names.zip"), hostile.case("newline_only.zip")):
        path = case.write(folder)
        expected = hostile.outcome(path, case.name, prepare=False)
        at.file_uploader[0].set_value((case.name, path.read_bytes(),
                                       "application/octet-stream")).run()
        assert_one_error_naming(at, case.name, expected["message"])
        assert_literal(at)
    name, build = PAYLOAD_FILES["bad"]
    at.file_uploader[0].set_value((name, build(), "application/octet-stream")).run()
    text = assert_one_error_naming(at, name)
    assert text.startswith(f"{PAYLOAD}.dcm: ")
    assert all(escaped in at.error[0].value for escaped in ESCAPED)
    assert_literal(at)
    # The page goes on: its other widgets still work, and no error is left behind.
    assert [s.label for s in at.selectbox][0] == "Model"
    at.radio[0].set_value("Built-in sample").run()
    assert not at.exception and not at.error
    assert any(s.label == "Sample" for s in at.selectbox)


def test_the_error_text_is_escaped_not_rendered() -> None:
    """The page's escaping round-trips: what `displayed` reads back is the text itself."""
    from dashboard.components.text import literal

    for text in (PAYLOAD, SHORT, "    indented", "a\\b &amp; `x`", "x -- y <= z ~= w"):
        source = literal(text)
        assert displayed(source) == text
        assert not re.search(r"(?<!\\)[*\[\]<>$`]|(?<!\\)&(?!#\d+;)", source), source
