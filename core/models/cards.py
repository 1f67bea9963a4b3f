"""Model cards: what a model is, where it comes from, how to feed it, and what it may
be used for. Every model MedLens runs has one; the built-in ones are JSON files in
assets/models/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from core.models.inputs import InputSpec, ModelInput, prepare
from core.models.metadata import MetadataError, MetadataSpec
from core.studies import Study, Window

CARDS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
INTENDED_USE = "Research and teaching; not for diagnosis."
TASKS = ("classification", "segmentation")
USER_PREFIX = "user:"  # the id of every uploaded model starts so: never a built-in's


class ModelError(ValueError):
    """A model that cannot be found, verified or loaded. One line, naming the model."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is, where it comes from and how to feed it."""

    id: str
    name: str
    task: str  # "classification" or "segmentation" (TASKS)
    purpose: str  # what it does, in words
    labels: tuple[str, ...]
    input_shape: tuple[int, int, int]
    architecture: str
    runtime: str  # "keras" or "onnx": the model file's own, the default
    outputs: str  # "logits" or "probabilities"
    preprocessing: dict[str, str]
    source: dict[str, str]
    license: str
    intended_use: str
    samples: dict[str, Any] = field(default_factory=dict, repr=False)
    runtimes: tuple[str, ...] = ()  # every runtime it can run on; () means (runtime,)
    metadata: MetadataSpec | None = None  # a second input of patient metadata, if any
    label_names: dict[str, str] = field(default_factory=dict)  # label -> words, if given
    # What it was trained on: DICOM modalities and the images in words.
    domain: dict[str, Any] = field(default_factory=dict)
    # Segmentation: the plane its slices are cut in ("axial"...), the display colour of
    # each label ([r, g, b]), and its measured held-out figures with the command.
    plane: str | None = None
    label_colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"{self.id}: task '{self.task}' is not one of {', '.join(TASKS)}")
        if not self.runtimes:
            object.__setattr__(self, "runtimes", (self.runtime,))
        if self.runtime not in self.runtimes:
            raise ModelError(f"{self.id}: runtime '{self.runtime}' is not among its "
                             f"runtimes ({', '.join(self.runtimes)})")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        return cls(
            id=raw["id"],
            name=raw["name"],
            task=raw["task"],
            purpose=raw["purpose"],
            labels=tuple(raw["labels"]),
            input_shape=tuple(raw["input_shape"]),
            architecture=raw["architecture"],
            runtime=raw["runtime"],
            outputs=raw["outputs"],
            preprocessing=dict(raw["preprocessing"]),
            source=dict(raw["source"]),
            license=raw["license"],
            intended_use=raw.get("intended_use", INTENDED_USE),
            samples=dict(raw.get("samples", {})),
            runtimes=tuple(raw.get("runtimes", (raw["runtime"],))),
            metadata=MetadataSpec.from_dict(raw["metadata"]) if raw.get("metadata") else None,
            label_names=dict(raw.get("label_names", {})),
            domain=dict(raw.get("domain", {})),
            plane=raw.get("plane"),
            label_colours={k: tuple(v) for k, v in raw.get("label_colours", {}).items()},
            evaluation=dict(raw.get("evaluation", {})),
        )

    @property
    def input_spec(self) -> InputSpec:
        h, w, c = self.input_shape
        p = self.preprocessing
        return InputSpec(height=h, width=w, channels=c, resize=p["resize"], scale=p["scale"])

    @property
    def origin(self) -> str:
        """Where the model comes from, in a few words: its package and version, or
        "trained in MedLens" for the models trained by this repository's code."""
        s = self.source
        if "package" not in s:
            return "trained in MedLens"
        return " ".join(p for p in (s["package"], s.get("version", "")) if p)

    @property
    def held_out_slices(self) -> tuple[int, int] | None:
        """The first and last slice (0-based, in the card's plane) a model trained in
        MedLens never saw, from its evaluation; None for other models."""
        slices = self.evaluation.get("slices")
        return (min(slices), max(slices)) if isinstance(slices, list) and slices else None

    @property
    def builtin(self) -> bool:
        """False for a model the user uploaded (it lives for their session only)."""
        return not self.id.startswith(USER_PREFIX)

    def outside_domain(self, study: Study) -> str | None:
        """A one-line warning where the study's DICOM modality is not one the model was
        trained on (e.g. a CT given to an MRI model); None where it is, or is not known."""
        trained = self.domain.get("modalities", ())
        if not trained or not study.modality or study.modality in trained:
            return None
        return (f"{study.name} is {study.modality}; {self.id} was trained on "
                f"{self.domain.get('images', '/'.join(trained))} ({', '.join(trained)}): "
                "its output here is outside what it learnt.")

    def window_for(self, study: Study) -> Window | None:
        """The window the model was trained with, where its card fixes one (a
        segmentation model sees every study as it saw its training volumes):
        `preprocessing["window"]` is [centre, width] in the study's units, or "auto" for
        the study's 0.5-99.5 percentile window. None: the study's own window."""
        fixed = self.preprocessing.get("window")
        if fixed is None or study.is_colour:
            return None
        if fixed == "auto":
            return study.auto_window
        centre, width = (float(v) for v in fixed)
        return Window(centre, width, f"{self.id}'s training window")

    def prepare(self, study: Study, frame: int = 0, window: Window | None = None,
                plane: str | None = None,
                metadata: dict[str, Any] | None = None) -> ModelInput:
        """One image of `study` as this model's input; with its metadata vector (the
        user's answers, 'unknown' where not given) when the model takes one."""
        self.check_metadata(metadata)
        window = window or self.window_for(study)
        model_input = prepare(study, self.input_spec, frame=frame, window=window, plane=plane)
        if self.metadata is None:
            return model_input
        return model_input.with_metadata(self.metadata.encode(metadata),
                                         self.metadata.describe(metadata))

    def check_metadata(self, metadata: dict[str, Any] | None) -> None:
        """Answers that fit this model's metadata fields (none for a model without)."""
        if self.metadata is None:
            if metadata:
                raise ModelError(f"{self.id} takes no metadata")
            return
        try:
            self.metadata.answers(metadata)
        except MetadataError as exc:
            raise ModelError(f"{self.id}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The card as the CLI prints it (`medlens models list --json`)."""
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task,
            "purpose": self.purpose,
            "labels": list(self.labels),
            "input_shape": list(self.input_shape),
            "architecture": self.architecture,
            "runtime": self.runtime,
            "runtimes": list(self.runtimes),
            "outputs": self.outputs,
            "preprocessing": dict(self.preprocessing),
            "source": dict(self.source),
            "license": self.license,
            "intended_use": self.intended_use,
            **({"label_names": dict(self.label_names)} if self.label_names else {}),
            **({"domain": dict(self.domain)} if self.domain else {}),
            **({"plane": self.plane} if self.plane else {}),
            **({"label_colours": {k: list(v) for k, v in self.label_colours.items()}}
               if self.label_colours else {}),
            **({"evaluation": dict(self.evaluation)} if self.evaluation else {}),
            **({"metadata": [f.__dict__ | {"values": list(f.values)}
                             for f in self.metadata.fields]} if self.metadata else {}),
        }


@cache
def cards() -> tuple[ModelCard, ...]:
    """Every built-in model's card, in a stable order."""
    return tuple(
        ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(CARDS_DIR.glob("*.json"))
    )


def card(model_id: str) -> ModelCard:
    for c in cards():
        if c.id == model_id:
            return c
    known = ", ".join(c.id for c in cards())
    raise ModelError(f"unknown model '{model_id}' (known: {known})")
