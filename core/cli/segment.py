"""`medlens segment`: a study's mask by a segmentation model, its volume per label, and,
with --truth, Dice, IoU and HD95 against a ground-truth mask. Writes the mask as NIfTI
(the study's affine), as DICOM SEG with --dicom-seg (new identity unless
--keep-identity), and the overlay of the shown slice as PNG with --overlay."""

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
    print_result,
    read_study,
    run_job,
)
from core.studies import Study
from core.studies.masks import LabelMap, from_views


def arguments(segment: Parser) -> None:
    add_model_options(segment)
    segment.add_argument("path", metavar="PATH")
    segment.add_argument("--truth", metavar="MASK",
                         help="a ground-truth mask (NIfTI, DICOM SEG or PNG) of the same study")
    segment.add_argument("--out", required=True, type=Path, metavar="DIR")
    segment.add_argument("--dicom-seg", action="store_true",
                         help="also write DIR/<stem>.seg.dcm (a DICOM study only)")
    segment.add_argument("--keep-identity", action="store_true",
                         help="the DICOM SEG keeps the source's patient and study "
                              "identifiers (to send it back to a PACS); default: replaced")
    segment.add_argument("--overlay", action="store_true",
                         help="also write DIR/<stem>.overlay.png (the shown slice)")
    add_image_options(segment, plane_help="plane to cut a volume in (default: the model's)")
    segment.add_argument("--json", action="store_true")
    segment.set_defaults(run=segment_cmd)


def stem(path: str) -> str:
    """The file name without its (double) suffix: 'head.nii.gz' -> 'head'."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return Path(name).stem or name


def segment_cmd(args: argparse.Namespace) -> int:
    from core.jobs import segment_job
    from core.segment.metrics import compare
    from core.segment.run import model_plane
    from core.segment.write import write_dicom_seg, write_nifti, write_png
    from core.studies.masks import draw, fit, read_labels

    c = chosen_card(args)
    if c is not None and c.task != "segmentation":
        raise BadInput(f"--model {c.id} is a {c.task} model (segmentation models: "
                       "medlens models list)")
    study = read_study(args.path)
    truth = fit(read_labels(Path(args.truth), name=args.truth), study) if args.truth else None
    if args.dicom_seg and not study.format.startswith("DICOM"):
        raise BadInput(f"{study.name}: --dicom-seg needs a DICOM study ({study.format} given)")
    segmenter = load_classifier(args)
    c = segmenter.card
    if c.task != "segmentation":
        raise BadInput(f"{args.model_file}: its output is not a mask (N, h, w, labels)")
    at, plane = image_index(study, args, model_plane(c, study))
    # One slice when one is named; else the whole volume (and `at` is the one drawn).
    indices = None if args.slice is None and args.frame is None else [at]
    result = run_job(segment_job(segmenter, study, plane, indices), f"segment: {c.id}")

    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / stem(args.path)
    written = {"mask": str(write_nifti(result.mask, base.with_name(base.name + ".mask.nii.gz")))}
    if args.dicom_seg:
        written["dicom_seg"] = str(write_dicom_seg(
            result.mask, study, base.with_name(base.name + ".seg.dcm"),
            keep_identity=args.keep_identity))
    if args.overlay:
        picture = draw(study.display(at, plane=plane), result.mask.view(at, plane),
                       result.mask.segments, study.view(at, plane).spacing)
        written["overlay"] = str(write_png(picture, base.with_name(base.name + ".overlay.png")))
    payload = result.to_dict() | {"files": written}
    outside = c.outside_domain(study)  # a CT given to the MRI model, say
    if outside:
        payload["warning"] = outside
    if truth is not None:
        scored = compare(result.mask, restricted(truth, study, plane, indices)).to_dict()
        payload |= {key: scored[key] for key in ("dice", "iou", "hd95_mm", "worst_slice",
                                                 "unmatched", "convention")}
    lines = [f"{c.id} on {args.path}: {len(result.indices)} "
             f"{'slices' if plane else 'images'} in {result.seconds:.2f} s"]
    lines += [f"  {name}: {ml:.2f} mL" for name, ml in result.volumes_ml().items()]
    if truth is not None:
        lines += [f"  {name}: Dice {shown(payload['dice'][name])}, IoU "
                  f"{shown(payload['iou'][name])}, HD95 {shown(payload['hd95_mm'][name], 2)} mm"
                  for name in payload["dice"]]
        lines.append(f"  ({payload['convention']})")
    lines += [f"  wrote {path}" for path in written.values()]
    if outside:
        lines.append(f"  warning: {outside}")
    print_result(args, payload, "\n".join(lines))
    return 0


def shown(value: float | str | None, digits: int = 3) -> str:
    """A measure as JSON holds it, in words: null is "undefined" (an empty truth)."""
    if value is None:
        return "undefined"
    return value if isinstance(value, str) else f"{value:.{digits}f}"


def restricted(truth: LabelMap, study: Study, plane: str | None,
               indices: list[int] | None) -> LabelMap:
    """The ground truth on the slices the model was run on only (all when None), so a
    single slice is scored against its own truth, not the whole volume's."""
    if indices is None:
        return truth

    views = np.stack([view if i in indices else np.zeros_like(view)
                      for i, view in ((i, truth.view(i, plane))
                                      for i in range(study.count(plane)))])
    return from_views(study, plane, views, truth.segments, name=truth.name, source=truth.source)
