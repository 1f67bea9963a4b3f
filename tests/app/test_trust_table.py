"""The Evaluate page's trust table: ROAD per method over the built-in samples."""

from __future__ import annotations

import pytest

from tests.app.waiting import settle
from tests.conftest import app_page

pytestmark = pytest.mark.app


def test_the_trust_table_lists_each_method_with_its_verdicts():
    at = app_page("views/evaluate.py")
    next(m for m in at.multiselect if m.label == "Methods").set_value(["gradcam"]).run()
    next(n for n in at.number_input if n.label.startswith("Images")).set_value(1).run()
    at = settle(at.button(key="trust_start").click(), timeout_s=300)
    assert not at.exception
    tables = [d.value for d in at.dataframe]
    table = next(t for t in tables if "road_combined" in t.columns)
    row = table.iloc[0]
    assert row["method"] == "gradcam" and row["n"] == 1
    assert row["better"] + row["indistinguishable"] + row["worse"] == 1
    assert row["road_low"] <= row["road_combined"] <= row["road_high"]
