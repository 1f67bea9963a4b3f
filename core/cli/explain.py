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
    explain.add_argument("--label", metavar="NAME",
                         help="a segmentation model's label to explain (Seg-Grad-CAM: its "
                              "logits summed over --region)")
    explain.add_argument("--region", metavar="REGION",
                         help="with --label: 'predicted' (the model's mask of the label on "
                              "the slice, the default), 'image', or a box 'x0,y0,x1,y1' in the "
                              "slice's pixels")
    explain.add_argument("--mask", metavar="FILE",
                         help="with --metrics: a mask of the study (NIfTI, DICOM SEG or PNG): "
                              "the pointing game and the energy-based pointing game of the map "
                              "against it (its --label's segment, else every segment)")
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
    from core.explain.overlay import overlay
    from core.jobs import explain_job, faithfulness_job, sanity_job
    from core.models.domain import check as check_domain

    c = chosen_card(args)
    if (c is not None and c.task == "segmentation") or args.label is not None:
        return explain_segmentation(args)
    if args.region is not None:
        raise BadInput("--region goes with --label, for a segmentation model")
    if args.mask is not None and not args.metrics:
        raise BadInput("--mask goes with --metrics (the map's localisation against it)")
    check_output(args)
    if c is not None:
        check_target(args.target, c)
        metadata_answers(args, c)
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
    if c.task == "segmentation":
        raise BadInput(f"{args.model_file}: a segmentation model: give the --label to explain")
    mask = read_mask(args, study)
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
        if mask is not None:
            payload["metrics"]["localisation"] = localised(result.map, mask, frame, plane,
                                                           None)
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


def check_output(args: argparse.Namespace) -> None:
    """--colormap, --opacity and --out, checked before anything is loaded."""
    from core.explain.overlay import COLORMAPS

    if args.colormap not in COLORMAPS:
        raise BadInput(f"--colormap: unknown '{args.colormap}' (known: {', '.join(COLORMAPS)})")
    if not 0.0 <= args.opacity <= 1.0:
        raise BadInput(f"--opacity: {args.opacity} is not between 0 and 1")
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: exists and is not a folder")


def read_mask(args: argparse.Namespace, study):
    """--mask read and fitted to the study (None without it)."""
    if args.mask is None:
        return None
    from core.studies.masks import fit, read_labels

    return fit(read_labels(Path(args.mask), name=args.mask), study)


def localised(saliency: np.ndarray, mask, frame: int, plane: str | None,
              label: str | None) -> dict:
    """The map against the mask's `label` segment on that slice (every segment for
    None): the pointing game and the energy-based pointing game."""
    from core.explain import ExplainError
    from core.explain.metrics.localisation import against, mask_region

    try:
        region, what = mask_region(mask, frame, plane, label)
    except ExplainError as exc:
        raise BadInput(f"--mask {exc}") from None
    found = against(saliency, region)
    if found is None:
        return {"mask": what, "note": f"no {what} on this slice: not measured"}
    return {"mask": what, **{k: round(v, 4) if isinstance(v, float) else v
                             for k, v in found.items()}}


def region_of(value: str | None) -> tuple[str, tuple[int, int, int, int] | None]:
    """--region's value: ("predicted", None), ("image", None) or ("box", (x0, y0, x1, y1))."""
    word = (value or "predicted").strip().lower()
    if word in ("predicted", "image"):
        return word, None
    try:
        box = tuple(int(v) for v in word.removeprefix("box").strip(" :=").split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise BadInput(f"--region {value}: predicted, image, or a box x0,y0,x1,y1 "
                       "(whole pixels of the slice)")
    return "box", box  # type: ignore[return-value]


def explain_segmentation(args: argparse.Namespace) -> int:
    """`explain` on a segmentation model: one label over a region of one slice."""
    from PIL import Image

    from core.explain import find_method
    from core.jobs import explain_region_job

    c = chosen_card(args)
    for flag, value in (("--target", args.target), ("--sanity-check", args.sanity_check),
                        ("--runtime", args.runtime), ("--meta", args.meta)):
        if value:
            raise BadInput(f"{flag} is for classifiers; a segmentation model explains a "
                           "--label over a --region")
    check_output(args)
    if args.label is None:
        raise BadInput("a segmentation model: give the --label to explain"
                       + (f" ({', '.join(c.labels[1:])})" if c is not None else ""))
    if c is not None and c.task != "segmentation":
        raise BadInput(f"--label is for segmentation models; {c.id} is a classifier "
                       "(use --target)")
    if c is not None and args.label not in c.labels:
        raise BadInput(f"--label: unknown label '{args.label}' for {c.id} "
                       f"(labels: {', '.join(c.labels)})")
    region, box = region_of(args.region)
    if args.mask is not None and not args.metrics:
        raise BadInput("--mask goes with --metrics (the map's localisation against it)")
    options = method_options(args.option)
    find_method(args.method).resolve(options)
    study = read_study(args.path)
    mask = read_mask(args, study)
    segmenter = load_classifier(args)
    c = segmenter.card
    if c.task != "segmentation":
        raise BadInput(f"{args.model_file}: its output is not a mask: --label is for "
                       "segmentation models")
    if args.label not in c.labels:
        raise BadInput(f"--label: unknown label '{args.label}' (labels: {', '.join(c.labels)})")
    from core.segment.run import model_plane

    frame, plane = image_index(study, args, model_plane(c, study))
    model_input = c.prepare(study, frame=frame, plane=plane)
    started = time.perf_counter()
    result = run_job(explain_region_job(segmenter, model_input, args.method,
                                        c.labels.index(args.label), region, box, args.layer,
                                        options), f"explain: {args.method}")
    picture = study.display(frame, None, plane)
    shown = result.at_size(*picture.shape[:2])
    payload = {"method": args.method, "label": result.label, "region": region,
               **({"box": list(box)} if box else {}), "layer": result.layer,
               "plane": plane, "slice": frame, "seconds": round(result.seconds, 4),
               "region_pixels": result.info.get("region_pixels", [None])[0],
               "options": result.info.get("options", {})}
    if args.metrics:
        reference = mask
        if reference is None:  # the model's own mask of the label on this slice
            from core.jobs import segment_job

            reference = run_job(segment_job(segmenter, study, plane, [frame]),
                                f"explain: {args.method}").mask
        payload["metrics"] = {"localisation": localised(
            shown, reference, frame, plane, args.label),
            "against": "--mask" if mask is not None else "the model's own mask"}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.path).name.split(".")[0] or "study"
    name = f"{stem}.{args.method}.{args.label.replace(' ', '-')}"
    np.save(args.out / f"{name}.npy", shown)
    Image.fromarray(result.overlay(picture, args.opacity, args.colormap)).save(
        args.out / f"{name}.png", format="PNG")
    print_result(args, payload, f"{args.method} for '{args.label}' over {region}"
                 f"{f' at {result.layer}' if result.layer else ''}: "
                 f"{args.out / name}.{{npy,png}} ({time.perf_counter() - started:.2f} s)")
    return 0
