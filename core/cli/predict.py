"""`medlens predict`: class probabilities for one image of each study given, with a
warning where a study is outside what the model was trained on."""

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
    for path, study, index, plane in studies:
        p = classifier.predict(c.prepare(study, frame=index, plane=plane, metadata=meta))
        results.append({"path": path, "label": p.label, "probabilities": p.probabilities,
                        "runtime": classifier.runtime})
        outside = c.outside_domain(study)
        if outside:
            results[-1]["warning"] = outside
    text = "\n".join(
        f"{r['path']}: {r['label']} ({r['probabilities'][r['label']]:.3f})"
        + (f" (warning: {r['warning']})" if "warning" in r else "") for r in results
    )
    print_result(args, results, text)
    return 0
