"""`medlens`: the command line on the same core as the app, for scripts and checks.

Bad input (an unreadable file, an unknown model, wrong arguments) exits with status 2
and one line on stderr naming the file or argument; never a traceback. A bug exits with
status 1 and one line; Ctrl-C with 130.

Reading a study (`studies info|export|render`) never imports TensorFlow; only the
commands that run a model (`predict`, `explain`, `compare`, `evaluate`, `inside`,
`models show --layers|--graph`) load one, after every argument is checked. Nothing
written (PNG, NPY, overlay) carries DICOM header data.

Long work (explanations, --metrics, --sanity-check, `compare`, `evaluate`) runs as jobs
on the process's executor (`core.jobs`); when stderr is a terminal, their progress is one
line there, redrawn in place and cleared before the result is printed.

One module per command group (`models`, `studies`, `predict`, `explain`, `compare`,
`evaluate`, `inside`, ...), each adding its arguments and running its commands; what
they share (the parser, model and image options, errors and exit statuses, jobs and
their progress line) is in `common`.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import partial
from importlib import import_module

from core.cli import common
from core.cli.common import INTERRUPTED, Parser

__all__ = ["COMMANDS", "build_parser", "main"]

# Each command: its name, its help in `medlens --help`, and the function (in this
# package) that adds its arguments. A command's module is imported only when that command
# is used: `medlens studies info` reads no more than reading a study needs.
COMMANDS = (
    ("models", "the built-in models", "models.models_arguments"),
    ("samples", "the built-in labelled samples", "models.samples_arguments"),
    ("predict", "class probabilities for images", "predict.arguments"),
    ("explain", "an explanation map and its overlay", "explain.arguments"),
    ("compare", "2 to 4 models on one study: answers, maps and their agreement",
     "compare.arguments"),
    ("evaluate", "accuracy, per-class scores, confusion matrix, ROC AUC and calibration on "
                 "a labelled set", "evaluate.arguments"),
    ("segment", "a study's mask by a segmentation model, its volumes, and Dice, IoU and "
                "HD95 against a ground truth", "segment.arguments"),
    ("inside", "a layer's feature maps for one image (C, h, w) and their statistics",
     "inside.arguments"),
    ("train", "build and train one of the field's architectures on a built-in task or "
              "a labelled set", "train.arguments"),
    ("studies", "read studies", "studies.arguments"),
)


def build_parser() -> Parser:
    """The `medlens` parser; each command's arguments are added when it is used."""
    parser = Parser(prog="medlens", description="Look inside medical-imaging models. "
                    "Research and teaching; not for diagnosis.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary, arguments in COMMANDS:
        commands.add_parser(name, help=summary, build=partial(_add_arguments, arguments))
    return parser


def _add_arguments(where: str, parser: Parser) -> None:
    module, function = where.rsplit(".", 1)
    getattr(import_module(f"core.cli.{module}"), function)(parser)


def main(argv: list[str] | None = None) -> int:
    """Run `medlens` with `argv` (default: the process's arguments); the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Library warnings (pydicom, nibabel, numpy, Keras) would be extra stderr lines: the
    # contract is the exit status and at most one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = _main(argv)
    if status == INTERRUPTED and argv is None and common.still_working():
        # The process is ending: a cancelled job's worker would keep it alive until its
        # next progress report, and the interpreter waits for worker threads on exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _main(argv: list[str] | None) -> int:
    argv = common.join_negative_values(sys.argv[1:] if argv is None else list(argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, see Parser.error) or --help
        return exc.code if isinstance(exc.code, int) else 2
    return common.run_command(args)

