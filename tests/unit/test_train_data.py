"""The training data: the built-in tasks made from the shipped volumes, and a user's own
labelled set, made as inference makes its inputs."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.evaluate.sets import from_folder
from core.models.inputs import prepare
from core.studies import open_study
from core.train.data import (
    TASKS,
    TrainingData,
    from_labelled_set,
    input_spec,
    slabs,
    task,
)

pytestmark = pytest.mark.unit


def _slab(group: str) -> tuple[str, int]:
    found = re.match(r"(\S+) axial slab (\d+)", group)
    return found.group(1), int(found.group(2))


def test_reading_data_loads_no_model_runtime():
    code = ("import sys, core.train.data, core.train.split; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_well_formed(name):
    t = task(name)
    data = t.make()
    assert data is t.make()  # cached per size
    assert data.kind == t.kind and data.x.dtype == np.float32
    assert data.x.shape[1:-1] == t.default_size and data.x.shape[-1] == 1
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0 and data.x.max() > 0.5
    assert len(data.groups) == data.count > 0
    if data.kind == "masks":
        assert data.y.shape == data.x.shape[:-1] and data.y.dtype == np.uint8
        assert set(np.unique(data.y)) == set(range(len(data.labels)))
        assert data.labels[0] == "background"
    elif data.kind == "unlabelled":
        assert data.y is None
    else:
        assert data.y.shape == (data.count,)
        assert all(n > 0 for n in data.class_counts().values())
    described = data.describe()
    assert described["count"] == data.count and described["source"]["label_source"]
    assert len(t.about.split(". ")) >= 2 and len(t.about) > 150  # honest words, not a label


def test_neighbouring_slabs_are_separated_by_guard_slices():
    made = slabs(50, 10, 2)
    assert [kept for _, kept in made][:2] == [list(range(2, 8)), list(range(12, 18))]
    for (_, a), (_, b) in zip(made, made[1:], strict=False):
        assert b[0] - a[-1] >= 5


def test_tissue_patches_are_labelled_by_their_centre():
    data = task("brain-tissue-patches").make()
    centre = data.x[:, 15:17, 15:17, 0].mean(axis=(1, 2))
    means = {label: centre[data.y == i].mean() for i, label in enumerate(data.labels)}
    # T1: white matter brighter than grey matter, grey brighter than CSF.
    assert means["white matter"] > means["grey matter"] > means["CSF and other"]
    counts = data.class_counts()
    assert max(counts.values()) < 1.5 * min(counts.values())  # roughly balanced
    assert data.count <= 4000


def test_a_larger_size_is_the_same_patches_resampled():
    small = task("brain-tissue-patches").make((32, 32))
    large = task("brain-tissue-patches").make((48, 48))
    assert large.x.shape == (small.count, 48, 48, 1)
    np.testing.assert_array_equal(small.y, large.y)
    assert small.fingerprint != large.fingerprint


def test_cerebellum_stacks_are_low_in_the_brain():
    data = task("cerebellum-stacks").make()
    slab = np.array([_slab(g)[1] for g in data.groups])
    assert slab[data.y == 1].max() < slab[data.y == 0].max()
    assert slab[data.y == 1].mean() < slab[data.y == 0].mean()
    assert {_slab(g)[0] for g in data.groups} == {"MNI152", "Colin27"}


def test_head_ct_masks_hold_bone_inside_the_head():
    data = task("head-ct-slices").make()
    bone = data.y == 2
    assert bone.any()
    # CT windowed (C -18 / W 406): bone is brighter than soft tissue.
    assert data.x[..., 0][bone].mean() > data.x[..., 0][data.y == 1].mean()


def test_tumour_samples_are_the_17_images():
    data = task("tumour-samples").make()
    assert data.count == 17 and len(set(data.groups)) == 17
    assert data.class_counts() == {"glioma": 6, "meningioma": 5, "notumor": 3, "pituitary": 3}


def test_unknown_task_and_bad_sizes_are_one_line():
    with pytest.raises(ValueError, match=r"unknown task 'x' \(known: brain-tissue-patches"):
        task("x")
    with pytest.raises(ValueError, match="not \\(slices, h, w\\)"):
        task("cerebellum-stacks").make((32, 32))
    with pytest.raises(ValueError, match="outside 8..512"):
        task("brain-slices").make((4, 4))


def test_training_data_refuses_mismatched_parts():
    x = np.zeros((3, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="differ in length"):
        TrainingData("t", "t", "t", "images", x, np.zeros(2), ("a",), np.array(["g"] * 3), {})
    with pytest.raises(ValueError, match="takes no labels"):
        TrainingData("t", "t", "t", "unlabelled", x, np.zeros(3), (), np.array(["g"] * 3), {})


def test_fingerprint_follows_the_content():
    x = np.zeros((2, 4, 4, 1), np.float32)
    a = TrainingData("t", "t", "t", "images", x, np.array([0, 1]), ("a", "b"),
                     np.array(["g0", "g1"]), {})
    b = TrainingData("t", "t", "t", "images", x, np.array([1, 0]), ("a", "b"),
                     np.array(["g0", "g1"]), {})
    same = TrainingData("t", "other title", "t", "images", x.copy(), np.array([0, 1]),
                        ("a", "b"), np.array(["g0", "g1"]), {})
    assert a.fingerprint != b.fingerprint and a.fingerprint == same.fingerprint


@pytest.fixture
def own_set(tmp_path):
    rng = np.random.default_rng(0)
    for label, names in {"NORMAL": ["IM-0001.png", "IM-0002.png"],
                         "PNEUMONIA": ["person7_bacteria_1.png", "person7_bacteria_2.png",
                                       "person9_virus_3.png"]}.items():
        (tmp_path / label).mkdir()
        for name in names:
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
                tmp_path / label / name)
    (tmp_path / "PNEUMONIA" / "broken.png").write_bytes(b"not a png")
    return tmp_path


def test_own_set_is_made_as_inference_makes_it(own_set):
    labelled = from_folder(own_set)
    data = from_labelled_set(labelled, (24, 24))
    assert data.kind == "images" and data.x.shape == (5, 24, 24, 1)
    assert data.labels == ("NORMAL", "PNEUMONIA")
    assert [s.name for s in data.skipped] == ["PNEUMONIA/broken.png"]
    first = labelled.images[0]
    expected = prepare(open_study(first.path), input_spec((24, 24))).array
    np.testing.assert_allclose(data.x[0], expected)
    # A patient read from the file name groups that patient's images; others stand alone.
    groups = dict(zip((i.name for i in labelled.images if "broken" not in i.name),
                      data.groups, strict=True))
    assert groups["PNEUMONIA/person7_bacteria_1.png"] == groups["PNEUMONIA/person7_bacteria_2.png"]
    assert len(set(data.groups)) == 4


def test_own_set_without_a_readable_image_is_one_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"nothing")
    with pytest.raises(ValueError, match="no readable image"):
        from_labelled_set(from_folder(tmp_path), (16, 16))
