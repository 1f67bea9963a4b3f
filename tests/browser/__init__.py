"""Drive the running dashboard in a real Chromium: shared by the browser test and the bench.

Not a test module itself (pytest only collects test_*.py); bench/explain_latency.py imports it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]  # tests/browser/__init__.py
APP = ROOT / "dashboard" / "app.py"
STREAMLIT = Path(sys.executable).with_name("streamlit")

# Debian's Chromium: Playwright cannot download its own browsers here (no internet).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A common laptop screen: the pages are laid out so their answer shows above its fold.
VIEWPORT = {"width": 1440, "height": 900}

HEALTH_TIMEOUT_S = 60.0
# The first run after server start loads and traces a TensorFlow model.
OVERLAY_TIMEOUT_S = 120.0

# Stamps the moment an option is picked. Capture phase on window, so it runs before any
# listener of the select widget can stop the event; the first pointerup after arming wins.
_ARM_CLICK_TIMER = """() => {
  if (!window.__medlens) {
    window.__medlens = {t0: null};
    window.addEventListener('pointerup', (event) => {
      const target = event.target;
      if (window.__medlens.t0 === null && target instanceof Element
          && target.closest('[role="option"]')) {
        window.__medlens.t0 = performance.now();
      }
    }, true);
  }
  window.__medlens.t0 = null;
}"""

# Truthy (ms since the option was picked) once the overlay for `name` is in the DOM,
# laid out and decoded. Queries the DOM afresh on every poll because Streamlit re-renders.
_OVERLAY_READY = """(name) => {
  const timer = window.__medlens;
  if (!timer || timer.t0 === null) return false;
  for (const figure of document.querySelectorAll('.st-key-overlay [data-testid="stImage"]')) {
    const caption = figure.querySelector('[data-testid="stImageCaption"]');
    const img = figure.querySelector('img');
    if (caption && img && caption.textContent.trim().endsWith(' on ' + name)
        && img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0) {
      return Math.max(performance.now() - timer.t0, 0.001);
    }
  }
  return false;
}"""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The server runs in its own session; signal the whole group so no child outlives it.
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def streamlit_server(log: Path, timeout_s: float = HEALTH_TIMEOUT_S) -> Iterator[str]:
    """Start a fresh dashboard server on a free port; yield its base URL; always stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(STREAMLIT), "run", str(APP),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        # cwd=ROOT so the project's .streamlit/config.toml applies.
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_healthy(url, process, log, timeout_s)
        yield url
    finally:
        _stop(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path,
                  timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not healthy after {timeout_s:.0f} s:\n{_log_tail(log)}")


def chromium_path() -> Path:
    """The Chromium to drive; a clear error if it is not installed."""
    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(`sudo apt-get install -y chromium`, or `make chromium`)."
        )
    return CHROMIUM


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Chromium with a fresh temporary profile (Playwright's default)."""
    return playwright.chromium.launch(executable_path=str(chromium_path()), args=CHROMIUM_ARGS)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Playwright driving `launch_chromium`, the browser closed on the way out."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def app_shell(page: Page) -> Locator:
    """The sidebar note that app.py itself writes: present only when a page ran inside it."""
    return page.get_by_test_id("stSidebar").get_by_text("not for diagnosis")


def open_explain(browser: Browser, url: str) -> Page:
    """A new page straight on /explain, once its first script run has finished.

    The page must run inside app.py (its navigation and intended-use note), even as the
    first visit to a fresh server.
    """
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    page.goto(f"{url}/explain")
    expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
    expect(sample_select(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
    wait_idle(page)
    return page


def wait_idle(page: Page, timeout_s: float = OVERLAY_TIMEOUT_S) -> None:
    """Wait until Streamlit's script run is over, so a click is not lost to a re-render."""
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout_s * 1000
    )


def sample_select(page: Page) -> Locator:
    """The "Sample" selectbox, found by its label (the Model one is a selectbox too)."""
    label = page.get_by_test_id("stWidgetLabel").get_by_text("Sample", exact=True)
    return page.get_by_test_id("stSelectbox").filter(has=label)


def _open_samples(page: Page) -> Locator:
    sample_select(page).get_by_role("combobox").click()
    listbox = page.get_by_role("listbox", name="Sample")
    expect(listbox).to_be_visible()
    return listbox


def sample_options(page: Page) -> list[tuple[str, str]]:
    """(file name, label) of every option in the Sample selectbox, as the page lists them."""
    listbox = _open_samples(page)
    texts = listbox.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    found = [re.fullmatch(r"(.+) \(labelled (.+)\)", text.strip()) for text in texts]
    return [(match[1], match[2]) for match in found if match]


def choose_sample(page: Page, name: str) -> None:
    """Pick a sample through the real dropdown, by its file name; arms the in-page timer."""
    page.evaluate(_ARM_CLICK_TIMER)
    listbox = _open_samples(page)
    option = listbox.get_by_role("option").filter(
        has_text=re.compile(rf"^{re.escape(name)} \(labelled ")
    )
    expect(option).to_have_count(1)
    option.click()


def overlay_image(page: Page, name: str) -> Locator:
    """The Grad-CAM overlay <img> whose caption names this sample."""
    figure = page.locator(".st-key-overlay").get_by_test_id("stImage").filter(
        has=page.get_by_test_id("stImageCaption").filter(has_text=f" on {name}")
    )
    return figure.locator("img")


def wait_for_overlay(page: Page, name: str, timeout_s: float = OVERLAY_TIMEOUT_S) -> float:
    """Wait for the sample's overlay to be visible and decoded.

    Returns the seconds from the option's click to that moment, timed inside the browser
    (polled every animation frame), so Playwright's own round trips are not counted.
    """
    ready = page.wait_for_function(
        _OVERLAY_READY, arg=name, polling="raf", timeout=timeout_s * 1000
    )
    return float(ready.json_value()) / 1000


def model_device(page: Page) -> str:
    """The device the prediction's caption reports ("... · <model> on CPU"), or "unknown"."""
    caption = page.get_by_test_id("stCaptionContainer").filter(
        has_text=re.compile(r"^Probability .* on \w+$"))
    if caption.count() == 0:
        return "unknown"
    match = re.search(r" on (\w+)$", caption.first.inner_text().strip())
    return match[1] if match else "unknown"


# -- the Viewer page ------------------------------------------------------------------------

# Truthy (ms since the option was picked) once the Viewer shows an image other than
# `previous` (its src), laid out and decoded.
_VIEWER_IMAGE_READY = """([previous, key]) => {
  const timer = window.__medlens;
  if (!timer || timer.t0 === null) return false;
  for (const img of document.querySelectorAll(`.st-key-${key} [data-testid="stImage"] img`)) {
    if (img.getAttribute('src') !== previous && img.complete && img.naturalWidth > 0
        && img.getBoundingClientRect().width > 0) {
      return Math.max(performance.now() - timer.t0, 0.001);
    }
  }
  return false;
}"""


def labelled_select(page: Page, label: str) -> Locator:
    """The selectbox whose label is exactly `label`."""
    found = page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stSelectbox").filter(has=found)


def choose_option(page: Page, label: str, option: str) -> None:
    """Pick `option` (its exact text) in the selectbox `label`; arms the in-page timer."""
    page.evaluate(_ARM_CLICK_TIMER)
    labelled_select(page, label).get_by_role("combobox").click()
    listbox = page.get_by_role("listbox", name=label)
    expect(listbox).to_be_visible()
    choice = listbox.get_by_role("option", name=option, exact=True)
    expect(choice).to_have_count(1)
    choice.click()


def select_options(page: Page, label: str) -> list[str]:
    """The options of the selectbox `label`, as the page lists them."""
    labelled_select(page, label).get_by_role("combobox").click()
    listbox = page.get_by_role("listbox", name=label)
    expect(listbox).to_be_visible()
    texts = [t.strip() for t in listbox.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    return texts


def open_viewer(browser: Browser, url: str) -> Page:
    """A new page straight on /viewer, once its first script run has finished."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    page.goto(f"{url}/viewer")
    expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
    expect(labelled_select(page, "Example")).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
    wait_idle(page)
    return page


def viewer_image(page: Page, key: str = "viewer_image") -> Locator:
    """The Viewer's picture (<img>), or the one in the container `key`."""
    return page.locator(f".st-key-{key}").get_by_test_id("stImage").locator("img").first


def press_timed(page: Page, target: Locator, key: str) -> None:
    """Press `key` on `target` (a slider's thumb: ArrowRight is the next slice) with the
    in-page timer started at the press."""
    page.evaluate(_ARM_CLICK_TIMER)
    target.focus()
    page.evaluate("() => { window.__medlens.t0 = performance.now(); }")
    page.keyboard.press(key)


def viewer_caption(page: Page) -> str:
    caption = page.locator(".st-key-viewer_image").get_by_test_id("stImageCaption")
    return caption.inner_text().strip()


def wait_for_viewer_image(page: Page, previous: str | None,
                          timeout_s: float = HEALTH_TIMEOUT_S, key: str = "viewer_image"
                          ) -> float:
    """Wait until the picture in the container `key` (the Viewer's, or the Segment
    page's "segment_image") has a src that is not `previous`, decoded.

    Returns the seconds from the option's click (or the key press `press_timed` sent) to
    that moment, timed in the browser.
    """
    ready = page.wait_for_function(_VIEWER_IMAGE_READY, arg=[previous, key], polling="raf",
                                   timeout=timeout_s * 1000)
    return float(ready.json_value()) / 1000


# -- jobs on the page -----------------------------------------------------------------------

def add_method(page: Page, title: str) -> None:
    """Add a method to Explain's "Methods" picker by its title ("RISE")."""
    picker = page.get_by_test_id("stMultiSelect").filter(
        has=page.get_by_test_id("stWidgetLabel").get_by_text("Methods", exact=True))
    box = picker.get_by_role("combobox")
    box.click()
    box.fill(title)  # the list shows its first options only: filter it to this one
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(title)}\b")).click()
    page.keyboard.press("Escape")


def set_number(page: Page, label: str, value: int | float) -> None:
    """Type a value into the number box `label` and commit it (Enter)."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def progress_text(page: Page, starts: str) -> Locator:
    """The text of the progress bar of a running job whose line starts with `starts`."""
    return page.get_by_test_id("stProgress").filter(
        has_text=re.compile(rf"^\s*{re.escape(starts)}"))


def wait_jobs_done(page: Page, timeout_s: float = OVERLAY_TIMEOUT_S) -> None:
    """Wait until the page shows no running job (no progress bar) and its run is over."""
    expect(page.get_by_test_id("stProgress")).to_have_count(0, timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)


def cancel_button(page: Page, starts: str) -> Locator:
    """The Cancel button beside the progress bar whose line starts with `starts` (another
    job may be running beside it, with its own)."""
    block = page.get_by_test_id("stVerticalBlock").filter(has=progress_text(page, starts))
    # The innermost block holding that bar comes last in document order.
    return block.last.get_by_role("button", name="Cancel")
