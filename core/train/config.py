"""What a training run is, as data: the architecture and its options, the data, the split,
preprocessing and augmentation, and the schedule. A `TrainingConfig` is JSON (the job's
spec, the card's record, the CLI's flags), so the same config with the same seed can be
run again and give the same curve.

The schedule's settings are declared as `Option`s (`SCHEDULE`), as the networks' and the
preprocessing's are, so the page, the CLI and the checks read one truth. Each
architecture's default recipe (`RECIPES`) is the one the benchmark measures
(`bench/train_speed.py`): it reaches a useful result on its default built-in task within
3 minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.options import Option, checked

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
FRACTIONS = (0.7, 0.15, 0.15)  # train, validation, test

SCHEDULE: dict[str, Option] = {
    "epochs": Option(10, "passes over the training images", int, 1, 500),
    "batch_size": Option(32, "images per weight update", int, 1, 1024),
    "learning_rate": Option(1e-3, "the optimizer's step size", float, 1e-6, 1.0),
    "optimizer": Option("adam", "how the weights are updated from the gradients", str,
                        choices=OPTIMIZERS),
    "patience": Option(0, "early stopping: stop after this many epochs without a better "
                          "validation score (0: never stop early)", int, 0, 100),
    "seed": Option(0, "the seed of the split, the initial weights, the shuffling and the "
                      "augmentation: the same seed gives the same curve", int, 0, 2**31 - 1),
}


@dataclass(frozen=True)
class Recipe:
    """An architecture's default schedule (and options) on its default task, at the
    architecture's default size."""

    epochs: int
    batch_size: int
    learning_rate: float
    options: dict[str, Any] = field(default_factory=dict)


# Measured in bench/train_speed.py on the 2-core CPU (each within 3 minutes).
RECIPES: dict[str, Recipe] = {
    "cnn": Recipe(8, 64, 2e-3),
    "transfer": Recipe(3, 32, 1e-3),
    "unet": Recipe(12, 8, 2e-3),
    "vit": Recipe(10, 64, 1e-3, {"patch": 4}),
    "recurrent": Recipe(30, 16, 2e-3),
    "cnn3d": Recipe(20, 16, 2e-3),
    "dcgan": Recipe(30, 32, 2e-4),
}


@dataclass(frozen=True)
class TrainingConfig:
    """One training run, as data."""

    arch: str
    data: str  # "builtin:TASK" or the name of the user's labelled set
    size: tuple[int, ...]  # (h, w) for images, (slices, h, w) for volumes
    options: dict[str, Any] = field(default_factory=dict)  # the architecture's
    preprocessing: dict[str, Any] = field(default_factory=dict)
    augmentation: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    patience: int = 0
    seed: int = 0
    # The data-randomisation test's twin: the same run on labels shuffled (seeded).
    shuffle_labels: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size"] = list(self.size)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingConfig:
        raw = dict(raw)
        raw["size"] = tuple(int(v) for v in raw["size"])
        return cls(**raw)

    @property
    def builtin_task(self) -> str | None:
        return self.data.removeprefix("builtin:") if self.data.startswith("builtin:") else None

    def shuffled(self) -> TrainingConfig:
        """The same run with its labels shuffled: the data-randomisation test's twin."""
        return replace(self, shuffle_labels=True)


def default_config(arch: str, data: str | None = None, **given: Any) -> TrainingConfig:
    """`arch`'s default recipe on `data` (default: its built-in task), with `given`
    settings (schedule, size, options, preprocessing, augmentation) checked."""
    from core.nets.catalogue import architecture
    from core.nets.preprocessing import AUGMENTATION, PREPROCESSING

    a = architecture(arch)
    recipe = RECIPES[a.name]
    recipe_schedule = {"epochs": recipe.epochs, "batch_size": recipe.batch_size,
                       "learning_rate": recipe.learning_rate}
    schedule = checked(SCHEDULE, {**recipe_schedule, **{k: given.pop(k) for k in list(given)
                                                        if k in SCHEDULE}}, "setting")
    size = tuple(given.pop("size", None) or a.size)
    if len(size) != len(a.size):
        want = "SLICESxHxW" if len(a.size) == 3 else "HxW"
        raise ValueError(f"size: {arch} takes {want}, not {'x'.join(map(str, size))}")
    options = checked(a.options, {**recipe.options, **(given.pop("options", None) or {})},
                      f"{arch} option")
    preprocessing = checked(PREPROCESSING, given.pop("preprocessing", None), "preprocessing")
    augmentation = checked(AUGMENTATION, given.pop("augmentation", None), "augmentation")
    if given:
        raise ValueError(f"unknown setting '{sorted(given)[0]}'")
    return TrainingConfig(arch=a.name, data=data or f"builtin:{a.task}", size=size,
                          options=options, preprocessing=preprocessing,
                          augmentation=augmentation, **schedule)
