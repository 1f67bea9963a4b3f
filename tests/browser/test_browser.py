"""The dashboard in a real Chromium: Grad-CAM overlays on Explain, windowing on the Viewer."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import (
    HEALTH_TIMEOUT_S,
    VIEWPORT,
    app_shell,
    choose_option,
    choose_sample,
    chromium,
    chromium_path,
    open_explain,
    open_viewer,
    overlay_image,
    sample_select,
    streamlit_server,
    viewer_caption,
    viewer_image,
    wait_for_overlay,
    wait_for_viewer_image,
    wait_idle,
)

pytestmark = pytest.mark.browser

# Two classes, so the second overlay cannot be mistaken for the first.
FIRST, SECOND = "Te-gl_0011.jpg", "Te-me_0016.jpg"


def require_chromium() -> None:
    # Fail, not skip: CI installs Chromium, so its absence is a broken setup.
    try:
        chromium_path()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


def test_samples_give_gradcam_overlays(app_url: str, screenshots: Path) -> None:
    require_chromium()
    with chromium() as browser:
        page = open_explain(browser, app_url)
        for name in (FIRST, SECOND):
            choose_sample(page, name)
            # First pass includes model load and tracing, hence the long timeout.
            wait_for_overlay(page, name)
            image = overlay_image(page, name)
            expect(image).to_be_visible()
            assert image.evaluate("img => img.naturalWidth") > 0, f"{name}: overlay empty"
            # Let the run finish before the next click, so the click is not re-rendered away.
            wait_idle(page)

        shot = screenshots / "explain.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0


def test_deep_link_to_explain_on_fresh_server_runs_inside_app(tmp_path: Path) -> None:
    """A first visit straight to /explain gets the app's navigation and its notice.

    (A `pages/` folder beside app.py once put a fresh server in Streamlit's legacy
    folder mode, which ran the page alone.)
    """
    require_chromium()
    # Its own server: the fault only showed while no session had run app.py yet.
    with streamlit_server(tmp_path / "server.log") as url, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/explain")
        expect(sample_select(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
        expect(app_shell(page)).to_be_visible(timeout=2_000)
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_text("Home", exact=True)).to_be_visible()
        expect(nav.get_by_text("Explain", exact=True)).to_be_visible()


def test_viewer_window_preset_changes_the_picture(app_url: str, screenshots: Path) -> None:
    require_chromium()
    with chromium() as browser:
        page = open_viewer(browser, app_url)
        choose_option(page, "Example", "CT head, 512x512, HU (693_UNCR.dcm)")
        wait_for_viewer_image(page, None)
        wait_idle(page)
        image = viewer_image(page)
        expect(image).to_have_count(1)
        assert viewer_caption(page).endswith("C 40 HU / W 100 HU (file)")
        before_src, before_pixels = image.get_attribute("src"), image.screenshot()
        expect(page.get_by_text("Scale bar: 50 mm", exact=False)).to_be_visible()

        choose_option(page, "Window preset", "CT bone")
        wait_for_viewer_image(page, before_src)
        wait_idle(page)
        image = viewer_image(page)
        expect(image).to_have_count(1)
        assert viewer_caption(page).endswith("C 400 HU / W 1800 HU (CT bone)")
        assert image.get_attribute("src") != before_src
        assert image.evaluate("img => img.naturalWidth") == 512
        assert image.screenshot() != before_pixels, "the picture on screen did not change"

        shot = screenshots / "viewer.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0


def test_own_model_uploaded_on_the_zoo_is_explained(app_url: str, tmp_path: Path,
                                                    screenshots: Path) -> None:
    """The user's .keras file through the Zoo's form (a Lambda one refused first), then
    chosen on Explain in the same session: its Grad-CAM overlay on a sample."""
    require_chromium()
    import keras

    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="mine_conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "mine.keras")
    y = keras.layers.Lambda(lambda t: t + 1.0)(inp)
    y = keras.layers.GlobalAveragePooling2D()(y)
    keras.Model(inp, keras.layers.Dense(2)(y)).save(tmp_path / "code.keras")

    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30_000)
        page.goto(f"{app_url}/zoo")
        expect(app_shell(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
        page.get_by_text("Add your own model").click()
        labels = page.get_by_label("Labels, in the order of the model's outputs")
        for name, expected in (("code.keras", "refused: the file holds Python code"),
                               ("mine.keras", "It is offered on every page")):
            page.locator('input[type="file"]').first.set_input_files(str(tmp_path / name))
            # The file goes up on its own request: submit only once it is there.
            expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()
            labels.fill("left,right")
            page.get_by_role("button", name="Check and add the model").click()
            expect(page.get_by_text(expected)).to_be_visible(timeout=120_000)
            wait_idle(page)
        expect(page.get_by_text("uploaded: in this session only")).to_be_visible()

        # Through the app's own navigation: a new URL would be a new session.
        page.get_by_test_id("stSidebarNav").get_by_text("Explain", exact=True).click()
        expect(sample_select(page)).to_be_visible(timeout=HEALTH_TIMEOUT_S * 1000)
        wait_idle(page)
        model = page.get_by_test_id("stSelectbox").filter(
            has=page.get_by_test_id("stWidgetLabel").get_by_text("Model", exact=True))
        model.get_by_role("combobox").click()
        page.get_by_role("option").filter(has_text="user:mine-").click()
        # Its sample list (every model's samples) replaces the Xception's: pick from it.
        expect(page.get_by_text("No labelled samples ship with user:mine-")).to_be_visible()
        wait_idle(page)
        choose_sample(page, FIRST)
        wait_for_overlay(page, FIRST)
        expect(overlay_image(page, FIRST)).to_be_visible()
        expect(page.get_by_text("layer mine_conv")).to_be_visible()
        page.screenshot(path=str(screenshots / "own-model.png"), full_page=True)
