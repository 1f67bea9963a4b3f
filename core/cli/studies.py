"""`medlens studies info|export|render`: what a study is, its pixel values, and one
image as the viewer shows it. Never imports TensorFlow; nothing written (NPY, PNG) or
printed carries identifying DICOM attributes."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.cli.common import (
    BAD_INPUT,
    INTERNAL_ERROR,
    BadInput,
    Parser,
    add_image_options,
    image_index,
    print_result,
    read_study,
)
from core.studies import Study, StudyError, Window, one_line
from core.studies.masks import seg_summary
from core.studies.study import printable


def arguments(studies: Parser) -> None:
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
    add_image_options(render)
    render.set_defaults(run=studies_render)


# -- info -------------------------------------------------------------------------------

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


def seg_info(path: str) -> dict[str, Any] | None:
    """What `studies info` says of a DICOM SEG (a label map, not a study): its segments
    and their frames, from the header; None when `path` is no SEG file."""
    file = Path(path)
    try:
        if not file.is_file():
            return None
        data = file.read_bytes()
        summary = seg_summary(data, path)
    except (OSError, StudyError):
        return None
    return {"path": path, "format": "dicom-seg", **summary}


def _seg_line(f: dict[str, Any]) -> str:
    segments = "; ".join(
        f"{s['number']} {printable(s['label']) or '(no label)'}"
        + (f" rgb({','.join(map(str, s['colour']))})" if s["colour"] else "")
        + f" in {s['frames']} frame(s)" for s in f["segments"])
    return (f"{printable(f['path'])}: DICOM SEG {f['segmentation_type']} {f['frames']} "
            f"frame(s) of {f['columns']}x{f['rows']}; segments: {segments or 'none'}")


def _info_line(f: dict[str, Any]) -> str:
    if "error" in f:
        return f["error"]  # it names the file already
    if f["format"] == "dicom-seg":
        return _seg_line(f)
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
    text = f"{printable(f['path'])}: " + " ".join(p for p in parts if p)
    return text + "".join(f"; {note}" for note in f["notes"])


def studies_info(args: argparse.Namespace) -> int:
    """One entry for every path, in order: what it is, or an error naming it. A path that
    cannot be read never hides the others; each is one line on stderr, and the status is
    2 (1 if one failed on a bug, which MEDLENS_DEBUG=1 raises instead)."""
    found, failed, broken = [], 0, 0
    for path in args.paths:
        try:
            found.append(study_info(path, read_study(path)))
            continue
        except StudyError as exc:
            seg = seg_info(path)
            if seg is not None:
                found.append(seg)
                continue
            failed += 1
            message = str(exc)
        except Exception as exc:  # a bug: still an entry, so the good paths are printed
            if os.environ.get("MEDLENS_DEBUG"):
                raise
            broken += 1
            message = (f"{printable(path)}: internal error: {type(exc).__name__}: "
                       f"{one_line(exc)} (set MEDLENS_DEBUG=1 for details)")
        print(f"medlens: {message}", file=sys.stderr)
        found.append({"path": path, "error": message})
    print_result(args, found, "\n".join(_info_line(f) for f in found))
    return INTERNAL_ERROR if broken else BAD_INPUT if failed else 0


# -- export, render -------------------------------------------------------------------------

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


def studies_export(args: argparse.Namespace) -> int:
    _check_out(args.out)
    study = read_study(args.path)
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


def studies_render(args: argparse.Namespace) -> int:
    from PIL import Image

    _check_out(args.out)
    window = _parse_window(args.window) if args.window is not None else None
    study = read_study(args.path)
    if window is not None and study.is_colour:
        raise BadInput(f"{study.name}: --window: a colour image is shown as stored, "
                       "without a window")
    if args.preset is not None:
        window = _preset(study, args.preset)
    index, plane = image_index(study, args)
    picture = study.display(index, window, plane)
    # PIL writes no text chunks unless given them: the PNG holds pixels only.
    _write(args.out, lambda f: Image.fromarray(picture).save(f, format="PNG"))
    view = study.view(index, plane)
    used = window or study.window
    shown = "" if used is None or study.is_colour else f", {used.describe(study.units)}"
    print(f"{args.out}: {view.label}{shown}, {picture.shape[1]}x{picture.shape[0]} pixels")
    return 0
