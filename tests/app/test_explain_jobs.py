"""Explain on jobs (AppTest, the real Xception): a widget that does not change a job's
spec (colormap, opacity, another method beside, the AUC toggle) neither resubmits nor
restarts a running job; Cancel stops it and a rerun does not start it again."""

from __future__ import annotations

import pytest

from core.jobs import CANCELLED, RUNNING, executor
from tests.app.pages import displayed
from tests.app.waiting import running, settle, spy_on_submit
from tests.conftest import app_page

LONG_RISE = 20_000  # masks: minutes on this CPU, so it is still running while we look


def progress_texts(at) -> list[str]:
    return [displayed(p.proto.text) for p in at.get("progress")]


@pytest.fixture
def submitted(monkeypatch) -> list:
    return spy_on_submit(monkeypatch)


def test_a_look_change_while_rise_runs_keeps_its_job(brain_samples, submitted):
    at = app_page("views/explain.py")
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    settle(next(s for s in at.selectbox if s.label == "Sample").set_value(sample))
    at.multiselect[0].set_value(["rise"]).run()
    at.number_input(key="option_rise_samples").set_value(LONG_RISE).run()
    # The 500-mask RISE that choosing the method started is no longer shown: stop it.
    for handle in running("explain", method="rise"):
        if handle.spec.params["options"]["samples"] != LONG_RISE:
            handle.cancel()
    rise = next(h for h in submitted if h.spec.params.get("options", {}).get("samples")
                == LONG_RISE)
    while rise.progress == 0.0 and not rise.over:  # until it has made some masks
        rise.wait(0.1)
    assert any(t.startswith("RISE: ") for t in progress_texts(at.run()))
    started, before = rise.started, rise.progress

    count = len(submitted)
    next(s for s in at.selectbox if s.label == "Colormap").set_value("viridis").run()
    next(s for s in at.slider if s.label == "Opacity").set_value(0.7).run()
    at.multiselect[0].set_value(["rise", "gradcam"]).run()
    next(t for t in at.toggle if t.label.startswith("Faithfulness (ROAD)")).set_value(
        False).run()
    assert not at.exception
    again = [h for h in submitted[count:] if h.spec.params.get("method") == "rise"]
    assert len(again) == 4 and all(h is rise for h in again)
    assert rise.state == RUNNING and rise.started == started and rise.progress >= before
    assert len(running("explain", method="rise")) == 1

    # Cancel from the page: the job ends, the page says so, and reruns leave it be.
    at.button(key=f"cancel_{rise.key}").click().run()
    assert rise.wait(30) and rise.state == CANCELLED
    settle(at)
    assert any(displayed(i.value).startswith("RISE: cancelled after") for i in at.info)
    assert not running("explain", method="rise")
    assert "Grad-CAM for 'glioma' on Te-gl_0010.jpg" in [
        img.caption for element in at.get("image") for img in element.proto.imgs]
    # Asked again, it starts afresh: a new job under the same key.
    at.button(key=f"again_{rise.key}").click().run()
    fresh = executor().get(rise.key)
    assert fresh is not None and fresh is not rise and not fresh.over
    fresh.cancel()
    assert fresh.wait(30)
