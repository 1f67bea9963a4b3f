"""`medlens`: the command line on the same core as the app, for scripts and checks.

Bad input (an unreadable file, an unknown model, wrong arguments) exits with status 2
and one line on stderr naming the file or argument; never a traceback.

Reading a study (`studies info|export|render`) never imports TensorFlow; only `predict`
and `explain` load a model. Nothing written (PNG, NPY, overlay) carries DICOM header data.
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

from core.models import ModelError, card, cards
from core.study import PLANES, Study, StudyError, Window, open_study

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

    samples = commands.add_parser("samples", help="the built-in labelled samples")
    samples_cmd = samples.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = samples_cmd.add_parser("export", help="write them as DIR/<model-id>/<label>/<file>")
    export.add_argument("dir", type=Path)
    export.set_defaults(run=samples_export)

    predict = commands.add_parser("predict", help="class probabilities for images")
    predict.add_argument("--model", required=True)
    predict.add_argument("--runtime", choices=("keras", "onnx"),
                         help="run it on this runtime (default: the model card's)")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    _add_index(predict, plane_help)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=predict_cmd)

    explain = commands.add_parser("explain", help="an explanation map and its overlay")
    explain.add_argument("--model", required=True)
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


# -- predict, explain -------------------------------------------------------------------

def predict_cmd(args) -> int:
    from core import models
    from core.model_input import prepare

    c = card(args.model)
    runtime = models.check_runtime(c, args.runtime)
    studies = []
    for path in args.paths:
        study = _read(path)
        studies.append((path, study, *_index(study, args)))
    classifier = models.load(c.id, runtime)
    results = []
    for path, study, index, plane in studies:
        p = classifier.predict(prepare(study, c.input_spec, frame=index, plane=plane))
        results.append({"path": path, "label": p.label, "probabilities": p.probabilities,
                        "runtime": runtime})
    text = "\n".join(
        f"{r['path']}: {r['label']} ({r['probabilities'][r['label']]:.3f})" for r in results
    )
    _print(args, results, text)
    return 0


def explain_cmd(args) -> int:
    from PIL import Image

    from core.explain import black, explain_input, explainable, find_method
    from core.explain import metrics as trust
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
    options = _options(args.option)
    find_method(args.method).resolve(options)  # unknown or bad options: before any loading
    study = _read(args.path)
    frame, plane = _index(study, args)
    classifier = explainable(c.id, args.method, args.runtime)
    if args.sanity_check and classifier.keras_model is None:
        raise BadInput(f"--sanity-check randomises weights: {c.id} on "
                       f"{classifier.runtime} has none to change (use --runtime keras)")
    model_input = prepare(study, c.input_spec, frame=frame, plane=plane)
    started = time.perf_counter()
    result = explain_input(classifier, model_input, args.method, args.target, args.layer,
                           **options)
    payload = {"method": args.method, "label": result.label, "layer": result.layer,
               "runtime": classifier.runtime, "seconds": round(result.seconds, 4),
               **{k: v for k, v in result.info.items()
                  if k not in ("method", "layer", "target")}}
    if args.metrics:
        payload["metrics"] = trust.faithfulness(
            classifier, model_input.array, result.input_map, target=result.target,
            baseline=black(c.input_spec)).to_dict()
    if args.sanity_check:
        payload["sanity"] = trust.sanity_check(
            classifier.keras_model, model_input.array[None], args.method,
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
