"""The train/validation/test split: grouped, stratified, seeded (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.train.data import TrainingData
from core.train.split import ROLES, split

pytestmark = pytest.mark.unit


def _data(groups, labels=None, kind="images", classes=3) -> TrainingData:
    n = len(groups)
    if kind == "unlabelled":
        y = None
    elif kind == "masks":
        y = np.zeros((n, 2, 2), np.uint8)
    else:
        y = np.asarray(labels, np.int64)
    names = () if kind == "unlabelled" else tuple(f"c{i}" for i in range(classes))
    return TrainingData("t", "t", "t", kind, np.zeros((n, 2, 2, 1), np.float32), y, names,
                        np.asarray([f"g{g}" for g in groups]), {})


samples = st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2)), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(samples, st.integers(0, 2**31 - 1))
def test_groups_never_shared_and_counts_add_up(rows, seed):
    data = _data([g for g, _ in rows], [c for _, c in rows])
    s = split(data, seed)
    parts = [set(data.groups[s.role(r)]) for r in ROLES]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    indices = np.concatenate([s.role(r) for r in ROLES])
    assert sorted(indices.tolist()) == list(range(len(rows)))
    counts = s.counts()
    assert sum(sum(c.values()) for c in counts.values()) == len(rows)
    for r in ROLES:
        assert counts[r] == {f"c{i}": int((data.y[s.role(r)] == i).sum()) for i in range(3)}
    # Every class present in the data is present in training.
    assert set(data.y[s.train].tolist()) == set(data.y.tolist())
    again = split(data, seed)
    assert all(np.array_equal(s.role(r), again.role(r)) for r in ROLES)


def test_shares_are_close_to_the_fractions_with_many_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 5)
    labels = np.repeat(rng.integers(0, 2, 200), 5)
    s = split(_data(groups, labels, classes=2), seed=3)
    shares = [len(s.role(r)) / len(groups) for r in ROLES]
    assert np.allclose(shares, (0.7, 0.15, 0.15), atol=0.02)
    for r in ROLES:  # stratified: each role holds the classes in the data's proportion
        c = s.counts()[r]
        assert abs(c["c1"] / (c["c0"] + c["c1"]) - labels.mean()) < 0.05


def test_seeds_differ_and_masks_split_by_group_alone():
    groups = np.arange(40)
    data = _data(groups, kind="masks")
    a, b = split(data, 0), split(data, 1)
    assert not np.array_equal(a.train, b.train)
    assert a.counts()["train"] == {"samples": len(a.train)}
    unlabelled = split(_data(groups, kind="unlabelled"), 0)
    assert len(unlabelled.train) + len(unlabelled.validation) + len(unlabelled.test) == 40


def test_to_dict_and_bad_fractions():
    data = _data(np.arange(20), np.arange(20) % 2, classes=2)
    d = split(data, 5).to_dict()
    assert d["seed"] == 5 and set(d) >= {"train", "validation", "test", "counts", "groups"}
    with pytest.raises(ValueError, match="summing to 1"):
        split(data, 0, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="training share"):
        split(data, 0, (0.0, 0.5, 0.5))
