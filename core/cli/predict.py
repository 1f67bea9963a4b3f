"""`medlens predict`: class probabilities for one image of each study given, whether it
is within the model's domain (core/models/domain.py), and a warning where it is not."""

from __future__ import annotations

import argparse

from core.cli.common import (
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


def arguments(predict: Parser) -> None:
    add_model_options(predict)
    predict.add_argument("--runtime", choices=("keras", "onnx"),
                         help="run it on this runtime (default: the model card's)")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    add_image_options(predict)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=predict_cmd)


def predict_cmd(args: argparse.Namespace) -> int:
    from core import models
    from core.models import domain

    c = chosen_card(args)
    if c is not None:
        models.check_runtime(c, args.runtime)
        metadata_answers(args, c)
    studies = []
    for path in args.paths:  # every study read and checked before the model is loaded
        study = read_study(path)
        studies.append((path, study, *image_index(study, args)))
    classifier = load_classifier(args)
    c = classifier.card
    meta = metadata_answers(args, c)
    results = []
    lines = []
    for path, study, index, plane in studies:
        model_input = c.prepare(study, frame=index, plane=plane, metadata=meta)
        p = classifier.predict(model_input)
        checked = domain.check(classifier, model_input)
        results.append({"path": path, "label": p.label, "probabilities": p.probabilities,
                        "runtime": classifier.runtime, "domain": checked.to_dict()})
        outside = domain.warning(c, study, checked)
        if outside:
            results[-1]["warning"] = outside
        lines.append(f"{path}: {p.label} ({p.probabilities[p.label]:.3f})"
                     + (f" (warning: {outside})" if outside else f" ({checked.sentence()})"))
    text = "\n".join(lines)
    print_result(args, results, text)
    return 0
