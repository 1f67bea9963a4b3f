"""Train, validation and test: a seeded, grouped, stratified split.

Grouped: every sample of a group (a slab of slices, a patient, an image) lands on one
side, so nothing seen in training reappears, nearly identical, in the test (the leakage
that inflates medical-imaging results: Yagis et al. 2021,
https://doi.org/10.1038/s41598-021-01681-w). Stratified by label, as scikit-learn's
StratifiedGroupKFold: each group counts under its majority label, and within each label
the groups are dealt, in a seeded random order, to the role furthest below its share.
The first group of each label goes to training, and a label still missing from training
afterwards pulls in the smallest group that holds it, so every class is learnt where the
data allow. Masks and unlabelled data are split by group alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays into a `TrainingData`'s samples, one per role, and what each holds."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float]
    _counts: dict[str, dict[str, int]] = field(repr=False)
    _groups: dict[str, list[str]] = field(repr=False)

    def role(self, name: str) -> np.ndarray:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def counts(self) -> dict[str, dict[str, int]]:
        """{role: {label: samples}} (for masks and unlabelled data: {role: {"samples": n}})."""
        return {role: dict(c) for role, c in self._counts.items()}

    def groups(self) -> dict[str, list[str]]:
        """{role: the groups it holds}, sorted."""
        return {role: list(g) for role, g in self._groups.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "fractions": list(self.fractions),
                **{role: self.role(role).tolist() for role in ROLES},
                "counts": self.counts(), "groups": self.groups()}


def split(data: Any, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
          ) -> Split:
    """A seeded split of `data` (a `TrainingData`): grouped, stratified by label, every
    class in training where possible; the same seed gives the same split."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions {fractions} are not three shares >= 0 summing to 1")
    if fractions[0] <= 0:
        raise ValueError("the training share must be above 0")
    groups = np.asarray(data.groups).astype(str)
    n = len(groups)
    labelled = data.kind in ("images", "volumes") and data.y is not None
    y = np.asarray(data.y, dtype=np.int64) if labelled else np.zeros(n, np.int64)
    names, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(names))
    # Each group's majority label (ties: the smaller label number, as np.argmax).
    per_group = np.zeros((len(names), int(y.max(initial=0)) + 1), np.int64)
    np.add.at(per_group, (inverse, y), 1)
    majority = per_group.argmax(axis=1)

    rng = np.random.default_rng(seed)
    role_of = np.full(len(names), -1)
    for label in np.unique(majority):
        members = rng.permutation(np.nonzero(majority == label)[0])
        total = sizes[members].sum()
        taken = np.zeros(3)
        for k, g in enumerate(members):
            # Deficit of each role against its share of this label's samples; the first
            # group always trains.
            r = 0 if k == 0 else int(np.argmax(np.asarray(fractions) * total - taken))
            role_of[g] = r
            taken[r] += sizes[g]
    if labelled:
        for label in range(per_group.shape[1]):
            if per_group[role_of == 0, label].sum() == 0 and per_group[:, label].sum():
                holders = np.nonzero(per_group[:, label] > 0)[0]
                role_of[holders[np.argmin(sizes[holders])]] = 0

    sample_role = role_of[inverse]
    index = {r: np.nonzero(sample_role == i)[0] for i, r in enumerate(ROLES)}
    label_names = tuple(data.labels) if labelled else ()
    counts = {}
    for r in ROLES:
        if labelled:
            c = Counter(y[index[r]].tolist())
            counts[r] = {name: int(c.get(i, 0)) for i, name in enumerate(label_names)}
        else:
            counts[r] = {"samples": int(len(index[r]))}
    held = {r: sorted(names[role_of == i].tolist()) for i, r in enumerate(ROLES)}
    return Split(index["train"], index["validation"], index["test"], int(seed),
                 fractions, counts, held)
