"""Plotly figures the pages show."""

from __future__ import annotations

import plotly.graph_objects as go


def probabilities(probabilities: dict[str, float], predicted: str) -> go.Figure:
    """Horizontal bars, one per class, the predicted one highlighted."""
    labels = list(probabilities)
    values = [probabilities[label] for label in labels]
    colours = ["#4FC3F7" if label == predicted else "#607D8B" for label in labels]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1%}" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": "probability"},
        yaxis={"autorange": "reversed"},
        height=60 + 40 * len(labels),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure
