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


def faithfulness(curves: dict) -> go.Figure:
    """Deletion and insertion curves (Petsiuk et al. 2018) of each method's map, with the
    random maps' curves dotted: a faithful map falls faster and rises faster."""
    figure = go.Figure()
    first = next(iter(curves.values()))
    for part, dash in (("deletion", "solid"), ("insertion", "dash")):
        for title, f in curves.items():
            auc = getattr(f, f"{part}_auc")
            figure.add_trace(go.Scatter(
                x=f.fractions, y=getattr(f, part), mode="lines", line={"dash": dash},
                name=f"{title} {part} (AUC {auc:.3f})"))
        figure.add_trace(go.Scatter(
            x=first.fractions, y=getattr(first, f"random_{part}"), mode="lines",
            line={"dash": "dot", "color": "#9E9E9E"},
            name=f"random {part} (AUC {getattr(first, f'random_{part}_auc'):.3f})"))
    figure.update_layout(
        xaxis={"title": "fraction of pixels removed / inserted", "range": [0, 1]},
        yaxis={"title": "probability of the class", "range": [0, 1.02]},
        height=360, margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def sanity(layers: list[str], spearman: list[float], empty: list[bool],
           title: str) -> go.Figure:
    """Rank correlation with the original map as layers are randomised from the top; an
    empty map (ρ set to 0) is drawn as an open grey marker, not as a measured 0."""
    notes = [f"{layer}{' (empty map)' if e else ''}" for layer, e in zip(layers, empty,
                                                                          strict=True)]
    figure = go.Figure(go.Scatter(
        x=list(range(1, len(layers) + 1)), y=spearman, mode="lines+markers",
        marker={"symbol": ["circle-open" if e else "circle" for e in empty],
                "color": ["#9E9E9E" if e else "#4FC3F7" for e in empty], "size": 9},
        text=notes, hovertemplate="randomised down to %{text}<br>ρ = %{y:.3f}<extra></extra>",
        name=title))
    figure.add_hline(y=0, line={"color": "#9E9E9E", "dash": "dot"})
    figure.update_layout(
        xaxis={"title": "layers randomised, from the output down"},
        yaxis={"title": f"Spearman ρ of the {title} map", "range": [-1.05, 1.05]},
        height=320, margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure
