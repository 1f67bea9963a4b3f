"""Shared fixtures: the real files the tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from core.models import card
from core.models.samples import samples

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
# A cold TensorFlow import and model load take far longer than AppTest's default 3 s.
APP_TIMEOUT = 180


def app_page(view: str | None = None, session_state: dict | None = None):
    """The app through AppTest, run once, then on `view` ("views/zoo.py") if given, with
    `session_state` set before the first run; no exception on the way."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    for key, value in (session_state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    if view is not None:
        at.switch_page(view).run()
        assert not at.exception
    return at


def dicom_file(name: str) -> Path:
    """A file from pydicom's or pydicom-data's bundled test files (offline)."""
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not among pydicom's installed test files")
    return Path(path)


@pytest.fixture(scope="session")
def ct_small() -> Path:
    return dicom_file("CT_small.dcm")


@pytest.fixture(scope="session")
def mr_small() -> Path:
    return dicom_file("MR_small.dcm")


@pytest.fixture(scope="session")
def brain_samples():
    return samples(card("braintumor-xception"))


@pytest.fixture(scope="session")
def chest_samples():
    return samples(card("pneumonia-xception"))


@pytest.fixture(scope="session")
def xception():
    """The real braintumor-xception classifier (a nested Xception backbone)."""
    from core import models

    return models.load("braintumor-xception")


@pytest.fixture(scope="session")
def glioma_input(xception, brain_samples):
    """Te-gl_0010.jpg prepared for it (a ModelInput); the model says glioma, p = 0.89."""
    from core.models.inputs import prepare
    from core.studies import open_study

    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    return prepare(open_study(sample.path), xception.card.input_spec)


# The tiers: each test's folder is its marker, so `-m unit` is the fast tier. A test in
# slow/ that drives a page (AppTest) or Chromium also gets that marker, by what it calls.
TIERS = ("unit", "slow", "app", "browser")
CALLS = {"app": {"app_page", "AppTest"}, "browser": {"chromium", "streamlit_server"}}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        function = getattr(item, "function", None)
        names = set(function.__code__.co_names) if hasattr(function, "__code__") else set()
        for marker, calls in CALLS.items():
            if tier != marker and names & calls:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """`medlens samples export` once per test process: the labelled images and the
    segmentation volumes with their ground truth, as files (read only by the tests)."""
    from core.cli import main

    out = tmp_path_factory.mktemp("samples")
    assert main(["samples", "export", str(out)]) == 0
    return out
