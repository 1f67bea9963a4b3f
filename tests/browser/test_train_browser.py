"""The Train page in a real Chromium: a CNN run whose progress bar and curves move while it
trains, a second student (another browser context) who sees their own run queued for the
one training slot and not the first student's, Stop (the best checkpoint kept), and the
trained model explained on Explain in the same browser session (Grad-CAM on one of its
held-out images). MEDLENS_SCREENSHOTS=DIR keeps the screenshots."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser import (
    HEALTH_TIMEOUT_S,
    VIEWPORT,
    app_shell,
    choose_option,
    choose_sample,
    chromium,
    chromium_path,
    labelled_select,
    sample_options,
    select_options,
    set_number,
    streamlit_server,
    wait_for_overlay,
    wait_idle,
)

pytestmark = pytest.mark.browser

# Long enough that the run is still going when the second student arrives and when Stop
# is pressed; Stop ends it after the epoch in progress, so it never runs them all.
EPOCHS = 40
# Points in the curves chart (every batch's loss and every epoch's values), read from the
# plotly figure in the page.
_CURVE_POINTS = """() => {
  const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!plot || !plot.data) return 0;
  return plot.data.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0);
}"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        chromium_path()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    # One training slot (the default), whatever the caller's environment says: the second
    # student's run must wait for the first's.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDLENS_TRAIN_SLOTS", "1")
        with streamlit_server(log) as url:
            yield url


def open_train(page: Page, url: str) -> None:
    page.set_default_timeout(60_000)
    page.goto(f"{url}/train")
    expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
    expect(page.get_by_text("Parameters")).to_be_visible(timeout=120_000)
    wait_idle(page)


def progress(page: Page) -> Locator:
    return page.get_by_test_id("stProgress")


def curve_points(page: Page) -> int:
    return int(page.evaluate(_CURVE_POINTS))


def run_options(page: Page) -> list[str]:
    """The options of "Your runs", read from its open list. The page redraws every second
    while a run waits, which can close the list under the click: open it again then."""
    box = labelled_select(page, "Your runs").get_by_role("combobox")
    for _ in range(5):
        box.click()
        options = page.get_by_role("option")
        try:
            expect(options.first).to_be_visible(timeout=3_000)
            texts = [t.strip() for t in options.all_inner_texts()]
        except AssertionError:
            continue
        page.keyboard.press("Escape")
        return texts
    raise AssertionError("the list of runs did not open")


def test_a_run_shows_live_curves_queues_a_second_student_stops_and_is_explained(
        app_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("MEDLENS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        first = browser.new_context(viewport=VIEWPORT)
        page = first.new_page()
        open_train(page, app_url)
        set_number(page, "Epochs", EPOCHS)
        wait_idle(page)
        page.get_by_role("button", name="Train", exact=True).click()

        # While it runs: the bar's text and the curves change without a click.
        expect(progress(page).filter(has_text=re.compile(r"epoch \d+/40"))).to_be_visible(
            timeout=120_000)
        expect(page.get_by_test_id("stPlotlyChart")).to_be_visible(timeout=60_000)
        before_text, before_points = progress(page).inner_text(), curve_points(page)
        page.wait_for_function(f"() => ({_CURVE_POINTS})() > {before_points}",
                               timeout=60_000)
        expect(progress(page)).not_to_have_text(before_text)
        assert progress(page).inner_text().count("s left") == 1  # the ETA, once
        page.screenshot(path=str(shots / "train-during.png"))

        # Another student, another browser context (own cookies, own session).
        second = browser.new_context(viewport=VIEWPORT)
        other = second.new_page()
        open_train(other, app_url)
        set_number(other, "Epochs", 1)
        wait_idle(other)
        other.get_by_role("button", name="Train", exact=True).click()
        expect(progress(other).filter(
            has_text="Queued: number 1 in line for a training slot")).to_be_visible()
        # Their runs are their own: one run listed, at 1 epoch; the first student's 40-epoch
        # run is not among them.
        assert run_options(other) == [
            "1. cnn on builtin:brain-tissue-patches, 1 epochs, seed 0"]
        other.screenshot(path=str(shots / "train-queue.png"))
        other.get_by_role("button", name="Cancel").click()

        # Stop once an epoch is done: that epoch's checkpoint is kept.
        expect(progress(page).filter(has_text=re.compile(r"epoch ([2-9]|\d\d)/40"))
               ).to_be_visible(timeout=180_000)
        page.get_by_role("button", name="Stop").click()
        ended = page.get_by_text(re.compile(
            r"Training stopped by you: \d+ epochs in \d+ s; the checkpoint of epoch \d+ "
            r"is kept"))
        expect(ended).to_be_visible(timeout=120_000)
        # The second student's cancelled run leaves the line (at the latest when the slot
        # frees: the executor ends a cancelled queued job when a worker reaches it).
        expect(other.get_by_text("This run was cancelled")).to_be_visible(timeout=60_000)
        second.close()
        epochs_run = int(re.search(r"(\d+) epochs", ended.inner_text())[1])
        assert 1 <= epochs_run < EPOCHS
        expect(page.get_by_text(re.compile(r"^Held-out accuracy"))).to_be_visible()
        wait_idle(page)
        page.screenshot(path=str(shots / "train-stopped.png"), full_page=True)

        # Explain, reached through the sidebar, so this session's model comes along.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
        expect(page).to_have_url(re.compile(r"/explain$"))
        wait_idle(page)
        (trained,) = [m for m in select_options(page, "Model") if m.startswith("user:cnn-")]
        choose_option(page, "Model", trained)
        wait_idle(page)
        held_out = sample_options(page)
        assert held_out and {label for _, label in held_out} <= {
            "grey matter", "white matter", "CSF and other"}, held_out
        name = held_out[0][0]
        started = time.monotonic()
        choose_sample(page, name)
        wait_for_overlay(page, name)
        wait_idle(page)
        print(f"Grad-CAM of {trained} on {name}: {time.monotonic() - started:.1f} s")
        assert not page.get_by_test_id("stException").count()
        page.screenshot(path=str(shots / "explain-trained.png"), full_page=True)
        first.close()
