"""`medlens compare`: 2 to 4 models on one image of a study, their answers, their maps
and how much the maps agree. The work runs as a job; on a terminal its progress shows on
stderr."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import (
    BadInput,
    Parser,
    add_image_options,
    add_model_file_options,
    check_file_options,
    image_index,
    metadata_answers,
    method_names,
    print_result,
    read_study,
    run_job,
)
from core.models import ModelCard, card


def arguments(compared: Parser) -> None:
    _add_models(compared)
    compared.add_argument("--method", default="gradcam", choices=method_names(),
                          help="the map each model is explained with (default: gradcam)")
    compared.add_argument("path", metavar="PATH")
    compared.add_argument("--target", metavar="LABEL",
                          help="class to explain (default: each model's predicted class)")
    add_image_options(compared)
    compared.add_argument("--json", action="store_true")
    compared.set_defaults(run=compare_cmd)


def _add_models(parser: argparse.ArgumentParser) -> None:
    """--models ID,ID[,...] (several, where add_model_options takes one), and the user's
    own --model-file added to them, with --labels/--preprocess; --meta as for one model."""
    parser.add_argument("--models", required=True, metavar="ID,ID[,...]",
                        help="built-in models to compare (2 to 4 with --model-file)")
    parser.add_argument("--model-file", type=Path, metavar="PATH",
                        help="also compare your own .keras or .onnx model (needs --labels)")
    add_model_file_options(parser)


def _compared_cards(args: argparse.Namespace) -> list[ModelCard]:
    """The built-in cards of --models, with the count (2 to 4 with --model-file), the
    file's options, --target and --meta checked before anything is loaded."""
    from core.compare import MAX_MODELS, MIN_MODELS

    ids = [i.strip() for i in args.models.split(",") if i.strip()]
    given = ids + ([str(args.model_file)] if args.model_file is not None else [])
    if not MIN_MODELS <= len(given) <= MAX_MODELS:
        raise BadInput(f"--models: compare {MIN_MODELS} to {MAX_MODELS} models "
                       f"(got {len(given)}: {', '.join(given) or 'none'})")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise BadInput(f"--models: {twice[0]} is given twice")
    chosen = [card(i) for i in ids]
    check_file_options(args)
    if args.model_file is not None and not args.model_file.is_file():
        raise BadInput(f"--model-file {args.model_file}: no such file")
    # A file's labels are known once it is loaded; the built-ins' now.
    if (args.target is not None and args.model_file is None
            and all(args.target not in c.labels for c in chosen)):
        raise BadInput(f"--target: '{args.target}' is not a label of any chosen model")
    if args.meta is not None:
        takers = [c for c in chosen if c.metadata is not None]
        if not takers:
            raise BadInput(f"--meta: none of {', '.join(ids)} takes metadata")
        for c in takers:
            metadata_answers(args, c)
    return chosen


def compare_cmd(args: argparse.Namespace) -> int:
    from core import models
    from core.jobs import compare_job
    from core.models.metadata import parse

    chosen = _compared_cards(args)
    study = read_study(args.path)
    frame, plane = image_index(study, args)
    classifiers = [models.load(c.id) for c in chosen]
    if args.model_file is not None:
        from core.models.user import load_user_model

        classifiers.append(load_user_model(args.model_file, args.labels, args.preprocess))
    meta = None if args.meta is None else parse(args.meta)
    result = run_job(compare_job(classifiers, study, args.method, args.target, frame, plane,
                                 meta), f"compare: {args.method}")
    lines = [f"{m.id}: {m.prediction.label} ({m.confidence:.1%}) · forward "
             f"{m.forward_seconds * 1000:.0f} ms"
             + (f" · {args.method} {m.explanation.seconds * 1000:.0f} ms"
                if m.explanation is not None else "")
             + (f" (warning: {m.warning})" if m.warning
                else f" ({m.domain.sentence()})" if m.domain is not None else "")
             for m in result.models]
    lines += [f"{p.a} vs {p.b}: " + ("no agreement (a map is missing)" if p.iou_top20 is None
                                     else f"IoU top-20% {p.iou_top20:.3f}, Spearman "
                                          f"{p.spearman:.3f}") for p in result.pairs]
    lines += [p.sentence for p in result.pairs]
    lines += [result.labels.note, *result.notes]
    print_result(args, result.to_dict(), "\n".join(lines))
    return 0
