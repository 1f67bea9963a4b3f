"""The Inside page in a real Chromium: the tumour Xception's architecture drawn as a graph,
its backbone unfolded, a layer picked by clicking its dot (the sidebar's layer box follows),
and that layer's feature maps. MEDLENS_SCREENSHOTS=DIR keeps the screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import (
    HEALTH_TIMEOUT_S,
    VIEWPORT,
    app_shell,
    choose_sample,
    chromium,
    labelled_select,
    wait_idle,
    wait_jobs_done,
)

pytestmark = pytest.mark.browser

SAMPLE = "Te-gl_0010.jpg"
WAIT_MS = 300_000  # what a page may take under the full suite's load


def layer_dots(page: Page):
    """The graph's layer markers (its second trace; the first draws the edges)."""
    chart = page.get_by_test_id("stPlotlyChart").first
    return chart.locator(".scatterlayer .trace").nth(1).locator("path.point")


def layer_box(page: Page):
    """The sidebar's layer box: its input holds the chosen layer's path."""
    return labelled_select(page, "Layer").get_by_role("combobox")


def test_a_click_on_the_graph_picks_the_layer_every_view_reads(app_url: str,
                                                               screenshots: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)
        page.goto(f"{app_url}/inside")
        expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
        wait_idle(page)
        choose_sample(page, SAMPLE)
        wait_idle(page)
        # The model loads on the fresh server first: minutes under a full suite's load.
        expect(layer_dots(page)).to_have_count(6, timeout=WAIT_MS)  # 6 top-level layers
        expect(layer_box(page)).to_have_value("xception/block14_sepconv2_act", timeout=WAIT_MS)

        page.get_by_text("Unfold the backbone 'xception'").click()
        wait_idle(page)
        expect(layer_dots(page)).to_have_count(6 - 1 + 132,  # its node: its 132 layers
                                               timeout=WAIT_MS)
        dot = layer_dots(page).nth(4)  # input, backbone input, conv1, its BN, its ReLU
        dot.scroll_into_view_if_needed()
        # Plotly takes clicks on its drag layer and finds the point under the mouse.
        where = dot.bounding_box()
        x, y = where["x"] + where["width"] / 2, where["y"] + where["height"] / 2
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        wait_idle(page)
        expect(layer_box(page)).to_have_value("xception/block1_conv1_act", timeout=WAIT_MS)
        expect(page.get_by_text("sees: 3x3")).to_be_visible(timeout=WAIT_MS)  # its field
        page.screenshot(path=str(screenshots / "inside-clicked.png"), full_page=True)

        page.get_by_test_id("stRadio").get_by_text("Feature maps", exact=True).click()
        wait_idle(page)
        wait_jobs_done(page, 600)
        caption = page.get_by_test_id("stImageCaption").filter(
            has_text="xception/block1_conv1_act: 32 of 32 channels, 74x74 each")
        expect(caption).to_be_visible(timeout=WAIT_MS)
        page.screenshot(path=str(screenshots / "inside-features-clicked.png"),
                        full_page=True)
