"""What the browser tests share: one Streamlit server per test module (its process group
killed even when a test fails) and the folder screenshots go to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import chromium_path, streamlit_server


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh server for this module, once Chromium is known to be there (a missing
    Chromium fails in one line, before a server is started for nothing)."""
    try:
        chromium_path()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(log) as url:
        yield url


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """MEDLENS_SCREENSHOTS=DIR keeps the screenshots there; else the test's own folder."""
    folder = Path(os.environ.get("MEDLENS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
