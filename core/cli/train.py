"""`medlens train`: build one of the field's architectures and train it on a built-in
task or the user's labelled set (a folder or .zip with one sub-folder per label), then
write `DIR/model.keras` and `DIR/card.json`. `medlens train --list` lists the
architectures and the built-in tasks.

The trained model runs everywhere a model file does: `--model-file DIR/model.keras`
reads the card beside it (no --labels needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import BadInput, Parser, print_result, run_job


def arguments(train: Parser) -> None:
    train.add_argument("--list", action="store_true",
                       help="list the architectures and built-in tasks, and stop")
    train.add_argument("--arch", metavar="NAME", help="cnn, transfer, unet, vit, recurrent, "
                       "cnn3d or dcgan (see --list)")
    train.add_argument("--data", metavar="DIR|ZIP|builtin:TASK",
                       help="a labelled folder or .zip (one sub-folder per label), or a "
                            "built-in task (default: the architecture's own)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--optimizer", help="adam, adamw, sgd or rmsprop")
    train.add_argument("--patience", type=int,
                       help="early stopping after this many epochs without a better "
                            "validation score (default 0: off)")
    train.add_argument("--seed", type=int)
    train.add_argument("--image-size", metavar="HxW",
                       help="input size (SLICESxHxW for the volume models)")
    train.add_argument("--option", action="append", default=[], metavar="KEY=VALUE[,...]",
                       help="the architecture's options (see --list)")
    train.add_argument("--preprocess", action="append", default=[], metavar="KEY=VALUE",
                       help="normalise=zscore|minmax|none, denoise=none|gaussian|median|"
                            "bilateral")
    train.add_argument("--augment", action="append", default=[], metavar="KEY=VALUE",
                       help="flip, rotate, zoom, crop, contrast, noise (0 turns one off)")
    train.add_argument("--shuffle-labels", action="store_true",
                       help="train on shuffled labels (the data-randomisation test's twin)")
    train.add_argument("--out", type=Path, metavar="DIR")
    train.add_argument("--json", action="store_true")
    train.set_defaults(run=train_cmd)


def pairs(given: list[str], flag: str) -> dict[str, str]:
    """'a=1,b=2' (repeatable) as {"a": "1", "b": "2"}; values are checked later."""
    out: dict[str, str] = {}
    for text in given:
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise BadInput(f"{flag}: '{part}' is not KEY=VALUE")
            out[key.strip()] = value.strip()
    return out


def size(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadInput(f"--image-size: '{text}' is not HxW (e.g. 32x32)") from None
    if len(values) not in (2, 3) or min(values) < 1:
        raise BadInput(f"--image-size: '{text}' is not HxW (or SLICESxHxW)")
    return values


def catalogue() -> dict[str, Any]:
    """The architectures (with their options) and the built-in tasks."""
    from core.nets.catalogue import ARCHITECTURES
    from core.train.data import TASKS

    def option(o: Any) -> dict[str, Any]:
        return {"default": o.default, "help": o.help, "type": o.kind.__name__,
                **({"choices": list(o.choices)} if o.choices else {}),
                **({"low": o.low} if o.low is not None else {}),
                **({"high": o.high} if o.high is not None else {})}

    return {
        "architectures": [{"name": a.name, "title": a.title, "data": a.data,
                           "default_task": a.task, "about": a.about, "paper": a.paper,
                           "default_size": list(a.size),
                           "options": {k: option(o) for k, o in a.options.items()}}
                          for a in ARCHITECTURES.values()],
        "tasks": [{"name": f"builtin:{t.name}", "title": t.title, "kind": t.kind,
                   "about": t.about} for t in TASKS.values()],
    }


def train_cmd(args: argparse.Namespace) -> int:
    from core.models.runtime.keras import import_tensorflow

    # The builders and the preprocessing layers are Keras: TensorFlow is imported here,
    # quietly, before any of them is (its start-up lines would reach the terminal).
    import_tensorflow()
    if args.list:
        listed = catalogue()
        lines = ["architectures:"] + [f"  {a['name']:<10} {a['title']} (trains on "
                                      f"{a['data']}; default {a['default_task']})"
                                      for a in listed["architectures"]]
        lines += ["built-in tasks:"] + [f"  {t['name']:<30} {t['title']} ({t['kind']})"
                                        for t in listed["tasks"]]
        print_result(args, listed, "\n".join(lines))
        return 0
    if not args.arch:
        raise BadInput("--arch: give an architecture (medlens train --list)")
    if args.out is None:
        raise BadInput("--out: give a folder for model.keras and card.json")
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out}: not a folder")

    from core.jobs import train_job, trainer
    from core.train.config import default_config
    from core.train.store import save

    schedule = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                  ("learning_rate", args.lr), ("optimizer", args.optimizer),
                                  ("patience", args.patience), ("seed", args.seed))
                if v is not None}
    data, name = None, args.data
    if args.data and not args.data.startswith("builtin:"):
        name = Path(args.data).name or args.data
    try:
        config = default_config(args.arch, name, size=size(args.image_size),
                                options=pairs(args.option, "--option"),
                                preprocessing=pairs(args.preprocess, "--preprocess"),
                                augmentation=pairs(args.augment, "--augment"), **schedule)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if args.shuffle_labels:
        config = config.shuffled()
    if config.builtin_task is not None:
        from core.train.data import task

        try:
            task(config.builtin_task)
        except ValueError as exc:
            raise BadInput(f"--data: {exc}") from None
    else:
        data = user_data(args.data, config)
    trained = run_job(train_job(config, data), f"train: {config.arch}", on=trainer())
    model, card = save(trained, args.out)
    payload = trained.summary() | {"files": {"model": str(model), "card": str(card)}}
    test = ", ".join(f"{k} {v}" for k, v in trained.test.items() if not isinstance(v, dict))
    lines = [f"{config.arch} ({trained.parameters:,} parameters) on {config.data}: "
             f"{trained.epochs_run} epochs in {trained.seconds:.0f} s"
             f"{f', best epoch {trained.best_epoch}' if trained.best_epoch else ''}",
             f"  held-out: {test or 'none'}", f"  wrote {model}", f"  wrote {card}"]
    print_result(args, payload, "\n".join(lines))
    return 0


def user_data(path: str, config: Any) -> Any:
    """The user's labelled folder or .zip as training data at the config's size."""
    from core.evaluate.sets import EvaluationError, open_set
    from core.train.data import from_labelled_set

    if len(config.size) != 2:
        raise BadInput(f"--data {path}: a labelled set is 2-D images; {config.arch} trains "
                       "on volumes (use its built-in task)")
    try:
        return from_labelled_set(open_set(path), config.size)
    except EvaluationError as exc:
        raise BadInput(str(exc)) from None
