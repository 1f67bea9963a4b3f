"""The Segment page in a real Chromium: the head CT's mask beside its ground truth,
the slice slider moving both, and Seg-Grad-CAM's map beside the label's mask.
MEDLENS_SCREENSHOTS=DIR keeps the screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import (
    HEALTH_TIMEOUT_S,
    VIEWPORT,
    app_shell,
    choose_option,
    chromium,
    press_timed,
    viewer_image,
    wait_for_viewer_image,
    wait_idle,
    wait_jobs_done,
)

pytestmark = pytest.mark.browser


def test_segment_page_scrolls_mask_and_truth_and_explains(app_url: str, screenshots: Path):
    shots = screenshots
    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)
        page.goto(f"{app_url}/segment")
        expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
        wait_idle(page)
        choose_option(page, "Model", "head-ct-unet")
        wait_jobs_done(page, 600)
        image = viewer_image(page, "segment_image")
        expect(image).to_be_visible(timeout=600_000)
        wait_jobs_done(page, 600)
        wait_idle(page)
        pictures = page.get_by_test_id("stImage")
        # The mask, the ground truth, the label's mask and its map.
        expect(pictures).to_have_count(4, timeout=300_000)
        expect(page.get_by_text("of the map's energy lies inside")).to_be_visible()
        page.screenshot(path=str(shots / "segment-ct.png"), full_page=True)
        caption = page.locator(".st-key-segment_image").get_by_test_id("stImageCaption")
        before = caption.inner_text()
        thumb = page.get_by_test_id("stSlider").filter(
            has=page.get_by_text("Slice", exact=True)).get_by_role("slider")
        previous = image.get_attribute("src")
        press_timed(page, thumb, "ArrowRight")
        wait_for_viewer_image(page, previous, key="segment_image")
        wait_idle(page)
        assert caption.inner_text() != before  # the next slice, with its mask
        assert not page.get_by_test_id("stException").count()
