"""Nothing calls out at run time (issue 12): every page, in a real Chromium, asks nothing
of any host but the app's own server: no fonts, icons, favicon, usage statistics, map
tiles or scripts from elsewhere. A study opened on the Viewer and a sample explained
(images, a Plotly chart, a job's progress) are part of the visit.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser import (
    HEALTH_TIMEOUT_S,
    VIEWPORT,
    app_shell,
    choose_option,
    choose_sample,
    chromium,
    chromium_path,
    wait_for_overlay,
    wait_for_viewer_image,
    wait_idle,
)

pytestmark = pytest.mark.browser

PAGES = ("", "viewer", "explain", "zoo", "compare", "evaluate")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Schemes that reach no host (inline images, fonts decoded from the page's own bytes).
NO_HOST = {"data", "blob", "about"}
SAMPLE = "Te-gl_0011.jpg"
# Lazy loads (fonts, icons, chunks of the frontend) may start after a run is over.
SETTLE_MS = 2_000


def outside(urls: list[str], app_url: str) -> list[str]:
    """The URLs that leave the app's server."""
    port = urlsplit(app_url).port
    found = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in NO_HOST:
            continue
        if parts.hostname not in LOCAL_HOSTS or parts.port != port:
            found.append(url)
    return found


def favicons(page: Page) -> list[str]:
    """Where the page's <link rel="icon"> elements point, as absolute URLs."""
    hrefs = page.eval_on_selector_all(
        'link[rel~="icon"], link[rel="shortcut icon"], link[rel="apple-touch-icon"]',
        "links => links.map(link => link.getAttribute('href'))")
    return [urljoin(page.url, href) for href in hrefs if href]


def test_every_page_asks_only_the_apps_own_server(app_url: str, tmp_path: Path) -> None:
    try:
        chromium_path()
    except RuntimeError as error:  # CI installs Chromium: its absence is a broken setup
        pytest.fail(str(error), pytrace=False)
    requested: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        # Every request of every page and worker of the context, the favicon's included.
        context.on("request", lambda request: requested.append(request.url))
        context.on("websocket", lambda socket: requested.append(socket.url))
        # A request that leaves is stopped here, so a failing run still calls out nowhere.
        context.route(lambda url: bool(outside([url], app_url)),
                      lambda route: route.abort())
        page = context.new_page()
        page.set_default_timeout(30_000)

        for path in PAGES:
            page.goto(f"{app_url}/{path}")
            expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
            wait_idle(page)
            if path == "viewer":
                choose_option(page, "Example", "CT, 128x128 (CT_small.dcm)")
                wait_for_viewer_image(page, None)
                wait_idle(page)
            elif path == "explain":
                choose_sample(page, SAMPLE)
                wait_for_overlay(page, SAMPLE)  # a Grad-CAM job, its map and a Plotly chart
                expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
                wait_idle(page)
            page.wait_for_timeout(SETTLE_MS)
            icons = favicons(page)
            assert icons, f"/{path}: no favicon link"
            assert not outside(icons, app_url), f"/{path}: favicon from elsewhere: {icons}"
            # The favicon is served by the app itself, as a PNG.
            response = page.request.get(icons[0])
            assert response.ok and response.headers["content-type"] == "image/png", icons[0]

        page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
        context.close()

    assert requested, "no request recorded"
    assert not outside(requested, app_url), sorted(set(outside(requested, app_url)))
