"""`medlens inside`: a layer's feature maps for one image, written as .npy (C, h, w), with
their mean, sparsity and dead channels."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.cli.common import (
    BadInput,
    Parser,
    add_image_options,
    add_model_options,
    chosen_card,
    image_index,
    load_classifier,
    metadata_answers,
    print_result,
    read_study,
)


def arguments(inside: Parser) -> None:
    add_model_options(inside)
    inside.add_argument("path", metavar="PATH")
    inside.add_argument("--layer", required=True, metavar="NAME",
                        help="the layer's path (xception/block1_conv1 inside a nested model) "
                             "or its name where only one layer has it; `medlens models show "
                             "ID --layers` lists them")
    inside.add_argument("--out", required=True, type=Path, metavar="DIR")
    add_image_options(inside)
    inside.add_argument("--json", action="store_true")
    inside.set_defaults(run=inside_cmd)


def inside_cmd(args: argparse.Namespace) -> int:
    from core.inside.features import feature_maps, find_layer, map_stats

    args.runtime = None
    c = chosen_card(args)
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: exists and is not a folder")
    if c is not None:
        if "keras" not in c.runtimes:
            raise BadInput(f"{c.id}: no Keras model to look inside (runtimes: "
                           f"{', '.join(c.runtimes)})")
        args.runtime = "keras"  # feature maps need Keras (the VGG16: its Keras port)
        metadata_answers(args, c)
    study = read_study(args.path)
    frame, plane = image_index(study, args)
    classifier = load_classifier(args)
    c = classifier.card
    model = classifier.keras_model
    if model is None:
        raise BadInput(f"{c.id}: an ONNX model: feature maps need a Keras model")
    layer = find_layer(model, args.layer)
    model_input = c.prepare(study, frame=frame, plane=plane,
                            metadata=metadata_answers(args, c))
    maps = feature_maps(model, model_input.inputs, layer)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{Path(args.path).stem}.{layer.replace('/', '_')}.npy"
    np.save(target, maps)
    stats = map_stats(layer, maps)
    payload = stats.to_dict()
    print_result(args, payload, f"{layer} {tuple(stats.shape)}: mean {stats.mean:.4g}, "
                 f"sparsity {stats.sparsity:.1%}, {stats.dead_channels} dead channels: {target}")
    return 0
