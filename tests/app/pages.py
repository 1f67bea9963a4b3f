"""What the page tests read off a page's element tree."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest


def model_cells(at: AppTest, count: int) -> list[list]:
    """Each model's cells of Compare's side-by-side: one row of columns per aspect (so the
    rows stay level), the i-th column of every row being model i's."""
    columns = at.get_by_key("compare_columns").columns
    assert len(columns) % count == 0
    return [columns[i::count] for i in range(count)]


def displayed(markdown: str) -> str:
    """What a page's markdown source reads as once the escapes of
    `dashboard.components.text.literal` are undone (numeric character references, the
    invisible word joiners, backslash escapes): the text as shown."""
    text = re.sub(r"(?<!\\)&#(\d+);", lambda m: chr(int(m[1])), markdown)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text.replace("\u2060", ""))
