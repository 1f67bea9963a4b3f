"""`medlens explain`: one method's map for one image, written as .npy and as an overlay
PNG, with ROAD, deletion and insertion (--metrics) and the cascading-randomisation check
(--sanity-check) on request. The work runs as jobs; on a terminal their progress shows
on stderr."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core.cli.common import (
    BadInput,
    Parser,
    add_image_options,
    add_model_options,
    check_target,
    chosen_card,
    image_index,
    load_classifier,
    metadata_answers,
    method_names,
    method_options,
    print_result,
    read_study,
    run_job,
)


def arguments(explain: Parser) -> None:
    add_model_options(explain)
    explain.add_argument("--method", required=True, choices=method_names())
    explain.add_argument("path", metavar="PATH")
    explain.add_argument("--out", required=True, type=Path, metavar="DIR")
    explain.add_argument("--target", metavar="LABEL", help="class to explain (default: predicted)")
    explain.add_argument("--layer", metavar="NAME", help="layer (default: last spatial layer)")
    explain.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                         help="a method option, e.g. samples=50 or steps=256 (repeatable)")
    explain.add_argument("--runtime", choices=("keras", "onnx"),
                         help="run the model on this runtime (default: the card's; gradient "
                              "methods need keras)")
    explain.add_argument("--metrics", action="store_true",
                         help="add ROAD (MoRF, LeRF, combined) against random maps at the "
                              "method's resolution with a verdict, and deletion/insertion AUCs")
    explain.add_argument("--sanity-check", action="store_true",
                         help="add the cascading model-randomisation check (Spearman)")
    add_image_options(explain)
    explain.add_argument("--opacity", type=float, default=0.4)
    explain.add_argument("--colormap", default="jet")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(run=explain_cmd)


def explain_cmd(args: argparse.Namespace) -> int:
    from PIL import Image

    from core.explain import black, find_method
    from core.explain.overlay import COLORMAPS, overlay
    from core.jobs import explain_job, faithfulness_job, sanity_job
    from core.models.domain import check as check_domain

    c = chosen_card(args)
    if args.colormap not in COLORMAPS:
        raise BadInput(f"--colormap: unknown '{args.colormap}' (known: {', '.join(COLORMAPS)})")
    if not 0.0 <= args.opacity <= 1.0:
        raise BadInput(f"--opacity: {args.opacity} is not between 0 and 1")
    if c is not None:
        check_target(args.target, c)
        metadata_answers(args, c)
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: exists and is not a folder")
    options = method_options(args.option)
    find_method(args.method).resolve(options)  # unknown or bad options: before any loading
    study = read_study(args.path)
    frame, plane = image_index(study, args)
    classifier = load_classifier(args, args.method)
    c = classifier.card
    check_target(args.target, c)
    if args.sanity_check and classifier.keras_model is None:
        raise BadInput(f"--sanity-check randomises weights: {c.id} on "
                       f"{classifier.runtime} has none to change (use --runtime keras)")
    model_input = c.prepare(study, frame=frame, plane=plane,
                            metadata=metadata_answers(args, c))
    label = f"explain: {args.method}"  # the progress line's, on a terminal
    started = time.perf_counter()
    explained = explain_job(classifier, model_input, args.method, args.target, args.layer,
                            options)
    result = run_job(explained, label)
    payload = {"method": args.method, "label": result.label, "layer": result.layer,
               "runtime": classifier.runtime, "seconds": round(result.seconds, 4),
               "domain": check_domain(classifier, model_input).to_dict(),
               **{k: v for k, v in result.info.items()
                  if k not in ("method", "layer", "target")},
               # Whether the map shows anything (core.explain.maps.FLAT_RANGE), and where
               # it equals another method's by construction.
               "flat": result.flat, "dynamic_range": round(result.dynamic_range, 4),
               "equal_by_construction": result.equal_by_construction}
    if args.metrics:
        payload["metrics"] = run_job(
            faithfulness_job(classifier, model_input, explained, result, black(c.input_spec)),
            label).to_dict()
    if args.sanity_check:
        payload["sanity"] = run_job(
            sanity_job(classifier, model_input, args.method, result.target, result.layer,
                       None, result.info["options"]),
            label).to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.path).stem
    np.save(args.out / f"{stem}.{args.method}.npy", result.map)
    # The overlay is drawn on the very picture the model was given before resizing.
    picture = overlay(study.display(frame, None, plane), result.map, args.opacity,
                      args.colormap)
    Image.fromarray(picture).save(args.out / f"{stem}.{args.method}.png", format="PNG")
    where = f" at {result.layer}" if result.layer else ""
    print_result(args, payload, f"{args.method} for '{result.label}'{where}: "
                 f"{args.out / stem}.{args.method}.{{npy,png}} "
                 f"({time.perf_counter() - started:.2f} s)")
    return 0
