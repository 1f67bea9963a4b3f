"""`medlens evaluate`: one model on a labelled set (a folder or .zip with one sub-folder
per label, or its built-in samples). The set is checked against the model's labels
before the model is loaded; the work runs as a job, its progress shown on a terminal.
`--trust METHOD[,METHOD]` measures instead which explanation methods to believe for the
model: ROAD per method over the set (core.evaluate.trust)."""

from __future__ import annotations

import argparse

from core.cli.common import (
    BadInput,
    Parser,
    add_model_options,
    chosen_card,
    load_classifier,
    metadata_answers,
    print_result,
    run_job,
)


def arguments(evaluated: Parser) -> None:
    add_model_options(evaluated)
    labelled = evaluated.add_mutually_exclusive_group(required=True)
    labelled.add_argument("--data", metavar="DIR_OR_ZIP",
                          help="a folder or .zip with one sub-folder per label")
    labelled.add_argument("--samples", action="store_true",
                          help="the model's built-in labelled samples")
    evaluated.add_argument("--only-known-labels", action="store_true",
                           help="leave out (and list) the images of folders that are not "
                                "among the model's labels, instead of refusing the set")
    evaluated.add_argument("--trust", metavar="METHOD[,METHOD]",
                           help="instead of accuracy: ROAD of each method's maps over the set, "
                                "its verdicts against random maps and against its inversion")
    evaluated.add_argument("--seeds", type=int, default=None, metavar="N",
                           help="--trust: random maps per image (default 8)")
    evaluated.add_argument("--percentiles", metavar="P[,P]",
                           help="--trust: percent of pixels removed (default 10,20,50,70,90)")
    evaluated.add_argument("--limit", type=int, metavar="N",
                           help="--trust: the first N images only")
    evaluated.add_argument("--json", action="store_true")
    evaluated.set_defaults(run=evaluate_cmd)


def evaluate_cmd(args: argparse.Namespace) -> int:
    from core import evaluate as ev
    from core.jobs import evaluate_job

    c = chosen_card(args)
    if c is not None:
        metadata_answers(args, c)
    if args.samples:
        if c is None:
            raise BadInput("--samples: a --model-file has no built-in samples; give --data")
        labelled = ev.from_samples(c)
    else:
        labelled = ev.open_set(args.data)
    if c is not None:  # a set that does not fit the model is refused before loading it
        ev.match_labels(c, labelled, args.only_known_labels)
    if args.trust is not None:
        return _trust(args, labelled)
    classifier = load_classifier(args)
    c = classifier.card
    job = evaluate_job([classifier], labelled, {c.id: metadata_answers(args, c)},
                       args.only_known_labels)
    result = run_job(job, "evaluate")
    print_result(args, result.to_dict(), ev.summary(result))
    return 0


def _trust(args: argparse.Namespace, labelled) -> int:
    from core.cli.common import method_names
    from core.explain.metrics import PERCENTILES, SEEDS
    from core.jobs import trust_job

    methods = [m.strip() for m in args.trust.split(",") if m.strip()]
    unknown = [m for m in methods if m not in method_names()]
    if not methods or unknown:
        raise BadInput(f"--trust: unknown method '{(unknown or [''])[0]}' "
                       f"(known: {', '.join(method_names())})")
    seeds = SEEDS if args.seeds is None else args.seeds
    if seeds < 1:
        raise BadInput("--seeds: at least 1")
    if args.limit is not None and args.limit < 1:
        raise BadInput("--limit: at least 1")
    try:
        percentiles = (PERCENTILES if args.percentiles is None else
                       [int(p) for p in args.percentiles.split(",")])
    except ValueError:
        raise BadInput(f"--percentiles {args.percentiles}: whole numbers, e.g. 10,50,90") from None
    if not percentiles or any(not 0 < p < 100 for p in percentiles):
        raise BadInput("--percentiles: each strictly between 0 and 100")
    classifier = load_classifier(args)
    result = run_job(trust_job(classifier, labelled, methods, seeds, percentiles, args.limit),
                     "trust")
    lines = [f"{result.model} on {result.set_name}: ROAD combined (higher is better), "
             f"{result.seeds} random maps per image, percentiles "
             f"{','.join(map(str, result.percentiles))}"]
    for row in result.table():
        if not row["n"]:
            lines.append(f"  {row['method']}: no image could be explained")
            continue
        lines.append(
            f"  {row['method']}: {row['road_combined']:+.3f} (95% {row['road_low']:+.3f} to "
            f"{row['road_high']:+.3f}) · ▲ {row['better']} ≈ {row['indistinguishable']} "
            f"▼ {row['worse']} of {row['n']} · beats its inversion {row['beats_inversion']} "
            f"of {row['n']} · map {row['method_seconds']:.2f} s, ROAD {row['road_seconds']:.2f} s")
    print_result(args, result.to_dict(), "\n".join(lines))
    return 0
