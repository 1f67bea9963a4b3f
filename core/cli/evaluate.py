"""`medlens evaluate`: one model on a labelled set (a folder or .zip with one sub-folder
per label, or its built-in samples). The set is checked against the model's labels
before the model is loaded; the work runs as a job, its progress shown on a terminal."""

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
    classifier = load_classifier(args)
    c = classifier.card
    job = evaluate_job([classifier], labelled, {c.id: metadata_answers(args, c)},
                       args.only_known_labels)
    result = run_job(job, "evaluate")
    print_result(args, result.to_dict(), ev.summary(result))
    return 0
