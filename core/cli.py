"""`medlens`: the command line on the same core as the app, for scripts and checks.

Bad input (an unreadable file, an unknown model, wrong arguments) exits with status 2
and one line on stderr naming the file or argument; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from core.models import ModelError, card, cards
from core.study import Study, StudyError, open_study

EXPLAIN_METHODS = ("gradcam", "gradcam++")


class BadInput(Exception):
    """Raised for anything the user gave that cannot be used: exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints usage over several lines; one line is the contract.
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=UserWarning)
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (BadInput, StudyError, ModelError, ValueError) as exc:
        print(f"medlens: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("MEDLENS_DEBUG"):
            raise
        print(f"medlens: internal error: {type(exc).__name__}: {exc} "
              "(set MEDLENS_DEBUG=1 for details)", file=sys.stderr)
        return 1


def _parser() -> Parser:
    parser = Parser(prog="medlens", description="Look inside medical-imaging models. "
                    "Research and teaching; not for diagnosis.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="the built-in models")
    models_cmd = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = models_cmd.add_parser("list", help="every model's card")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=models_list)

    samples = commands.add_parser("samples", help="the built-in labelled samples")
    samples_cmd = samples.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = samples_cmd.add_parser("export", help="write them as DIR/<model-id>/<label>/<file>")
    export.add_argument("dir", type=Path)
    export.set_defaults(run=samples_export)

    predict = commands.add_parser("predict", help="class probabilities for images")
    predict.add_argument("--model", required=True)
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--frame", type=int, default=0, help="frame of a multi-frame study")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=predict_cmd)

    explain = commands.add_parser("explain", help="an explanation map and its overlay")
    explain.add_argument("--model", required=True)
    explain.add_argument("--method", required=True, choices=EXPLAIN_METHODS)
    explain.add_argument("path", metavar="PATH")
    explain.add_argument("--out", required=True, type=Path, metavar="DIR")
    explain.add_argument("--target", metavar="LABEL", help="class to explain (default: predicted)")
    explain.add_argument("--layer", metavar="NAME", help="layer (default: last spatial layer)")
    explain.add_argument("--frame", type=int, default=0)
    explain.add_argument("--opacity", type=float, default=0.4)
    explain.add_argument("--colormap", default="jet")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(run=explain_cmd)

    studies = commands.add_parser("studies", help="read studies")
    studies_cmd = studies.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = studies_cmd.add_parser("info", help="what a study is: format, shape, window...")
    info.add_argument("paths", nargs="+", metavar="PATH")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=studies_info)
    return parser


def _print(args, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def models_list(args) -> int:
    found = [c.to_dict() for c in cards()]
    text = "\n".join(f"{c['id']:22} {c['runtime']:6} {c['task']}" for c in found)
    _print(args, found, text)
    return 0


def samples_export(args) -> int:
    from core.samples import samples

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


def predict_cmd(args) -> int:
    from core import models
    from core.model_input import prepare

    c = card(args.model)
    studies = []
    for path in args.paths:
        studies.append((path, _read(path)))
    classifier = models.load(c.id)
    results = []
    for path, study in studies:
        p = classifier.predict(prepare(study, c.input_spec, frame=_frame(study, args.frame)))
        results.append({"path": path, "label": p.label, "probabilities": p.probabilities})
    text = "\n".join(
        f"{r['path']}: {r['label']} ({r['probabilities'][r['label']]:.3f})" for r in results
    )
    _print(args, results, text)
    return 0


def _frame(study: Study, frame: int) -> int:
    if not 0 <= frame < study.frames:
        raise BadInput(f"{study.name}: --frame {frame} is out of range (0..{study.frames - 1})")
    return frame


def explain_cmd(args) -> int:
    from PIL import Image

    from core import models
    from core.explain import explain_input
    from core.model_input import prepare
    from core.overlay import COLORMAPS, overlay

    c = card(args.model)
    if args.colormap not in COLORMAPS:
        raise BadInput(f"--colormap: unknown '{args.colormap}' (known: {', '.join(COLORMAPS)})")
    if not 0.0 <= args.opacity <= 1.0:
        raise BadInput(f"--opacity: {args.opacity} is not between 0 and 1")
    if args.target is not None and args.target not in c.labels:
        raise BadInput(f"--target: unknown label '{args.target}' for {c.id} "
                       f"(labels: {', '.join(c.labels)})")
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: exists and is not a folder")
    study = _read(args.path)
    frame = _frame(study, args.frame)
    classifier = models.load(c.id)
    model_input = prepare(study, c.input_spec, frame=frame)
    started = time.perf_counter()
    result = explain_input(classifier, model_input, args.method, args.target, args.layer)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.path).stem
    np.save(args.out / f"{stem}.{args.method}.npy", result.map)
    picture = overlay(study.display(frame), result.map, args.opacity, args.colormap)
    Image.fromarray(picture).save(args.out / f"{stem}.{args.method}.png")
    payload = {"method": args.method, "label": result.label, "layer": result.layer,
               "seconds": round(result.seconds, 4)}
    _print(args, payload, f"{args.method} for '{result.label}' at {result.layer}: "
           f"{args.out / stem}.{args.method}.{{npy,png}} "
           f"({time.perf_counter() - started:.2f} s)")
    return 0


def study_info(path: str, study: Study) -> dict[str, Any]:
    window = study.window
    return {
        "path": path,
        "format": study.format,
        "modality": study.modality,
        "shape": study.shape,
        "dtype": study.stored_dtype,
        "photometric": study.photometric,
        "frames": study.frames,
        "window": None if window is None else {"center": window.center, "width": window.width},
    }


def studies_info(args) -> int:
    found, failed = [], 0
    for path in args.paths:
        try:
            found.append(study_info(path, _read(path)))
        except StudyError as exc:
            failed += 1
            print(f"medlens: {exc}", file=sys.stderr)
            found.append({"path": path, "error": str(exc)})
    text = "\n".join(
        f"{f['path']}: {f['error']}" if "error" in f else
        f"{f['path']}: {f['format']} {f['modality'] or ''} {f['shape']} {f['dtype']} "
        f"{f['photometric']}" for f in found
    )
    _print(args, found, text)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
