"""Compare at three models (AppTest, the real models): every aspect is one row, so each
model's input, bars and map start level with the others'."""

from __future__ import annotations

import json

from tests.app.pages import model_cells
from tests.app.waiting import settle
from tests.conftest import app_page

MODELS = ["braintumor-xception", "braintumor-vgg16", "pneumonia-xception"]


def test_page_keeps_three_models_level(brain_samples):
    """A third model with other labels (fewer bars, another domain): every aspect is
    still one row, so each model's input, bars and map start level with the others'."""
    at = app_page("views/compare.py")
    at.multiselect(key="compare_models").set_value(MODELS).run()
    sample = next(s for s in brain_samples if s.name == "Te-gl_0010.jpg")
    settle(at.selectbox(key="compare_sample").set_value(sample))
    assert not at.exception and not at.error
    cells = model_cells(at, 3)
    assert [c[0].subheader[0].value for c in cells] == MODELS
    rows = len(cells[0])
    for i in range(rows):  # each row holds the same kind of thing for every model
        kinds = {(len(c[i].get("image")), len(c[i].metric), len(c[i].get("plotly_chart")))
                 for c in cells}
        assert len(kinds) == 1, (i, kinds)
    bars = [json.loads(chart.proto.spec)["layout"]["height"]
            for chart in at.get("plotly_chart")[:3]]
    assert bars[0] == bars[1] == bars[2] == 220  # the 2-label model's bars as tall
