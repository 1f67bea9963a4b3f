"""The card of a model trained in MedLens: what it is, what it was trained on and how, what
it scored on the images it never saw, and what it may be used for (teaching).

Its id starts with "user:" as an uploaded model's does: it lives in the session that
trained it (and in the files downloaded from it), never among the built-in models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.models.cards import USER_PREFIX, ModelCard
from core.train.config import TrainingConfig
from core.train.data import TrainingData
from core.train.split import Split

TEACHING_USE = "Trained in MedLens for teaching; not for diagnosis."


def trained_card(config: TrainingConfig, data: TrainingData, parts: Split,
                 test: dict[str, Any], seconds: float, digest: str, *, parameters: int,
                 architecture: Any, epochs_run: int, best_epoch: int | None,
                 backbone: str | None = None, samples: Path | None = None) -> ModelCard:
    """The card of a finished run, for its saved file (`digest`: the file's sha256)."""
    kind = data.kind
    task = "segmentation" if kind == "masks" else "classification"
    shape = tuple(int(v) for v in data.x.shape[1:])
    labels = tuple(data.labels) if data.labels else ("generated",)
    size = "x".join(str(v) for v in config.size)
    if kind == "volumes":
        what = f"stacks of {config.size[0]} slices of {config.size[1]}x{config.size[2]}"
    else:
        what = f"{size} grey {'slices' if kind == 'masks' else 'images'}"
    shuffled = " (labels shuffled: the data-randomisation twin)" if config.shuffle_labels \
        else ""
    steps = _preprocessing_words(config)
    source = {
        "trained": "in MedLens",
        "file": "model.keras",
        "sha256": digest,
        "data": data.describe(),
        "split": parts.to_dict(),
        "seed": config.seed,
        "config": config.to_dict(),
        "command": command(config),
        "training": (f"{epochs_run} of {config.epochs} epochs"
                     f"{f', checkpoint of epoch {best_epoch} kept' if best_epoch else ''}"
                     f", batch {config.batch_size}, {config.optimizer} "
                     f"{config.learning_rate:g}; {seconds:.0f} s{shuffled}"),
        **({"backbone": backbone} if backbone else {}),
    }
    held_out = {"held_out": test, "how": (
        "the test split (never seen in training or in choosing the checkpoint), at the "
        "input size" + ("; Dice per foreground label" if kind == "masks"
                        else "; accuracy and macro F1" if kind != "unlabelled"
                        else "; the GAN's last losses"))}
    data_licence = data.source.get("licence") or data.source.get("license") or "not stated"
    return ModelCard(
        id=f"{USER_PREFIX}{config.arch}-{data.name}-{digest[:8]}".replace(" ", "-"),
        name=f"{architecture.title} on {data.title}{shuffled}",
        task=task,
        purpose=(f"{architecture.title} trained in MedLens on {data.title}: "
                 + ("a generator of images" if kind == "unlabelled" else
                    f"{task} of {what} into {', '.join(labels)}")),
        labels=labels,
        input_shape=shape[:3] if kind != "volumes" else shape,  # volumes: (s, h, w, 1)
        architecture=(f"{architecture.title} ({config.arch}), {parameters:,} parameters; "
                      f"options {config.options}"),
        runtime="keras",
        outputs="probabilities",
        preprocessing={"channels": "grey", "resize": "bilinear", "scale": "unit",
                       "note": f"inside the model: {steps}"},
        source=source,
        license=(f"weights made in MedLens from data under: {data_licence}"),
        intended_use=TEACHING_USE,
        domain={"images": data.title},
        label_colours=({label: colour for label, colour in
                        zip(labels[1:], _COLOURS, strict=False)} if kind == "masks" else {}),
        evaluation=held_out,
        samples={"directory": str(samples)} if samples else {},
    )


_COLOURS = ((230, 80, 80), (80, 160, 255), (241, 214, 145), (120, 200, 120), (200, 120, 220))


def _preprocessing_words(config: TrainingConfig) -> str:
    p, a = config.preprocessing, config.augmentation
    steps = [f"normalise {p.get('normalise', 'none')}", f"denoise {p.get('denoise', 'none')}"]
    on = [f"{k} {v}" for k, v in a.items() if v not in (0, 0.0, False, "none", None)]
    return (", ".join(steps) + "; training-only augmentation: "
            + (", ".join(on) if on else "none"))


def command(config: TrainingConfig) -> str:
    """The CLI command that repeats this run."""
    size = "x".join(str(v) for v in config.size)
    parts = [f"medlens train --arch {config.arch} --data {config.data}",
             f"--epochs {config.epochs} --batch-size {config.batch_size}",
             f"--lr {config.learning_rate:g} --optimizer {config.optimizer}",
             f"--seed {config.seed} --image-size {size}"]
    if config.patience:
        parts.append(f"--patience {config.patience}")
    for flag, values in (("--option", config.options), ("--preprocess", config.preprocessing),
                         ("--augment", config.augmentation)):
        if values:
            parts.append(f"{flag} " + ",".join(f"{k}={v}" for k, v in values.items()))
    if config.shuffle_labels:
        parts.append("--shuffle-labels")
    return " ".join(parts)
