"""Plotly figures the pages show."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def probabilities_height(classes: int) -> int:
    """The pixel height of `probabilities` for this many classes."""
    return 60 + 40 * classes


def probabilities(probabilities: dict[str, float], predicted: str,
                  height: int | None = None) -> go.Figure:
    """Horizontal bars, one per class, the predicted one highlighted; `height` (pixels)
    lets side-by-side charts of models with fewer classes stay as tall as the others."""
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
        height=height or probabilities_height(len(labels)),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def faithfulness(curves: dict, columns: int = 3) -> go.Figure:
    """ROAD curves (Rong et al. 2022) as small multiples, one plot per method: p(class)
    with the most relevant pixels imputed (MoRF, solid: lower is better) and the least
    relevant (LeRF, dashed: higher is better), each over the band its random maps span
    across seeds (shaded). A method without ROAD shows its deletion and insertion."""
    titles = [f"{title}: ROAD {f.road.map.combined:+.3f}" if f.road is not None else title
              for title, f in curves.items()]
    rows = -(-len(curves) // columns)
    cols = min(columns, len(curves))
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=True,
                           horizontal_spacing=0.04, vertical_spacing=0.18 / max(rows, 1))
    parts = {"morf": ("MoRF", "#E57373", "solid"), "lerf": ("LeRF", "#4FC3F7", "dash")}
    for k, f in enumerate(curves.values()):
        row, col = divmod(k, cols)
        where = {"row": row + 1, "col": col + 1}
        if f.road is None:
            for part, dash in (("deletion", "solid"), ("insertion", "dash")):
                figure.add_trace(go.Scatter(x=f.fractions, y=getattr(f, part), mode="lines",
                                            line={"dash": dash}, name=part,
                                            showlegend=False), **where)
            continue
        x = f.road.map.percentiles
        for part, (name, colour, dash) in parts.items():
            low, high = f.road.random_band(part)
            # The band: its upper edge, then the lower edge filled up to it.
            figure.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0},
                                        hoverinfo="skip", showlegend=False), **where)
            figure.add_trace(go.Scatter(
                x=x, y=low, mode="lines", line={"width": 0}, fill="tonexty",
                fillcolor=_transparent(colour), name=f"{name} of random maps (95% over seeds)",
                legendgroup=f"random {part}", showlegend=k == 0, hoverinfo="skip"), **where)
            figure.add_trace(go.Scatter(
                x=x, y=getattr(f.road.map, part), mode="lines+markers",
                line={"color": colour, "dash": dash}, name=f"{name} of the map",
                legendgroup=part, showlegend=k == 0,
                hovertemplate=f"{name}: %{{x}}% removed, p = %{{y:.3f}}<extra></extra>"),
                **where)
    figure.update_xaxes(title_text="% of pixels removed", range=[0, 100])
    figure.update_yaxes(range=[0, 1.02])
    figure.update_yaxes(title_text="probability of the class", col=1)
    # The legend above the plots: below them it ran into the x axis' title.
    figure.update_layout(height=260 * rows + 90, margin={"l": 10, "r": 10, "t": 90, "b": 40},
                         legend={"orientation": "h", "yanchor": "top", "y": 0.98,
                                 "yref": "container", "xanchor": "left", "x": 0})
    return figure


def _transparent(colour: str, alpha: float = 0.2) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def sanity(layers: list[str], spearman: list[float], empty: list[bool],
           title: str, flat: list[bool] | None = None) -> go.Figure:
    """Rank correlation with the original map as layers are randomised from the top. An
    empty map (ρ set to 0) and a flat one (near-uniform: its ρ ranks noise) are drawn as
    open grey markers, not as measured values."""
    flat = flat or [False] * len(layers)
    unread = [e or f for e, f in zip(empty, flat, strict=True)]
    notes = [f"{layer}{' (empty map)' if e else ' (flat map)' if f else ''}"
             for layer, e, f in zip(layers, empty, flat, strict=True)]
    figure = go.Figure(go.Scatter(
        x=list(range(1, len(layers) + 1)), y=spearman, mode="lines+markers",
        marker={"symbol": ["circle-open" if u else "circle" for u in unread],
                "color": ["#9E9E9E" if u else "#4FC3F7" for u in unread], "size": 9},
        line={"color": "#9E9E9E" if all(unread) else "#4FC3F7"},
        text=notes, hovertemplate="randomised down to %{text}<br>ρ = %{y:.3f}<extra></extra>",
        name=title))
    figure.add_hline(y=0, line={"color": "#9E9E9E", "dash": "dot"})
    figure.update_layout(
        xaxis={"title": "layers randomised, from the output down"},
        yaxis={"title": f"Spearman ρ of the {title} map", "range": [-1.05, 1.05]},
        height=320, margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def confusion_matrix(matrix, labels: list[str], normalise: bool = False) -> go.Figure:
    """Counts, rows the true class and columns the predicted one (or each row as
    fractions of its true class). Plotly cannot select heatmap cells (its heatmap has no
    selectPoints, so a click returns nothing to Streamlit): an invisible square marker
    sits on every cell, and clicking a cell selects that marker, whose customdata is
    [true, predicted, count]."""
    counts = [[int(v) for v in row] for row in matrix]
    shown = counts
    if normalise:
        shown = [[v / sum(row) if sum(row) else 0.0 for v in row] for row in counts]
    text = [[f"{v}" if not normalise else f"{f:.0%}<br>({v})" for v, f in zip(row, frac,
                                                                             strict=True)]
            for row, frac in zip(counts, shown, strict=True)]
    figure = go.Figure(go.Heatmap(
        z=shown, x=labels, y=labels, colorscale="Blues", text=text, texttemplate="%{text}",
        hoverinfo="skip", showscale=False, zmin=0))
    cells = [(t, p) for t in range(len(labels)) for p in range(len(labels))]
    figure.add_trace(go.Scatter(
        x=[labels[p] for _, p in cells], y=[labels[t] for t, _ in cells], mode="markers",
        marker={"symbol": "square", "size": 40, "color": "#FFB300", "opacity": 0.0},
        selected={"marker": {"opacity": 0.45}}, unselected={"marker": {"opacity": 0.0}},
        customdata=[[labels[t], labels[p], counts[t][p]] for t, p in cells],
        hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}: "
                      "%{customdata[2]} image(s)<extra></extra>",
        showlegend=False))
    figure.update_layout(
        xaxis={"title": "predicted", "side": "bottom", "type": "category"},
        yaxis={"title": "true", "autorange": "reversed", "type": "category"},
        height=120 + 60 * len(labels), margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def roc_curves(curves: dict, auc: dict[str, float | None]) -> go.Figure:
    """One-vs-rest ROC curve of each class with its AUC in the legend; `curves[label]`
    is (fpr, tpr), or None where the set lacks positives or negatives (not drawn)."""
    figure = go.Figure()
    for label, curve in curves.items():
        if curve is None:
            continue
        fpr, tpr = curve
        figure.add_trace(go.Scatter(x=list(fpr), y=list(tpr), mode="lines",
                                    line={"shape": "linear"},
                                    name=f"{label} (AUC {auc[label]:.3f})"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line={"dash": "dot", "color": "#9E9E9E"}))
    figure.update_layout(
        xaxis={"title": "false positive rate", "range": [-0.02, 1.02]},
        yaxis={"title": "true positive rate", "range": [-0.02, 1.02]},
        height=380, margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def reliability(edges, confidence, accuracy, count, ece: float) -> go.Figure:
    """Reliability diagram (Guo et al. 2017): accuracy of each confidence bin as a bar,
    each bin's mean confidence as a marker, the diagonal of perfect calibration, and the
    expected calibration error."""
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    width = edges[1] - edges[0]
    filled = [i for i, c in enumerate(count) if c]
    figure = go.Figure(go.Bar(
        x=[centres[i] for i in filled], y=[accuracy[i] for i in filled], width=width * 0.95,
        name="accuracy in the bin", marker_color="#4FC3F7",
        customdata=[[count[i], confidence[i]] for i in filled],
        hovertemplate="confidence %{x:.2f} ± 0.05: accuracy %{y:.3f}, mean confidence "
                      "%{customdata[1]:.3f}, %{customdata[0]} image(s)<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=[confidence[i] for i in filled], y=[accuracy[i] for i in filled], mode="markers",
        marker={"color": "#E65100", "size": 9}, name="mean confidence of the bin",
        text=[f"n={count[i]}" for i in filled], hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines",
                                line={"dash": "dot", "color": "#9E9E9E"},
                                name="perfect calibration"))
    figure.update_layout(
        xaxis={"title": "confidence (probability of the predicted class)", "range": [0, 1]},
        yaxis={"title": "accuracy", "range": [0, 1.02]},
        height=380, margin={"l": 10, "r": 10, "t": 30, "b": 40},
        title={"text": f"ECE {ece:.3f}", "x": 0.01, "font": {"size": 14}},
    )
    return figure


def agreement(ids: list[str], pairs: list[dict]) -> go.Figure:
    """Two model-by-model heatmaps of how far their maps agree: IoU of the top-20% regions
    (0 to 1) and Spearman ρ (-1 to 1). `pairs` are {"a", "b", "iou_top20", "spearman"};
    the diagonal is a map against itself (1), a missing map leaves its cells blank."""
    from plotly.subplots import make_subplots  # only this chart needs subplots

    at = {name: i for i, name in enumerate(ids)}
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.18,
                           subplot_titles=("IoU of the top-20% regions", "Spearman ρ"))
    for col, (key, low) in enumerate((("iou_top20", 0.0), ("spearman", -1.0)), start=1):
        grid: list[list[float | None]] = [
            [1.0 if i == j else None for j in range(len(ids))] for i in range(len(ids))]
        for p in pairs:
            grid[at[p["a"]]][at[p["b"]]] = grid[at[p["b"]]][at[p["a"]]] = p[key]
        figure.add_trace(go.Heatmap(
            z=grid, x=ids, y=ids, zmin=low, zmax=1.0, colorscale="Viridis",
            text=[["" if v is None else f"{v:.2f}" for v in row] for row in grid],
            texttemplate="%{text}", hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            colorbar={"x": 0.41 if col == 1 else 1.0, "len": 0.9}), row=1, col=col)
    figure.update_yaxes(autorange="reversed")
    # The rows are the same models in both: the second's names ran into the first's colorbar.
    figure.update_yaxes(showticklabels=False, row=1, col=2)
    figure.update_layout(height=140 + 60 * len(ids), margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def slice_dice(per_slice: dict, current: int,
               held_out: tuple[int, int] | None = None) -> go.Figure:
    """Dice of each label on each slice (NaN where the truth slice is empty: no point), a
    line per label, the slice shown marked, the model's held-out slices shaded (first,
    last, 0-based) when the volume is its own training volume; a click on a point picks
    its slice."""
    figure = go.Figure()
    if held_out is not None:
        figure.add_vrect(x0=held_out[0] + 0.5, x1=held_out[1] + 1.5, fillcolor="#4FC3F7",
                         opacity=0.12, line_width=0, annotation_text="held out",
                         annotation_position="top left")
    for name, scores in per_slice.items():
        x = list(range(1, len(scores.values) + 1))
        figure.add_trace(go.Scatter(
            x=x, y=scores.values, mode="lines+markers", name=name, marker={"size": 4},
            line={"color": _rgb(scores.colour)} if getattr(scores, "colour", None) else None,
            hovertemplate=f"{name}: slice %{{x}}, Dice %{{y:.3f}}<extra></extra>"))
    figure.add_vline(x=current + 1, line={"color": "#90A4AE", "dash": "dot"})
    figure.update_layout(
        xaxis={"title": "slice (click a point to show it)"},
        yaxis={"title": "Dice", "range": [0, 1.02]},
        height=260, margin={"l": 10, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12, "x": 0},
    )
    return figure


def _rgb(colour: tuple[int, int, int]) -> str:
    return f"rgb({colour[0]}, {colour[1]}, {colour[2]})"


# The curves of a training run: each metric's training value solid, its validation twin
# ("val_" + name) dashed in the same colour; the loss also per batch, faint.
_CURVE_COLOURS = ("#4FC3F7", "#FFB74D", "#81C784", "#E57373", "#BA68C8")


_CURVE_NAMES = {"f1": "macro F1", "dice": "mean Dice"}


def training_curves(epochs: list[dict], batches: list[tuple[float, float]],
                    best_epoch: int | None, total_epochs: int) -> go.Figure:
    """Loss (left) and the other metrics (right) per epoch, training solid, validation
    dashed; the loss of every batch faint behind; the kept checkpoint's epoch marked."""
    names = [k for k in (epochs[0] if epochs else {}) if k not in ("epoch", "seconds")]
    losses = [k for k in names if k.endswith("loss")]
    others = [k for k in names if k not in losses]
    # The right panel holds training accuracy too: "metrics", not "validation metrics".
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "metrics (training and "
                                                           "validation)" if others else " "),
                           horizontal_spacing=0.08)
    x = [row["epoch"] for row in epochs]
    if batches:
        figure.add_trace(go.Scatter(x=[b[0] for b in batches], y=[b[1] for b in batches],
                                    mode="lines", name="loss per batch",
                                    line={"color": "rgba(79,195,247,0.25)", "width": 1},
                                    hovertemplate="epoch %{x:.2f}: %{y:.4f}<extra></extra>"),
                         row=1, col=1)
    # One colour per quantity across both panels, so the legend tells loss from accuracy.
    shown = 0
    for column, keys in ((1, losses), (2, others)):
        bases = list(dict.fromkeys(k.removeprefix("val_") for k in keys))
        for base in bases:
            colour = _CURVE_COLOURS[shown % len(_CURVE_COLOURS)]
            shown += 1
            shown_as = _CURVE_NAMES.get(base, base)
            for key, dash, words in ((base, "solid", "training"),
                                     (f"val_{base}", "dash", "validation")):
                if key not in keys:
                    continue
                figure.add_trace(go.Scatter(
                    x=x, y=[row.get(key) for row in epochs], mode="lines+markers",
                    name=f"{shown_as} ({words})", line={"color": colour, "dash": dash},
                    hovertemplate=f"{shown_as} ({words}), epoch %{{x}}: "
                                  "%{y:.4f}<extra></extra>"),
                    row=1, col=column)
    if best_epoch:
        for column in (1, 2):
            figure.add_vline(x=best_epoch, line={"color": "#9E9E9E", "dash": "dot"},
                             row=1, col=column)
        figure.add_annotation(x=best_epoch, y=1.0, yref="paper", text=f"kept: epoch {best_epoch}",
                              showarrow=False, font={"color": "#9E9E9E"}, xanchor="left")
    for column in (1, 2):
        figure.update_xaxes(title="epoch", range=[0, max(total_epochs, 1) + 0.2],
                            row=1, col=column)
    # Top margin: room for the panel titles below plotly's toolbar, which hides them else.
    figure.update_layout(height=360, margin={"l": 10, "r": 10, "t": 60, "b": 40},
                         legend={"orientation": "h", "y": -0.25})
    return figure


# -- Inside: the architecture, the statistics of its layers, teaching views ------------------

_NODE_COLOURS = {"conv": "#4FC3F7", "pool": "#81C784", "norm": "#9E9E9E", "dense": "#FFB74D",
                 "attention": "#BA68C8", "model": "#E57373", "other": "#B0BEC5"}


def _node_colour(node) -> str:
    kind = node.type.lower()
    if node.nested:
        return _NODE_COLOURS["model"]
    for word, key in (("conv", "conv"), ("pool", "pool"), ("normalization", "norm"),
                      ("dense", "dense"), ("attention", "attention")):
        if word in kind:
            return _NODE_COLOURS[key]
    return _NODE_COLOURS["other"]


def layer_graph(graph, positions: dict[str, tuple[float, float]], selected: str | None,
                row_px: int = 26) -> go.Figure:
    """The layer graph top to bottom, one marker per layer (a folded backbone is one red
    marker), edges as lines, its name, output shape and parameters beside it; hovering
    tells the receptive field. Point `i` of trace 1 is `graph.nodes[i]`, so a click names
    its layer."""
    nodes = list(graph.nodes)
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for source, target in graph.edges:
        if source in positions and target in positions:
            (x0, y0), (x1, y1) = positions[source], positions[target]
            edge_x += [x0, x1, None]
            edge_y += [-y0, -y1, None]
    hover = []
    for n in nodes:
        field = (f"receptive field {n.receptive.size[0]}x{n.receptive.size[1]} px"
                 if n.receptive is not None else "receptive field: the whole input")
        hover.append(f"{n.path}<br>{n.type} {n.shape_text}<br>{n.parameters:,} parameters"
                     f"<br>{field}")
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", hoverinfo="skip",
                                line={"color": "#607D8B", "width": 1}, showlegend=False))
    figure.add_trace(go.Scatter(
        x=[positions[n.path][0] for n in nodes], y=[-positions[n.path][1] for n in nodes],
        mode="markers+text", showlegend=False,
        marker={"size": [16 if n.path == selected else 10 for n in nodes],
                "color": [_node_colour(n) for n in nodes],
                "symbol": ["square" if n.nested else "circle" for n in nodes],
                "line": {"width": [3 if n.path == selected else 0 for n in nodes],
                         "color": "#FFFFFF"}},
        text=[f"{n.name} {n.shape_text}" + (f" · {n.parameters:,}" if n.parameters else "")
              for n in nodes],
        textposition="middle right", textfont={"size": 11},
        customdata=[n.path for n in nodes],
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    columns = max((p[0] for p in positions.values()), default=0)
    rows = max((p[1] for p in positions.values()), default=0)
    figure.update_layout(
        height=int(min(max(300, row_px * (rows + 2)), 4000)),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"visible": False, "range": [-0.5, columns + 3.5]},
        yaxis={"visible": False, "range": [-rows - 1, 1]}, dragmode="pan",
        clickmode="event+select")
    return figure


def layer_statistics(stats: list) -> go.Figure:
    """Per layer over the samples: the mean activation (left) and the sparsity, the share
    of exact zeros (right); dead channels in the hover."""
    names = [s.layer for s in stats]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean activation",
                                                           "sparsity (fraction of zeros)"),
                           shared_yaxes=True, horizontal_spacing=0.04)
    hover = [f"{s.layer}<br>{s.dead_channels} dead of {s.shape[0] if s.shape else '?'}"
             for s in stats]
    figure.add_trace(go.Bar(y=names, x=[s.mean for s in stats], orientation="h",
                            marker_color="#4FC3F7", hovertext=hover, showlegend=False,
                            hovertemplate="%{hovertext}<br>mean %{x:.4f}<extra></extra>"),
                     row=1, col=1)
    figure.add_trace(go.Bar(y=names, x=[s.sparsity for s in stats], orientation="h",
                            marker_color="#FFB74D", hovertext=hover, showlegend=False,
                            hovertemplate="%{hovertext}<br>sparsity %{x:.3f}<extra></extra>"),
                     row=1, col=2)
    figure.update_xaxes(range=[0, 1], row=1, col=2)
    figure.update_yaxes(autorange="reversed", tickfont={"size": 10})
    figure.update_layout(height=max(300, 16 * len(names) + 80),
                         margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return figure


def separation(rows: list[dict], labels: list[str]) -> go.Figure:
    """How well each class is told from the rest by each layer's pooled features (leave-
    one-out nearest centroid), one line per class and one for all, layers in order."""
    x = [r["layer"] for r in rows]
    figure = go.Figure()
    for k, label in enumerate(labels):
        figure.add_trace(go.Scatter(
            x=x, y=[r["classes"].get(label) for r in rows], mode="lines+markers",
            name=label, line={"color": _CURVE_COLOURS[k % len(_CURVE_COLOURS)]},
            hovertemplate=f"{label}, %{{x}}: %{{y:.3f}}<extra></extra>"))
    figure.add_trace(go.Scatter(x=x, y=[r["accuracy"] for r in rows], mode="lines",
                                name="all classes", line={"color": "#FFFFFF", "dash": "dot"},
                                hovertemplate="all, %{x}: %{y:.3f}<extra></extra>"))
    figure.update_layout(height=380, yaxis={"range": [0, 1.05],
                                            "title": "leave-one-out accuracy"},
                         xaxis={"tickangle": -45, "tickfont": {"size": 9}},
                         margin={"l": 10, "r": 10, "t": 20, "b": 120},
                         legend={"orientation": "h", "y": 1.1})
    return figure


def bars(values, labels: list[str], title: str, highlight: int | None = None,
         height: int = 260, fmt: str = ".4f") -> go.Figure:
    """Vertical bars with their values: kernel norms, slice weights, a softmax's steps."""
    colours = ["#4FC3F7" if i == highlight else "#607D8B" for i in range(len(labels))]
    figure = go.Figure(go.Bar(x=labels, y=list(values), marker_color=colours,
                              hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra></extra>"))
    figure.update_layout(height=height, title={"text": title, "font": {"size": 13}},
                         margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return figure


def numbers_grid(values, hover: list[list[str]] | None, title: str,
                 highlight: tuple[int, int, int, int] | None = None,
                 colorscale: str = "Viridis",
                 height: int = 320) -> go.Figure:
    """A small 2-D array as a heatmap with each number written in its cell (a patch of the
    image, a kernel, a layer's output); `hover` (one text per cell) is shown under the
    cursor: the multiply-add that made the cell. `highlight` (row, column, height, width)
    is outlined: the window a filter reads, or one output cell."""
    import numpy as np

    values = np.asarray(values, float)
    figure = go.Figure(go.Heatmap(
        z=values, colorscale=colorscale, showscale=False, text=np.round(values, 2),
        texttemplate="%{text}", textfont={"size": 10},
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>" if hover else
        "row %{y}, column %{x}: %{z:.4f}<extra></extra>"))
    if highlight is not None:
        r, c, h, w = highlight
        figure.add_shape(type="rect", x0=c - 0.5, x1=c + w - 0.5, y0=r - 0.5, y1=r + h - 0.5,
                         line={"color": "#FF5252", "width": 3})
    figure.update_layout(height=height, title={"text": title, "font": {"size": 13}},
                         xaxis={"dtick": 1}, yaxis={"autorange": "reversed", "dtick": 1,
                                                    "scaleanchor": "x"},
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def norm_summary(rows: list[dict]) -> go.Figure:
    """Per convolution in order: the median filter norm, with a bar from the smallest to
    the largest."""
    names = [r["layer"] for r in rows]
    medians = [r["median"] for r in rows]
    figure = go.Figure(go.Scatter(
        x=names, y=medians, mode="markers", marker={"color": "#4FC3F7", "size": 8},
        error_y={"type": "data", "symmetric": False, "color": "#607D8B",
                 "array": [r["max"] - r["median"] for r in rows],
                 "arrayminus": [r["median"] - r["min"] for r in rows]},
        customdata=[[r["filters"], r["min"], r["max"]] for r in rows],
        hovertemplate="%{x}: %{customdata[0]} filters, median %{y:.3f}, from "
                      "%{customdata[1]:.3f} to %{customdata[2]:.3f}<extra></extra>"))
    figure.update_layout(height=340, yaxis={"title": "filter norm (L2)"},
                         xaxis={"tickangle": -45, "tickfont": {"size": 9}},
                         margin={"l": 10, "r": 10, "t": 20, "b": 120})
    return figure


def attention_distance(distance, patch_px: int) -> go.Figure:
    """Mean attention distance (Dosovitskiy et al. 2021, Fig. 7): one dot per head, layers
    along x. Small: the head looks near its patch; large: across the image."""
    figure = go.Figure()
    layers, heads = distance.shape
    for h in range(heads):
        figure.add_trace(go.Scatter(
            x=list(range(1, layers + 1)), y=distance[:, h], mode="markers", name=f"head {h + 1}",
            marker={"size": 10, "color": _CURVE_COLOURS[h % len(_CURVE_COLOURS)]},
            hovertemplate=f"block %{{x}}, head {h + 1}: %{{y:.1f}} px<extra></extra>"))
    figure.update_layout(height=300, xaxis={"title": "encoder block", "dtick": 1},
                         yaxis={"title": f"mean distance (px; patch {patch_px} px)"},
                         margin={"l": 10, "r": 10, "t": 20, "b": 40})
    return figure
