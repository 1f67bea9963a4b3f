"""The built-in samples: the real labelled images the model packages ship.

The label of each is in its file name (a prefix the model's card maps to a label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.models.cards import ModelCard, ModelError, cards
from core.models.registry import package_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm")


@dataclass(frozen=True)
class Sample:
    name: str
    label: str
    path: Path


def samples(card: ModelCard) -> list[Sample]:
    """The labelled samples for a model, sorted by file name."""
    spec = card.samples
    if not spec:
        return []
    if "directory" in spec:  # a model trained in MedLens: its held-out images, by label
        return _by_folder(Path(spec["directory"]))
    folder = package_path(spec["package"], spec["folder"])
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = next(
            (lab for pre, lab in spec["label_by_prefix"].items() if path.name.startswith(pre)),
            None,
        )
        if label is None:
            raise ModelError(f"{path.name}: no label for this sample of {card.id}")
        found.append(Sample(name=path.name, label=label, path=path))
    return found


def _by_folder(root: Path) -> list[Sample]:
    """Images in one sub-folder per label (the sub-folder's name is the label)."""
    if not root.is_dir():
        return []
    return [Sample(name=f"{path.parent.name}/{path.name}", label=path.parent.name, path=path)
            for path in sorted(root.glob("*/*")) if path.suffix.lower() in IMAGE_SUFFIXES]


def all_samples() -> list[Sample]:
    """Every built-in model's samples, once each (two models may share a folder)."""
    seen: dict[Path, Sample] = {}
    for c in cards():
        for s in samples(c):
            seen.setdefault(s.path, s)
    return list(seen.values())


def sample_batch(card: ModelCard, found: list[Sample] | None = None
                 ) -> tuple[np.ndarray | list[np.ndarray], list[Sample]]:
    """The model's own labelled samples (or `found`) as one batch, each read through
    `open_study` and prepared for this model as a user's study is (its default image and
    window), with the samples in that order. A model of two inputs gives a list of two
    batches."""
    from core.studies import open_study

    found = samples(card) if found is None else found
    if not found:
        raise ModelError(f"no labelled samples ship with {card.id}")
    batches = []
    for s in found:
        study = open_study(s.path, name=s.name)
        batches.append(card.prepare(study, frame=study.default_index(None)).batch)
    if isinstance(batches[0], list):
        return [np.concatenate(part) for part in zip(*batches, strict=True)], found
    return np.concatenate(batches), found
