"""`medlens models list|show` and `medlens samples export`: the built-in models' cards,
a model's layer table, and their labelled samples as files."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from core.cli.common import (
    BadInput,
    Parser,
    chosen_card,
    load_classifier,
    print_result,
)
from core.models import cards


def models_arguments(models: Parser) -> None:
    models_cmd = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = models_cmd.add_parser("list", help="every model's card")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=models_list)
    show = models_cmd.add_parser("show", help="one model's card; --layers adds its layer "
                                 "(or ONNX node) table")
    show.add_argument("id", nargs="?", metavar="ID", help="a built-in model")
    show.add_argument("--model-file", type=Path, metavar="PATH",
                      help="your own .keras or .onnx model instead (needs --labels)")
    show.add_argument("--labels", metavar="A,B,...",
                      help="--model-file's labels, in the order of its outputs")
    show.add_argument("--preprocess", metavar="KEY=VALUE,...",
                      help="--model-file's input, as for predict")
    show.add_argument("--runtime", choices=("keras", "onnx"),
                      help="the table of this runtime's model (the VGG16's Keras port: keras)")
    show.add_argument("--layers", action="store_true",
                      help="load the model and add its summary and layer table")
    show.add_argument("--graph", action="store_true",
                      help="load the Keras model and add its layer graph: each layer's output "
                           "shape, parameters, inputs and receptive field in input pixels")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=models_show)


def samples_arguments(samples: Parser) -> None:
    samples_cmd = samples.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = samples_cmd.add_parser(
        "export", help="write them as DIR/<model-id>/<label>/<file>, and the segmentation "
                       "volumes as DIR/<model-id>/<name>.nii.gz with <name>.truth.nii.gz")
    export.add_argument("dir", type=Path)
    export.set_defaults(run=samples_export)


def models_list(args: argparse.Namespace) -> int:
    found = [c.to_dict() for c in cards()]
    text = "\n".join(f"{c['id']:22} {c['runtime']:6} {c['task']:15} {c['purpose']}"
                     for c in found)
    print_result(args, found, text)
    return 0


def models_show(args: argparse.Namespace) -> int:
    from core.models.architecture import card_facts

    if (args.id is None) == (args.model_file is None):
        raise BadInput("models show: give a model ID or --model-file PATH (one of them)")
    args.model = args.id
    c = chosen_card(args)  # every argument checked before the slow load
    if c is not None and args.graph:
        if args.runtime == "onnx" or "keras" not in c.runtimes:
            raise BadInput(f"--graph: {c.id} on onnx has no Keras layer graph "
                           f"(runtimes: {', '.join(c.runtimes)})")
        args.runtime = "keras"  # the VGG16: its Keras port
    if c is not None and args.runtime is not None:
        from core.models import check_runtime

        check_runtime(c, args.runtime)
    table = graph = None
    if args.layers or args.graph or c is None:  # a file's card is known once it is loaded
        from core.models.architecture import architecture

        classifier = load_classifier(args)
        c, table = classifier.card, architecture(classifier) if args.layers else None
        if args.graph:
            if classifier.keras_model is None:
                raise BadInput(f"--graph: {c.id} is an ONNX model: no Keras layer graph")
            from core.inside.graph import layer_graph

            graph = layer_graph(classifier.keras_model)
    facts = card_facts(c)
    text = [f"{c.id}: {c.name}", *(f"  {k}: {v}" for k, v in facts.items())]
    payload = c.to_dict()
    if table is not None:
        payload |= table.to_dict()
        text += ["", f"{table.summary_text()}"]
        text += [f"  note: {note}" for note in table.notes]
        text.append(f"{'path':56} {'type':22} {'output shape':24} {'parameters':>12}")
        text += [f"{layer.path:56} {layer.type:22} {layer.output_shape:24} "
                 f"{layer.parameters:>12,}" for layer in table.layers]
    if graph is not None:
        payload["graph"] = graph.to_dict()
        text += ["", f"{'path':56} {'output shape':20} {'parameters':>12} {'receptive field':>16}"]
        text += [f"{n.path:56} {n.shape_text:20} {n.parameters:>12,} {_field(n):>16}"
                 for n in graph.nodes]
    print_result(args, payload, "\n".join(text))
    return 0


def _field(node) -> str:
    """A layer's receptive field in words: "19x19 px"; "whole image" for a layer that
    sees it all (global pooling, Dense); "unknown" for a spatial layer whose arithmetic
    is not known (a custom layer that resizes)."""
    if node.receptive is None:
        spatial = node.output_shape is not None and len(node.output_shape) == 3
        return "unknown" if spatial and node.type != "InputLayer" else "whole image"
    h, w = (f"{v:g}" for v in node.receptive.size)
    return f"{h}x{w} px"


def samples_export(args: argparse.Namespace) -> int:
    from core.models.samples import samples

    out: Path = args.dir
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    count = 0
    for c in cards():
        for s in samples(c):
            target = out / c.id / s.label / s.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, target)
            count += 1
    # The segmentation models' volumes, built in memory from the data packages, as NIfTI
    # files with their ground truth beside them (`medlens segment ... --truth`).
    from core.segment import data
    from core.segment.write import write_nifti, write_volume

    for s in data.samples():
        folder = out / s.model
        folder.mkdir(parents=True, exist_ok=True)
        write_volume(s.study, folder / f"{s.file}.nii.gz")
        if s.truth is not None:
            write_nifti(s.truth, folder / f"{s.file}.truth.nii.gz")
        count += 1
    print(f"{count} samples written under {out}")
    return 0
