"""What the commands share: the parser, the options that choose a model and an image,
`--option` values, printing a result, running long work as a job with its progress on a
terminal, and the mapping from what a command raises to its exit status.

Nothing here imports TensorFlow: `studies` commands never load it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from core.models import ModelCard, ModelError, card
from core.studies import PLANES, Study, StudyError, open_study

if TYPE_CHECKING:
    from core.jobs import Handle, Job

BAD_INPUT, INTERNAL_ERROR, INTERRUPTED = 2, 1, 130
PLANE_HELP = "view of a volume (default: the plane it was acquired in)"


class BadInput(Exception):
    """Raised for anything the user gave that cannot be used: exit status 2."""


class Parser(argparse.ArgumentParser):
    """One line for usage errors. A command's own arguments are added by `build` when it
    is first parsed or its help shown: building `explain` reads the method registry
    (OpenCV and all), which `medlens studies ...` must not wait for."""

    def __init__(self, *args: Any, build: Callable[[Parser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._build = build

    def error(self, message: str) -> NoReturn:
        # argparse prints usage over several lines; one line is the contract.
        self.exit(2, f"{self.prog}: {message}\n")

    def _built(self) -> None:
        if self._build is not None:
            build, self._build = self._build, None
            build(self)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._built()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._built()
        return super().format_usage()

    def format_help(self) -> str:
        self._built()
        return super().format_help()


def join_negative_values(argv: list[str]) -> list[str]:
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


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command: its exit status, and at most one line on stderr for
    whatever it raised (2 bad input, 130 Ctrl-C, 1 a bug)."""
    try:
        return args.run(args)
    except (BadInput, StudyError, ModelError, ValueError) as exc:
        print(f"medlens: {exc}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # `medlens ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("MEDLENS_DEBUG"):
            raise
        print(f"medlens: internal error: {type(exc).__name__}: {exc} "
              "(set MEDLENS_DEBUG=1 for details)", file=sys.stderr)
        return INTERNAL_ERROR


def print_result(args: argparse.Namespace, payload: Any, text: str) -> None:
    """The result on stdout: `payload` as JSON with --json, else `text`."""
    print(json.dumps(payload, indent=2) if args.json else text)


# -- which 2-D image --------------------------------------------------------------------

def add_image_options(parser: argparse.ArgumentParser, plane_help: str = PLANE_HELP) -> None:
    """--frame N | --slice N (one index, two names) and --plane."""
    index = parser.add_mutually_exclusive_group()
    index.add_argument("--frame", type=int, metavar="N",
                       help="frame of a multi-frame image, or slice of a volume in --plane "
                            "(default: the first frame; the middle slice of a volume)")
    index.add_argument("--slice", type=int, metavar="N", help="the same as --frame")
    parser.add_argument("--plane", choices=PLANES, help=plane_help)


def read_study(path: str) -> Study:
    """The study at `path`, named as the user gave it (errors name it so)."""
    return open_study(Path(path), name=path)


def _plane(study: Study, plane: str | None) -> str | None:
    """The plane to cut, None for images and cines; --plane on a non-volume is refused."""
    if plane is not None and not study.is_volume:
        what = f"{study.frames} frames without slice geometry" if study.frames > 1 else \
            "a single image"
        raise BadInput(f"{study.name}: --plane {plane}: not a volume ({what})")
    return plane or study.acquired_plane


def image_index(study: Study, args: argparse.Namespace,
                default_plane: str | None = None) -> tuple[int, str | None]:
    """(index, plane) from --frame/--slice and --plane, checked against the study;
    without --plane a volume is cut in `default_plane` (a segmentation model's own), else
    the plane it was acquired in."""
    plane = _plane(study, args.plane or (default_plane if study.is_volume else None))
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


# -- which model --------------------------------------------------------------------------

def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model ID, or the user's own --model-file with --labels and --preprocess; --meta
    for a model with a metadata input."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="ID", help="a built-in model (medlens models list)")
    which.add_argument("--model-file", type=Path, metavar="PATH",
                       help="your own .keras or .onnx model (needs --labels)")
    add_model_file_options(parser)


def add_model_file_options(parser: argparse.ArgumentParser) -> None:
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


def chosen_card(args: argparse.Namespace) -> ModelCard | None:
    """The built-in model's card (None for --model-file, known once it is loaded), with
    --labels/--preprocess checked against the way the model was chosen."""
    check_file_options(args)
    if args.model_file is None:
        return card(args.model)
    if getattr(args, "runtime", None) is not None:
        raise BadInput("--runtime goes with --model (a file runs on its own runtime)")
    return None


def check_file_options(args: argparse.Namespace) -> None:
    """--labels and --preprocess go with --model-file only, which needs --labels."""
    if args.model_file is None:
        for flag, value in (("--labels", args.labels), ("--preprocess", args.preprocess)):
            if value is not None:
                raise BadInput(f"{flag} goes with --model-file (a built-in model has its own)")
    elif args.labels is None and not _has_card(args.model_file):
        raise BadInput(f"--model-file {args.model_file}: give its --labels (comma-separated, "
                       "in the order of its outputs), or keep the card.json MedLens wrote "
                       "beside it")


def _has_card(path: Path) -> bool:
    from core.models.user import card_beside

    return path.suffix.lower() == ".keras" and card_beside(path) is not None


def load_classifier(args: argparse.Namespace, method: str | None = None) -> Any:
    """The model the command runs: built-in (on the runtime the method needs) or the
    user's file, loaded in safe mode and checked against its labels."""
    from core import models

    if args.model_file is not None:
        from core.models.user import card_beside, load_carded, load_user_model

        beside = card_beside(args.model_file) if args.labels is None else None
        if beside is not None:  # a model trained in MedLens, with its card
            loaded = load_carded(args.model_file, beside)
        else:
            loaded = load_user_model(args.model_file, args.labels, args.preprocess)
        if method is None:
            return loaded
        from core.explain import explainable

        return explainable(loaded, method)  # refused before any work where it cannot
    runtime = getattr(args, "runtime", None)
    if method is not None:
        from core.explain import explainable

        return explainable(args.model, method, runtime)
    return models.load(args.model, runtime)


def metadata_answers(args: argparse.Namespace, c: ModelCard) -> dict[str, str] | None:
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


def check_target(target: str | None, c: ModelCard) -> None:
    if target is not None and target not in c.labels:
        raise BadInput(f"--target: unknown label '{target}' for {c.id} "
                       f"(labels: {', '.join(c.labels)})")


def method_names() -> tuple[str, ...]:
    """Every explanation method, from the registry (the --method choices)."""
    from core.explain.registry import METHODS

    return tuple(METHODS)


def method_options(given: list[str]) -> dict[str, Any]:
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


# -- long work: jobs, and their progress on a terminal ------------------------------------

class TerminalProgress:
    """Progress as one line on stderr (`explain: rise 42% (RISE: 210 of 500 masks)`),
    redrawn in place with '\\r' and cleared at the end, only when stderr is a terminal:
    piped or captured, nothing is written, and scripts keep the contract of at most one
    line on stderr. A `Progress` callable and a job listener; use it in `with`."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.active = _is_terminal(self.stream)
        self._lock = threading.Lock()  # jobs report from a worker thread
        self._line = ""
        self._closed = False

    def __call__(self, done: float, text: str) -> None:
        if not self.active:
            return
        percent = int(min(max(float(done), 0.0), 1.0) * 100)
        line = f"{self.label} {percent}%" + (f" ({text})" if text else "")
        # A line that wrapped could not be redrawn with '\r': cut it to the terminal.
        line = line[:self._columns() - 1]
        with self._lock:
            if self._closed or line == self._line:
                return
            # Recorded before it is written: Ctrl-C can land in the middle of the write
            # (a redraw from the main thread), and `close` must still clear it.
            previous, self._line = self._line, line
            # Spaces cover the rest of a longer previous line.
            self._write("\r" + line + " " * (len(previous) - len(line)))

    def listen(self, handle: Handle) -> None:
        """A job listener: the job's progress while it runs (the end is `close`'s)."""
        if not handle.over:
            self(handle.progress, handle.text)

    def close(self) -> None:
        """Clear the line (the result or an error line follows on a clean line)."""
        with self._lock:
            if self._line:
                self._write("\r" + " " * len(self._line) + "\r")
            self._line, self._closed = "", True

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError):
            return 80

    def _write(self, text: str) -> None:
        # A progress line is never worth failing the work for (a closed or hung-up tty).
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.active = False


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


_cancelled: list[Handle] = []  # jobs Ctrl-C cancelled, perhaps still running


def run_job(job: Job, label: str, on: Any = None) -> Any:
    """The result of `job` on the process's executor (or `on`, another one: the
    trainer), with its progress on a terminal (`TerminalProgress(label)`). What the work
    raised is raised again as it was, so it maps to the same exit status as before;
    Ctrl-C cancels the job."""
    from core.jobs import DONE, JobError, executor

    handle = None
    try:
        handle = (on or executor()).submit(job)
        with TerminalProgress(label) as line:
            if line.active:
                handle.listen(line.listen)
                line.listen(handle)  # where it is now: it may have started and reported
            # Short waits, not one long one: the kernel may hand SIGINT to a worker
            # thread, and then only a main thread that wakes up runs Python's handler.
            while not handle.wait(0.1):
                pass
    except KeyboardInterrupt:
        if handle is not None:
            handle.cancel()  # it stops at its next progress report
            _cancelled.append(handle)
        raise
    if handle.state == DONE:
        return handle.result
    if handle.exception is not None:
        raise handle.exception
    raise JobError(handle.error or handle.state)


def still_working() -> bool:
    """Whether a job that Ctrl-C cancelled has not reached its next progress report yet
    (one step of a sanity check can take a minute)."""
    return any(not handle.over for handle in _cancelled)
