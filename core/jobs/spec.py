"""A job: what long work to do, as data.

A `JobSpec` is serialisable (JSON): the kind of work, its parameters, and the digests of
the inputs it works on. Its `key` (sha256 of that JSON) names the result, so the same
work asked twice is done once, and a changed input (another image, other metadata, other
options) is another key: a stale result can never be served for it.

The inputs themselves (the model input's arrays, a study, a labelled set, an uploaded
model) travel beside the spec in `Job.inputs`, each named in `JobSpec.inputs` by its
digest. An in-process executor hands them over as they are; an engine on other machines
would ship them by digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def digest(value: Any) -> str:
    """A content digest of an input: arrays by dtype, shape and bytes; bytes as they are;
    lists, tuples and dicts item by item; objects by their own `digest` or `fingerprint`
    where they have one (a Study, a LabelledSet, a Classifier), else their JSON."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h, value: Any) -> None:
    if value is None:
        h.update(b"none")
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        h.update(f"array:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    elif isinstance(value, bytes | bytearray | memoryview):
        h.update(b"bytes:")
        h.update(bytes(value))
    elif isinstance(value, list | tuple):
        h.update(f"seq:{len(value)}".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        h.update(f"map:{len(value)}".encode())
        for key in sorted(value, key=str):
            h.update(str(key).encode())
            _feed(h, value[key])
    elif hasattr(value, "fingerprint"):
        h.update(b"fingerprint:")
        h.update(str(value.fingerprint).encode())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


@dataclass(frozen=True)
class JobSpec:
    """The kind of work ("explain", "faithfulness", "sanity", "compare", "evaluate",
    "predict"), its JSON parameters, and the digests of its inputs by name."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # name -> digest

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "params": self.params, "inputs": self.inputs},
                          sort_keys=True, separators=(",", ":"), default=_plain)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        raw = json.loads(text)
        return cls(raw["kind"], dict(raw["params"]), dict(raw["inputs"]))

    @property
    def key(self) -> str:
        """sha256 of the spec's JSON: the name of its result."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def title(self) -> str:
        """A short description for progress lines and queues."""
        what = self.params.get("method") or self.params.get("model") or ""
        return f"{self.kind} {what}".strip()


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and tuples inside params."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON: give it as an input, not a param")


@dataclass(frozen=True, eq=False)
class Job:
    """A spec and the inputs it names (by the names in `spec.inputs`)."""

    spec: JobSpec
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def make(cls, kind: str, params: dict[str, Any], **inputs: Any) -> Job:
        """A job whose spec carries `params` and the digest of every input."""
        spec = JobSpec(kind, dict(params), {name: digest(value) for name, value in inputs.items()})
        spec.to_json()  # params that are not JSON fail here, where they are given
        return cls(spec, dict(inputs))

    @property
    def key(self) -> str:
        return self.spec.key
