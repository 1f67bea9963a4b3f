"""`medlens`: the command line on the same core as the app, for scripts and checks.

Bad input (an unreadable file, an unknown model, wrong arguments) exits with status 2
and one line on stderr naming the file or argument; never a traceback.

Reading a study (`studies info|export|render`) never imports TensorFlow; only the
commands that run a model (`predict`, `explain`, `compare`, `evaluate`, `models show
--layers`) load one, after every argument is checked. Nothing written (PNG, NPY,
overlay) carries DICOM header data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from core.models import ModelCard, ModelError, card, cards
from core.studies import PLANES, Study, StudyError, Window, open_study

# The names of core.explain.METHODS, spelled out so `medlens` starts without TensorFlow.
EXPLAIN_METHODS = (
    "gradcam", "gradcam++", "layercam", "hirescam", "scorecam", "saliency", "smoothgrad",
    "integrated-gradients", "guided-backprop", "guided-gradcam", "occlusion", "rise",
)


class BadInput(Exception):
    """Raised for anything the user gave that cannot be used: exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints usage over several lines; one line is the contract.
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Library warnings (pydicom, nibabel, numpy, Keras) would be extra stderr lines: the
    # contract is the exit status and at most one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    argv = _join_negative_values(sys.argv[1:] if argv is None else list(argv))
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, see Parser.error) or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.run(args)
    except (BadInput, StudyError, ModelError, ValueError) as exc:
        print(f"medlens: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `medlens ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("MEDLENS_DEBUG"):
            raise
        print(f"medlens: internal error: {type(exc).__name__}: {exc} "
              "(set MEDLENS_DEBUG=1 for details)", file=sys.stderr)
        return 1


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--window -600,1500` as `--window=-600,1500`: argparse would take the value for an
    option (a CT lung window has a negative centre)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--window" and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"--window={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _add_index(parser: argparse.ArgumentParser, plane_help: str) -> None:
    """--frame N | --slice N (one index, two names) and --plane."""
    index = parser.add_mutually_exclusive_group()
    index.add_argument("--frame", type=int, metavar="N",
                       help="frame of a multi-frame image, or slice of a volume in --plane "
                            "(default: the first frame; the middle slice of a volume)")
    index.add_argument("--slice", type=int, metavar="N", help="the same as --frame")
    parser.add_argument("--plane", choices=PLANES, help=plane_help)


def _add_model(parser: argparse.ArgumentParser) -> None:
    """--model ID, or the user's own --model-file with --labels and --preprocess; --meta
    for a model with a metadata input."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="ID", help="a built-in model (medlens models list)")
    which.add_argument("--model-file", type=Path, metavar="PATH",
                       help="your own .keras or .onnx model (needs --labels)")
    _add_model_file_options(parser)


def _add_model_file_options(parser: argparse.ArgumentParser) -> None:
    """--labels and --preprocess for --model-file; --meta for models with metadata."""
    parser.add_argument("--labels", metavar="A,B,...",
                        help="--model-file's labels, in the order of its outputs")
    parser.add_argument("--preprocess", metavar="KEY=VALUE,...",
                        help="--model-file's input: scale=unit|xception|none, "
                             "resize=nearest|bilinear|bicubic|tf-bilinear, channels=rgb|grey, "
                             "outputs=auto|logits|probabilities, size=HxW (default: "
                             "scale=unit,resize=bilinear,channels=rgb,outputs=auto)")
    parser.add_argument("--meta", metavar="KEY=VALUE,...",
                        help="metadata for the models with a metadata input, e.g. "
                             "sex=female,location=trunk,age=60 (default: unknown)")


def _parser() -> Parser:
    parser = Parser(prog="medlens", description="Look inside medical-imaging models. "
                    "Research and teaching; not for diagnosis.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plane_help = "view of a volume (default: the plane it was acquired in)"

    models = commands.add_parser("models", help="the built-in models")
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
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=models_show)

    samples = commands.add_parser("samples", help="the built-in labelled samples")
    samples_cmd = samples.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = samples_cmd.add_parser("export", help="write them as DIR/<model-id>/<label>/<file>")
    export.add_argument("dir", type=Path)
    export.set_defaults(run=samples_export)

    predict = commands.add_parser("predict", help="class probabilities for images")
    _add_model(predict)
    predict.add_argument("--runtime", choices=("keras", "onnx"),
                         help="run it on this runtime (default: the model card's)")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    _add_index(predict, plane_help)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=predict_cmd)

    explain = commands.add_parser("explain", help="an explanation map and its overlay")
    _add_model(explain)
    explain.add_argument("--method", required=True, choices=EXPLAIN_METHODS)
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
                         help="add deletion/insertion AUCs and their random baselines")
    explain.add_argument("--sanity-check", action="store_true",
                         help="add the cascading model-randomisation check (Spearman)")
    _add_index(explain, plane_help)
    explain.add_argument("--opacity", type=float, default=0.4)
    explain.add_argument("--colormap", default="jet")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(run=explain_cmd)

    compared = commands.add_parser(
        "compare", help="2 to 4 models on one study: answers, maps and their agreement")
    _add_models(compared)
    compared.add_argument("--method", default="gradcam", choices=EXPLAIN_METHODS,
                          help="the map each model is explained with (default: gradcam)")
    compared.add_argument("path", metavar="PATH")
    compared.add_argument("--target", metavar="LABEL",
                          help="class to explain (default: each model's predicted class)")
    _add_index(compared, plane_help)
    compared.add_argument("--json", action="store_true")
    compared.set_defaults(run=compare_cmd)

    evaluated = commands.add_parser(
        "evaluate", help="accuracy, per-class scores, confusion matrix, ROC AUC and "
                         "calibration on a labelled set")
    _add_model(evaluated)
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

    studies = commands.add_parser("studies", help="read studies")
    studies_cmd = studies.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = studies_cmd.add_parser("info", help="what a study is: format, shape, window...")
    info.add_argument("paths", nargs="+", metavar="PATH",
                      help="a file, or a folder or .zip of one DICOM series")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=studies_info)

    to_npy = studies_cmd.add_parser(
        "export", help="the pixel values (after the modality LUT) as a float32 .npy")
    to_npy.add_argument("path", metavar="PATH")
    to_npy.add_argument("--out", required=True, type=Path, metavar="FILE.npy")
    to_npy.set_defaults(run=studies_export)

    render = studies_cmd.add_parser("render", help="one image as the viewer shows it, as PNG")
    render.add_argument("path", metavar="PATH")
    render.add_argument("--out", required=True, type=Path, metavar="FILE.png")
    how = render.add_mutually_exclusive_group()
    how.add_argument("--window", metavar="C,W", help="window centre and width, in the "
                     "study's units (HU for CT), e.g. 40,80 or -600,1500")
    how.add_argument("--preset", metavar="NAME", help="a named window (see `studies info`): "
                     "e.g. 'CT lung' or just lung, brain, bone")
    _add_index(render, plane_help)
    render.set_defaults(run=studies_render)
    return parser


def _print(args, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def models_list(args) -> int:
    found = [c.to_dict() for c in cards()]
    text = "\n".join(f"{c['id']:22} {c['runtime']:6} {c['task']}" for c in found)
    _print(args, found, text)
    return 0


def models_show(args) -> int:
    from core.models.architecture import card_facts

    if (args.id is None) == (args.model_file is None):
        raise BadInput("models show: give a model ID or --model-file PATH (one of them)")
    args.model = args.id
    c = _card(args)  # every argument checked before the slow load
    if c is not None and args.runtime is not None:
        from core.models import check_runtime

        check_runtime(c, args.runtime)
    table = None
    if args.layers or c is None:  # a file's card is known once it is loaded
        from core.models.architecture import architecture

        classifier = _classifier(args)
        c, table = classifier.card, architecture(classifier) if args.layers else None
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
    _print(args, payload, "\n".join(text))
    return 0


def samples_export(args) -> int:
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
    print(f"{count} samples written under {out}")
    return 0


def _read(path: str) -> Study:
    return open_study(Path(path), name=path)


# -- which 2-D image --------------------------------------------------------------------

def _plane(study: Study, plane: str | None) -> str | None:
    """The plane to cut, None for images and cines; --plane on a non-volume is refused."""
    if plane is not None and not study.is_volume:
        what = f"{study.frames} frames without slice geometry" if study.frames > 1 else \
            "a single image"
        raise BadInput(f"{study.name}: --plane {plane}: not a volume ({what})")
    return plane or study.acquired_plane


def _index(study: Study, args) -> tuple[int, str | None]:
    """(index, plane) from --frame/--slice and --plane, checked against the study."""
    plane = _plane(study, args.plane)
    given = args.slice if args.slice is not None else args.frame
    option = "--slice" if args.slice is not None else "--frame"
    count = study.count(plane)
    if given is None:
        return study.default_index(plane), plane
    if not 0 <= given < count:
        where = f" of the {plane} plane" if plane else ""
        raise BadInput(f"{study.name}: {option} {given} is out of range{where} "
                       f"(0..{count - 1})")
    return given, plane


# -- models -----------------------------------------------------------------------------

def _card(args) -> ModelCard | None:
    """The built-in model's card (None for --model-file, known once it is loaded), with
    --labels/--preprocess checked against the way the model was chosen."""
    _check_file_options(args)
    if args.model_file is None:
        return card(args.model)
    if getattr(args, "runtime", None) is not None:
        raise BadInput("--runtime goes with --model (a file runs on its own runtime)")
    return None


def _check_file_options(args) -> None:
    """--labels and --preprocess go with --model-file only, which needs --labels."""
    if args.model_file is None:
        for flag, value in (("--labels", args.labels), ("--preprocess", args.preprocess)):
            if value is not None:
                raise BadInput(f"{flag} goes with --model-file (a built-in model has its own)")
    elif args.labels is None:
        raise BadInput(f"--model-file {args.model_file}: give its --labels (comma-separated, "
                       "in the order of its outputs)")


def _classifier(args, method: str | None = None):
    """The model the command runs: built-in (on the runtime the method needs) or the
    user's file, loaded in safe mode and checked against its labels."""
    from core import models

    if args.model_file is not None:
        from core.models.user import load_user_model

        return load_user_model(args.model_file, args.labels, args.preprocess)
    runtime = getattr(args, "runtime", None)
    if method is not None:
        from core.explain import explainable

        return explainable(args.model, method, runtime)
    return models.load(args.model, runtime)


def _metadata(args, c: ModelCard) -> dict[str, str] | None:
    """--meta answers, checked against the model's metadata fields."""
    from core.models.metadata import MetadataError, parse

    if args.meta is None:
        return None
    try:
        answers = parse(args.meta)  # its errors name --meta already
    except MetadataError as exc:
        raise BadInput(str(exc)) from None
    try:
        c.check_metadata(answers)
    except ModelError as exc:
        raise BadInput(f"--meta: {exc}") from None
    return answers


# -- predict, explain -------------------------------------------------------------------

def predict_cmd(args) -> int:
    from core import models

    c = _card(args)
    if c is not None:
        models.check_runtime(c, args.runtime)
        _metadata(args, c)
    studies = []
    for path in args.paths:
        study = _read(path)
        studies.append((path, study, *_index(study, args)))
    classifier = _classifier(args)
    c = classifier.card
    meta = _metadata(args, c)
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
    _print(args, results, text)
    return 0


def explain_cmd(args) -> int:
    from PIL import Image

    from core.explain import black, explain_input, find_method
    from core.explain import metrics as trust
    from core.explain.overlay import COLORMAPS, overlay

    c = _card(args)
    if args.colormap not in COLORMAPS:
        raise BadInput(f"--colormap: unknown '{args.colormap}' (known: {', '.join(COLORMAPS)})")
    if not 0.0 <= args.opacity <= 1.0:
        raise BadInput(f"--opacity: {args.opacity} is not between 0 and 1")
    if c is not None:
        _check_target(args.target, c)
        _metadata(args, c)
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: exists and is not a folder")
    options = _options(args.option)
    find_method(args.method).resolve(options)  # unknown or bad options: before any loading
    study = _read(args.path)
    frame, plane = _index(study, args)
    classifier = _classifier(args, args.method)
    c = classifier.card
    _check_target(args.target, c)
    if args.sanity_check and classifier.keras_model is None:
        raise BadInput(f"--sanity-check randomises weights: {c.id} on "
                       f"{classifier.runtime} has none to change (use --runtime keras)")
    model_input = c.prepare(study, frame=frame, plane=plane, metadata=_metadata(args, c))
    started = time.perf_counter()
    result = explain_input(classifier, model_input, args.method, args.target, args.layer,
                           **options)
    payload = {"method": args.method, "label": result.label, "layer": result.layer,
               "runtime": classifier.runtime, "seconds": round(result.seconds, 4),
               **{k: v for k, v in result.info.items()
                  if k not in ("method", "layer", "target")}}
    if args.metrics:
        payload["metrics"] = trust.faithfulness(
            classifier, model_input.inputs, result.input_map, target=result.target,
            baseline=black(c.input_spec)).to_dict()
    if args.sanity_check:
        payload["sanity"] = trust.sanity_check(
            classifier.keras_model, model_input.batch, args.method,
            target=result.target, layer=result.layer, **result.info["options"]).to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.path).stem
    np.save(args.out / f"{stem}.{args.method}.npy", result.map)
    # The overlay is drawn on the very picture the model was given before resizing.
    picture = overlay(study.display(frame, None, plane), result.map, args.opacity,
                      args.colormap)
    Image.fromarray(picture).save(args.out / f"{stem}.{args.method}.png", format="PNG")
    where = f" at {result.layer}" if result.layer else ""
    _print(args, payload, f"{args.method} for '{result.label}'{where}: "
           f"{args.out / stem}.{args.method}.{{npy,png}} "
           f"({time.perf_counter() - started:.2f} s)")
    return 0


def _check_target(target: str | None, c: ModelCard) -> None:
    if target is not None and target not in c.labels:
        raise BadInput(f"--target: unknown label '{target}' for {c.id} "
                       f"(labels: {', '.join(c.labels)})")


def _options(given: list[str]) -> dict[str, Any]:
    """`--option key=value` pairs; values are numbers where they parse as numbers."""
    options: dict[str, Any] = {}
    for item in given:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--option {item}: expected KEY=VALUE, e.g. samples=50")
        for kind in (int, float):
            try:
                options[key] = kind(text)
                break
            except ValueError:
                continue
        else:
            options[key] = text
    return options


# -- compare ----------------------------------------------------------------------------

def _add_models(parser: argparse.ArgumentParser) -> None:
    """--models ID,ID[,...] (several, where _add_model takes one), and the user's own
    --model-file added to them, with --labels/--preprocess; --meta as for one model."""
    parser.add_argument("--models", required=True, metavar="ID,ID[,...]",
                        help="built-in models to compare (2 to 4 with --model-file)")
    parser.add_argument("--model-file", type=Path, metavar="PATH",
                        help="also compare your own .keras or .onnx model (needs --labels)")
    _add_model_file_options(parser)


def _compared_cards(args) -> list[ModelCard]:
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
    _check_file_options(args)
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
            _metadata(args, c)
    return chosen


def compare_cmd(args) -> int:
    from core import models
    from core.compare import compare
    from core.models.metadata import parse

    chosen = _compared_cards(args)
    study = _read(args.path)
    frame, plane = _index(study, args)
    classifiers = [models.load(c.id) for c in chosen]
    if args.model_file is not None:
        from core.models.user import load_user_model

        classifiers.append(load_user_model(args.model_file, args.labels, args.preprocess))
    meta = None if args.meta is None else parse(args.meta)
    result = compare(classifiers, study, args.method, args.target, frame, plane, meta)
    lines = [f"{m.id}: {m.prediction.label} ({m.confidence:.1%}) · forward "
             f"{m.forward_seconds * 1000:.0f} ms"
             + (f" · {args.method} {m.explanation.seconds * 1000:.0f} ms"
                if m.explanation is not None else "") for m in result.models]
    lines += [f"{p.a} vs {p.b}: " + ("no agreement (a map is missing)" if p.iou_top20 is None
                                     else f"IoU top-20% {p.iou_top20:.3f}, Spearman "
                                          f"{p.spearman:.3f}") for p in result.pairs]
    lines += [p.sentence for p in result.pairs]
    lines += [result.labels.note, *result.notes]
    _print(args, result.to_dict(), "\n".join(lines))
    return 0


def evaluate_cmd(args) -> int:
    from core import evaluate as ev

    c = _card(args)
    if c is not None:
        _metadata(args, c)
    if args.samples:
        if c is None:
            raise BadInput("--samples: a --model-file has no built-in samples; give --data")
        labelled = ev.from_samples(c)
    else:
        labelled = ev.open_set(args.data)
    if c is not None:  # a set that does not fit the model is refused before loading it
        ev.match_labels(c, labelled, args.only_known_labels)
    classifier = _classifier(args)
    c = classifier.card
    result = ev.evaluate(classifier, labelled, metadata=_metadata(args, c),
                         only_known_labels=args.only_known_labels)
    _print(args, result.to_dict(), ev.summary(result))
    return 0


# -- studies ----------------------------------------------------------------------------

def _window_dict(window: Window | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {"center": window.center, "width": window.width, "source": window.source}


def study_info(path: str, study: Study) -> dict[str, Any]:
    """What `studies info --json` says of one study: technical facts only, never the
    identifying DICOM attributes."""
    spacing = study.spacing
    return {
        "path": path,
        "format": study.format,
        "modality": study.modality,
        "shape": study.shape,
        "dtype": study.stored_dtype,
        "photometric": study.photometric,
        "frames": study.frames,
        "slices": study.slices,
        "samples_per_pixel": study.samples_per_pixel,
        "units": study.units,
        "spacing": None if spacing is None else [float(s) for s in spacing],
        "transfer_syntax": study.transfer_syntax,
        "planes": list(study.planes),
        "orientation": study.acquired_plane,
        "window": _window_dict(study.window),
        "notes": list(study.notes),
    }


def _info_line(f: dict[str, Any]) -> str:
    if "error" in f:
        return f["error"]  # it names the file already
    parts = [f["format"], f["modality"] or "", "x".join(map(str, f["shape"])),
             f["dtype"], f["photometric"]]
    if f["samples_per_pixel"] > 1:
        parts.append(f"{f['samples_per_pixel']} samples")
    if f["spacing"]:
        parts.append("spacing " + "x".join(f"{s:.4g}" for s in f["spacing"]) + " mm")
    if f["units"]:
        parts.append(f["units"])
    if f["orientation"]:
        parts.append(f"{f['orientation']} volume")
    text = f"{f['path']}: " + " ".join(p for p in parts if p)
    return text + "".join(f"; {note}" for note in f["notes"])


def studies_info(args) -> int:
    found, failed = [], 0
    for path in args.paths:
        try:
            found.append(study_info(path, _read(path)))
        except StudyError as exc:
            failed += 1
            print(f"medlens: {exc}", file=sys.stderr)
            found.append({"path": path, "error": str(exc)})
    _print(args, found, "\n".join(_info_line(f) for f in found))
    return 2 if failed else 0


def _check_out(out: Path) -> None:
    """An --out FILE that can be written: its folder exists, and it is not a folder."""
    if out.is_dir():
        raise BadInput(f"--out {out}: is a folder; give a file name")
    parent = out.parent
    if not parent.is_dir():
        raise BadInput(f"--out {out}: the folder {parent} does not exist")


def _write(out: Path, save: Callable[[Any], None]) -> None:
    """Write --out through `save(handle)`; a failure leaves no half-written file."""
    try:
        handle = open(out, "wb")  # closed below; removed if writing fails
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    try:
        with handle:
            save(handle)
    except BaseException as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BadInput(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        raise


def studies_export(args) -> int:
    _check_out(args.out)
    study = _read(args.path)
    values = np.ascontiguousarray(study.pixels, dtype=np.float32)
    # A file handle, so np.save writes exactly --out (with a path it would add ".npy").
    _write(args.out, lambda f: np.save(f, values, allow_pickle=False))
    print(f"{args.out}: {'x'.join(map(str, values.shape))} float32"
          + (f" ({study.units})" if study.units else ""))
    return 0


def _parse_window(text: str) -> Window:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        center, width = (float(p) for p in parts)
    except ValueError:
        raise BadInput(f"--window {text}: expected CENTER,WIDTH, e.g. 40,80") from None
    if not (math.isfinite(center) and math.isfinite(width)):
        raise BadInput(f"--window {text}: centre and width must be finite numbers")
    if width <= 0:
        raise BadInput(f"--window {text}: the width must be greater than 0")
    return Window(center, width, "--window")


def _preset(study: Study, name: str) -> Window:
    """A preset by its name (any case), or by a part of it that names only one."""
    presets = study.presets()
    if not presets:
        raise BadInput(f"{study.name}: --preset {name}: a colour image has no windows")
    wanted = name.strip().casefold()
    exact = [k for k in presets if k.casefold() == wanted]
    found = exact or [k for k in presets if wanted and wanted in k.casefold()]
    if len(found) == 1:
        return presets[found[0]]
    if found:
        raise BadInput(f"{study.name}: --preset '{name}' is ambiguous: it matches "
                       + "; ".join(f"'{k}'" for k in found))
    raise BadInput(f"{study.name}: unknown --preset '{name}' (presets: "
                   + "; ".join(f"'{k}'" for k in presets) + ")")


def studies_render(args) -> int:
    from PIL import Image

    _check_out(args.out)
    window = _parse_window(args.window) if args.window is not None else None
    study = _read(args.path)
    if window is not None and study.is_colour:
        raise BadInput(f"{study.name}: --window: a colour image is shown as stored, "
                       "without a window")
    if args.preset is not None:
        window = _preset(study, args.preset)
    index, plane = _index(study, args)
    picture = study.display(index, window, plane)
    # PIL writes no text chunks unless given them: the PNG holds pixels only.
    _write(args.out, lambda f: Image.fromarray(picture).save(f, format="PNG"))
    view = study.view(index, plane)
    used = window or study.window
    shown = "" if used is None or study.is_colour else f", {used.describe(study.units)}"
    print(f"{args.out}: {view.label}{shown}, {picture.shape[1]}x{picture.shape[0]} pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
