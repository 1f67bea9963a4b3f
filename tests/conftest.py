"""Shared fixtures: the real files the tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from core.models import card
from core.samples import samples

ROOT = Path(__file__).resolve().parent.parent


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
    from core.model_input import prepare
    from core.study import open_study

    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    return prepare(open_study(sample.path), xception.card.input_spec)
