"""The one zip, folder and upload reader (core/studies/archives.py), for its two uses: a
study refuses the whole zip on a bad entry; a labelled set skips it and says why."""

from __future__ import annotations

import io
import zipfile

import pytest

from core import evaluate as ev
from core.studies import StudyError, open_study
from core.studies.archives import (
    STUDY,
    Limits,
    folder_files,
    read_folder,
    read_zip,
    upload_entries,
    zip_entries,
)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _corrupt(data: bytes, content: bytes) -> bytes:
    """The zip with one stored entry's bytes changed: its CRC no longer matches."""
    at = data.index(content)
    return data[:at] + bytes([content[0] ^ 0xFF]) + data[at + 1:]


def test_junk_is_left_out_the_same_way_everywhere(tmp_path):
    entries = {"glioma/a.jpg": b"1", "glioma/.hidden.jpg": b"2", "__MACOSX/glioma/._a.jpg": b"3",
               "glioma/Thumbs.db": b"4", ".git/config": b"5", "DICOMDIR": b"6"}
    assert [e.name for e in zip_entries(_zip(entries), "s.zip")] == ["glioma/a.jpg"]
    assert [e.name for e in upload_entries(list(entries.items()), "up")] == ["glioma/a.jpg"]
    for name, data in entries.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert [parts for parts, _ in folder_files(tmp_path, "f")] == [("glioma", "a.jpg")]
    assert read_folder(tmp_path, "f") == [("f/glioma/a.jpg", b"1")]


def test_a_study_refuses_an_undecodable_entry_a_set_skips_it():
    data = _corrupt(_zip({"glioma/a.jpg": b"good image", "glioma/b.jpg": b"broken image"}),
                    b"broken image")
    with pytest.raises(StudyError, match=r"^s\.zip: 'glioma/b\.jpg': cannot decompress \("):
        read_zip(data, "s.zip")
    labelled = ev.from_zip(data, name="s.zip")
    assert [i.name for i in labelled.images] == ["glioma/a.jpg"]
    assert [(s.name, s.reason[:18]) for s in labelled.skipped] == [
        ("glioma/b.jpg", "cannot decompress ")]


def test_the_limits_are_one_mechanism_with_two_settings():
    assert (STUDY.files, ev.SET_LIMITS.files) == (1000, 5000)
    assert STUDY.file_bytes is None and ev.SET_LIMITS.file_bytes == ev.MAX_IMAGE_BYTES
    small = Limits(files=2, bytes=10, file_bytes=4, skip_unreadable=True, counted="image",
                   purpose="for a test", error=ev.EvaluationError)
    # Per file: over the cap, skipped with the reason; the bytes read stop just past it.
    read = zip_entries(_zip({"a/x": b"123", "a/y": b"123456"}), "z.zip", small)
    assert [(e.name, e.data, e.reason) for e in read] == [
        ("a/x", b"123", ""), ("a/y", None, "larger than 4 bytes")]
    # In all: refused, whatever each entry declares.
    with pytest.raises(ev.EvaluationError, match=r"^z\.zip: more than 10 bytes uncompressed"):
        zip_entries(_zip({"a/x": b"1234", "a/y": b"1234", "a/z": b"1234"}), "z.zip",
                    Limits(files=5, bytes=10, error=ev.EvaluationError))
    with pytest.raises(ev.EvaluationError, match=r"^z\.zip: 3 files, more than the 2-image "
                                                 r"limit for a test"):
        zip_entries(_zip({"a/x": b"", "a/y": b"", "a/z": b""}), "z.zip", small)


def test_a_set_counts_images_against_its_own_limit():
    data = _zip({f"glioma/{i}.jpg": b"" for i in range(ev.MAX_IMAGES + 1)})
    with pytest.raises(ev.EvaluationError, match=r"^big\.zip: 5,001 files, more than the "
                                                 r"5,000-image limit for an evaluation set"):
        ev.from_zip(data, name="big.zip")
    with pytest.raises(StudyError, match=r"^big\.zip: 5,001 files, more than the 1,000-file "
                                         r"limit for one study"):
        open_study(data, name="big.zip")


@pytest.mark.parametrize("entry", ["../x.jpg", "/abs/x.jpg", "c:/x.jpg", "C:x.jpg",
                                   "a/../../x.jpg"])
def test_unsafe_names_refuse_everything_in_both_uses(entry):
    data = _zip({"glioma/a.jpg": b"1", entry: b"2"})
    with pytest.raises(StudyError, match=rf"^s\.zip: unsafe path '{entry}' in the zip"):
        read_zip(data, "s.zip")
    with pytest.raises(ev.EvaluationError, match=rf"^s\.zip: unsafe path '{entry}' in the zip"):
        ev.from_zip(data, name="s.zip")
    with pytest.raises(ev.EvaluationError, match=rf"^up: unsafe path '{entry}' in the upload"):
        ev.from_files([("glioma/a.jpg", b"1"), (entry, b"2")], "up")


def test_a_colon_inside_a_name_is_only_a_character():
    # macOS names screenshots and exports "12:30": such a zip opened as nothing before.
    data = _zip({"glioma/scan 12:30.jpg": b"1", "glioma/a.jpg": b"2"})
    assert [n for n, _ in read_zip(data, "s.zip")] == ["s.zip/glioma/scan 12:30.jpg",
                                                       "s.zip/glioma/a.jpg"]
    labelled = ev.from_zip(data, name="s.zip")
    assert {i.name for i in labelled.images} == {"glioma/scan 12:30.jpg", "glioma/a.jpg"}
