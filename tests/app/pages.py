"""What the page tests read off a page's element tree."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def model_cells(at: AppTest, count: int) -> list[list]:
    """Each model's cells of Compare's side-by-side: one row of columns per aspect (so the
    rows stay level), the i-th column of every row being model i's."""
    columns = at.get_by_key("compare_columns").columns
    assert len(columns) % count == 0
    return [columns[i::count] for i in range(count)]
