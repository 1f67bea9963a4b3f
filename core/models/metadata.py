"""A model's second input: patient metadata (sex, body location, age...) as one vector.

A card that takes metadata declares its fields, in the order the model's vector holds
them. Each field is either one-hot over named values ("unknown" among them where the
training data had it) or a number divided by a constant, optionally followed by a
missing-value flag (a missing number is filled with the training mean, as the model's
authors did). The user answers in words; `encode` makes the vector and `describe` the
line recorded among the input's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNKNOWN = "unknown"


class MetadataError(ValueError):
    """Metadata that does not fit the model's fields. One line."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "one-hot" or "number"
    values: tuple[str, ...] = ()  # one-hot: the values, in vector order
    unit: str = ""
    low: float = 0.0
    high: float = 0.0
    divide_by: float = 1.0
    missing_fill: float = 0.0
    missing_flag: bool = False

    @property
    def width(self) -> int:
        return len(self.values) if self.kind == "one-hot" else 1 + int(self.missing_flag)

    @property
    def default(self) -> str | None:
        """What an unanswered field means: 'unknown' where the field has it, else missing."""
        return UNKNOWN if UNKNOWN in self.values else None


@dataclass(frozen=True)
class MetadataSpec:
    fields: tuple[Field, ...]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MetadataSpec:
        fields = []
        for f in raw["fields"]:
            f = dict(f)
            f["values"] = tuple(f.get("values", ()))
            fields.append(Field(**f))
        return cls(tuple(fields))

    @property
    def width(self) -> int:
        return sum(f.width for f in self.fields)

    def answers(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every field's answer: the given ones checked, the rest 'unknown' or missing."""
        given = dict(given or {})
        names = [f.name for f in self.fields]
        extra = sorted(set(given) - set(names))
        if extra:
            raise MetadataError(f"unknown metadata field '{extra[0]}' "
                                f"(fields: {', '.join(names)})")
        out: dict[str, Any] = {}
        for f in self.fields:
            value = given.get(f.name, f.default)
            if f.kind == "one-hot":
                value = f.default if value is None else str(value).strip().lower()
                if value not in f.values:
                    raise MetadataError(f"metadata {f.name}: '{value}' is not one of "
                                        f"{', '.join(f.values)}")
            elif value is not None and str(value).strip().lower() not in ("", UNKNOWN):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise MetadataError(f"metadata {f.name}: '{value}' is not a number "
                                        "(or 'unknown')") from None
                if not f.low <= value <= f.high:
                    raise MetadataError(f"metadata {f.name}: {value:g} is outside "
                                        f"{f.low:g}-{f.high:g} {f.unit}".rstrip())
            else:
                value = None
            out[f.name] = value
        return out

    def encode(self, given: dict[str, Any] | None = None) -> np.ndarray:
        """The model's metadata vector (width,) float32 for the user's answers."""
        parts: list[float] = []
        for f in self.fields:
            value = self.answers(given)[f.name]
            if f.kind == "one-hot":
                parts += [float(value == v) for v in f.values]
            else:
                missing = value is None
                parts.append((f.missing_fill if missing else value) / f.divide_by)
                if f.missing_flag:
                    parts.append(float(missing))
        return np.asarray(parts, dtype=np.float32)

    def describe(self, given: dict[str, Any] | None = None) -> str:
        """'sex male, location trunk, age unknown': for the input's recorded steps."""
        answers = self.answers(given)
        words = [f"{name} {UNKNOWN if v is None else (f'{v:g}' if isinstance(v, float) else v)}"
                 for name, v in answers.items()]
        return ", ".join(words)


def parse(text: str) -> dict[str, str]:
    """'sex=male,location=trunk,age=50' (the CLI's --meta) as a dict."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise MetadataError(f"--meta: '{part}' is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
