"""Inside page speed: the time of each view on a model, as seconds and as a multiple of
one compiled forward pass (batch 1), and the separation table (which layer first tells
a class from the others).

Views (one function each, `VIEWS`):
- graph: `layer_graph(model)` and its folded/unfolded layouts;
- feature_maps: one layer's maps for one image, cold (the probe built and traced: what
  the first click on a layer costs) and warm (median of repeats);
- filters: the first convolution's kernels as pictures and a deep layer's norms;
- layer_stats: mean, sparsity and dead channels of every spatial layer over the built-in
  samples (one multi-output probe, in chunks);
- separation: leave-one-out nearest-centroid accuracy per class and layer over them;
- convolution: the teaching view (a patch of the first convolution with every cell's
  multiply-add in words, max pooling of the layer's own output, the softmax's steps);
- maximise: activation maximisation of the first class (`--steps` steps; the page's
  default is 100: the seconds per step are printed);
- attention (a ViT): its attention maps, rollout, gradient-weighted rollout and mean
  attention distance.

`--model vit` trains the Train page's ViT recipe for `--epochs` epochs on its built-in
task (brain tissue patches) and times the views on it, over its held-out samples.

    .venv/bin/python bench/inside_speed.py [--model braintumor-xception|vit] [--label glioma]
                                           [--repeats 5] [--steps 5] [--table]

Prints a table of times, the separation rows of the block outputs for --label (every
spatial layer with --table), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core import models  # noqa: E402
from core.explain.backend.graph import spatial_layers  # noqa: E402
from core.inside import attention  # noqa: E402
from core.inside.features import (  # noqa: E402
    feature_maps,
    first_separating,
    layer_stats,
    separation,
    statistics_layers,
    token_grid,
)
from core.inside.filters import (  # noqa: E402
    first_convolution,
    kernel_norms,
    kernel_parts,
    kernel_pictures,
    kernels,
)
from core.inside.graph import layer_graph  # noqa: E402
from core.inside.maximise import ClassUnit, input_range, maximise  # noqa: E402
from core.inside.teaching import (  # noqa: E402
    convolution_cell,
    first_layer_patch,
    formula,
    logits,
    max_pool,
    softmax_steps,
)
from core.models.samples import sample_batch  # noqa: E402
from core.nets.vit import depth_of, patch_grid  # noqa: E402


def timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def forward(model, x: np.ndarray, repeats: int) -> float:
    """Median seconds of one compiled forward pass (batch 1), warm."""
    model.predict_on_batch(x[None])
    return statistics.median(timed(lambda: model.predict_on_batch(x[None]))[0]
                             for _ in range(repeats))


def view_graph(model, context: dict) -> dict:
    seconds, graph = timed(lambda: layer_graph(model))
    nested = [n.path for n in graph.nodes if n.nested]
    layout, _ = timed(lambda: graph.folded(set(nested)).layout())
    return {"seconds": seconds, "layout_seconds": layout, "nodes": len(graph.nodes)}


def view_feature_maps(model, context: dict) -> dict:
    x, layer, repeats = context["x"], context["layer"], context["repeats"]
    def maps_of():
        maps = feature_maps(model, x, layer)
        return token_grid(maps, patch_grid(model)) if maps.ndim == 2 else maps

    cold, maps = timed(maps_of)
    warm = statistics.median(timed(maps_of)[0] for _ in range(repeats))
    return {"seconds": warm, "cold_seconds": cold, "layer": layer,
            "shape": list(np.shape(maps))}


def view_filters(model, context: dict) -> dict:
    first = first_convolution(model)
    seconds, _ = timed(lambda: (kernel_pictures(kernels(model, first)),
                                kernel_norms(model, context["deep"])))
    return {"seconds": seconds, "first": first, "deep": context["deep"]}


def view_layer_stats(model, context: dict) -> dict:
    seconds, stats = timed(lambda: layer_stats(model, context["batch"],
                                               statistics_layers(model)))
    return {"seconds": seconds, "layers": len(stats), "images": len(context["batch"]),
            "dead_channels": sum(s.dead_channels for s in stats)}


def view_separation(model, context: dict) -> dict:
    seconds, rows = timed(lambda: separation(model, context["batch"], context["labels"],
                                             statistics_layers(model), with_input=True))
    context["rows"] = rows
    return {"seconds": seconds, "layers": len(rows)}


def view_convolution(model, context: dict) -> dict:
    def lesson():
        found = first_layer_patch(model, context["x"], size=8)
        computed = found.computed()
        words = [formula(convolution_cell(found.patch, found.kernel, found.bias,
                                          i * found.stride[0], j * found.stride[1]))
                 for i in range(computed.shape[0]) for j in range(computed.shape[1])]
        pooled = max_pool(found.output[:8, :8])
        return words, pooled, softmax_steps(logits(model, context["x"]))

    seconds, _ = timed(lesson)
    return {"seconds": seconds}


def view_maximise(model, context: dict) -> dict:
    steps = context["steps"]
    batch = context["batch"]
    # grey samples (one channel three times) get a grey ascent, as the page gives them
    grey = batch.shape[-1] == 3 and bool(np.all(batch[..., :1] == batch))
    seconds, found = timed(lambda: maximise(model, ClassUnit(0), steps=steps, samples=batch,
                                            value_range=context["range"], grey=grey))
    return {"seconds": seconds, "steps": steps, "per_step": seconds / steps, "grey": grey,
            "activation": found.activation, "start": found.start,
            "samples_max": float(found.samples.max()),
            "samples_mean": float(found.samples.mean()),
            "samples_std": float(found.samples.std())}


def view_attention(model, context: dict) -> dict:
    if attention.attention_kind(model) != "vit":
        return {"seconds": float("nan"), "skipped": "no ViT attention"}
    x = context["x"]

    def views():
        maps = attention.attention_maps(model, x)
        return (attention.rollout(maps), attention.gradient_rollout(model, x),
                attention.mean_distance(model, maps, 4))

    views()  # traced once, as a page's first visit does
    seconds = statistics.median(timed(views)[0] for _ in range(context["repeats"]))
    return {"seconds": seconds}


VIEWS: dict[str, Callable[[object, dict], dict]] = {
    "graph": view_graph, "feature_maps": view_feature_maps, "filters": view_filters,
    "layer_stats": view_layer_stats, "separation": view_separation,
    "convolution": view_convolution, "maximise": view_maximise, "attention": view_attention,
}


def block_outputs(rows: list[dict]) -> list[dict]:
    """The rows of each block's output: the residual adds, the last activation of the
    entry convolutions and of the exit flow (the layers a reader names "block N")."""
    names = [r["layer"] for r in rows]
    kept = []
    for i, row in enumerate(rows):
        name = row["layer"].rsplit("/", 1)[-1]
        block = name.split("_")[0]
        later = [n.rsplit("/", 1)[-1].split("_")[0] for n in names[i + 1:]]
        if name.startswith("add") or (name.endswith("_act") and block not in later):
            kept.append(row)
    return kept


def _has_kernel(model, path: str) -> bool:
    try:
        return bool(kernel_parts(model, path))
    except ValueError:
        return False


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="braintumor-xception")
    parser.add_argument("--label", default="glioma")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--table", action="store_true", help="every layer's row")
    parser.add_argument("--steps", type=int, default=5, help="maximisation steps timed")
    parser.add_argument("--views", default=",".join(VIEWS),
                        help="the views to time, comma-separated (default: all)")
    parser.add_argument("--epochs", type=int, default=10, help="--model vit: its training")
    args = parser.parse_args()

    if args.model == "vit":
        from core.train.config import default_config
        from core.train.fit import train

        trained = train(default_config("vit", epochs=args.epochs))
        model, card = trained.model, trained.card
        args.label = args.label if args.label in card.labels else card.labels[0]
    else:
        classifier = models.load(args.model, "keras")
        model, card = classifier.keras_model, classifier.card
    batch, found = sample_batch(card)
    spatial = spatial_layers(model)
    deep = next(p for p in reversed(spatial) if _has_kernel(model, p))
    # A ViT's layer of interest is its last block's tokens (its spatial layers are only
    # the augmentation and the patch embedding).
    layer = (f"block{depth_of(model)}_add2" if attention.attention_kind(model) == "vit"
             else spatial[2])
    context = {"x": batch[0], "layer": layer, "deep": deep, "batch": batch,
               "labels": np.array([s.label for s in found]), "repeats": args.repeats,
               "steps": args.steps, "range": input_range(card.input_spec.scale)}
    base = forward(model, batch[0], args.repeats)
    results = {}
    print(f"{args.model}: {len(found)} samples, forward pass {base * 1000:.1f} ms (batch 1)")
    print(f"{'view':14} {'seconds':>9} {'x forward':>10}  notes")
    for name in args.views.split(","):
        result = VIEWS[name](model, context)
        results[name] = result
        notes = {k: (round(v, 4) if isinstance(v, float) else v)
                 for k, v in result.items() if k != "seconds"}
        print(f"{name:14} {result['seconds']:9.3f} {result['seconds'] / base:10.1f}  {notes}")

    if "rows" not in context:  # separation not asked for
        print(json.dumps({"model": args.model, "forward_seconds": base, "views": results}))
        return
    image_row, rows = context["rows"][0], context["rows"][1:]
    shown = [image_row, *(rows if args.table else block_outputs(rows))]
    labels = list(rows[0]["classes"])
    print(f"\nseparation (leave-one-out nearest centroid, {len(found)} samples): "
          + ("every spatial layer" if args.table else "block outputs"))
    print(f"{'layer':40} {'all':>5} " + " ".join(f"{label:>10}" for label in labels))
    for row in shown:
        print(f"{row['layer']:40} {row['accuracy']:5.2f} "
              + " ".join(f"{row['classes'][label]:10.2f}" for label in labels))
    first = first_separating(rows, args.label)
    first_block = first_separating(block_outputs(rows), args.label)
    ever = next((r["layer"] for r in rows if r["classes"][args.label] == 1.0), None)
    print(f"\n{args.label}: first told from the rest in every later layer: {first}; "
          f"in every later block output: {first_block}; first layer at 100%: {ever}")
    print(json.dumps({"model": args.model, "forward_seconds": base,
                      "views": results, "label": args.label, "first_separating": first,
                      "first_separating_block": first_block, "first_at_100": ever,
                      "blocks": block_outputs(rows)}))


if __name__ == "__main__":
    main()
