"""What a network is trained on: the built-in tasks (made from real images and volumes that
installed packages ship, nothing downloaded) and the user's own labelled set.

Every image is made as inference makes it (`core.models.inputs.prepare` with `input_spec`:
the study's window to 8 bits, grey, resized bilinear, x / 255), so a trained model sees in
the app what it saw in training. Samples carry a group (the slab of slices, the patient or
the image they come from): `core.train.split` never puts one group on two sides, and slabs
are separated by guard slices, so near-identical neighbouring slices never sit on both
sides of a split.

The labels of the built-in tasks are derived from the templates' own tissue maps and
atlases, not drawn by a radiologist for this purpose: each task's `about` says how. No
TensorFlow here: reading data must not load a model runtime.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluate.sets import LabelledSet, Skipped, from_samples
from core.models.cards import card
from core.models.inputs import SCALES, InputSpec, prepare, resize
from core.segment import data as volumes
from core.studies import Study, StudyError
from core.studies.masks import LabelMap

KINDS = ("images", "masks", "volumes", "unlabelled")
# How every training image is made (and so how a trained model's card must prepare its
# inputs): grey, bilinear resize, x / 255.
RESIZE, SCALE = "bilinear", "unit"
AAL = Path("/usr/share/mricron/templates/aal.nii.gz")
# AAL (Tzourio-Mazoyer et al. 2002, https://doi.org/10.1006/nimg.2001.0978) parcels
# 91-108 are the cerebellar hemispheres, 109-116 the vermis (aal.nii.txt).
CEREBELLUM = range(91, 117)


def input_spec(size: tuple[int, int]) -> InputSpec:
    """The input spec training images are made with, at (h, w)."""
    return InputSpec(int(size[0]), int(size[1]), 1, RESIZE, SCALE)


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Samples to train on, with their labels and groups and where they come from.

    `x` float32 in [0, 1]: (N, h, w, 1) images or (N, slices, h, w, 1) volumes. `y`: (N,)
    int labels ("images", "volumes"), (N, h, w) uint8 masks ("masks", label 0 the
    background) or None ("unlabelled"). `groups` (N,) str: the slab, patient or image each
    sample comes from. `skipped`: files of a user's set that could not be used."""

    name: str
    title: str
    about: str
    kind: str
    x: np.ndarray
    y: np.ndarray | None
    labels: tuple[str, ...]
    groups: np.ndarray
    source: dict[str, Any]
    skipped: tuple[Skipped, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind '{self.kind}' is not one of {', '.join(KINDS)}")
        n = len(self.x)
        if self.x.ndim != (5 if self.kind == "volumes" else 4) or self.x.shape[-1] != 1:
            raise ValueError(f"{self.name}: x of shape {self.x.shape} does not suit {self.kind}")
        if len(self.groups) != n or (self.y is not None and len(self.y) != n):
            raise ValueError(f"{self.name}: x, y and groups differ in length")
        if (self.y is None) != (self.kind == "unlabelled"):
            raise ValueError(f"{self.name}: {self.kind} data "
                             f"{'needs' if self.y is None else 'takes no'} labels")

    @property
    def count(self) -> int:
        return len(self.x)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of x, y, labels and groups (a job's input digest)."""
        h = hashlib.sha256(repr((self.name, self.kind, self.x.shape, self.labels)).encode())
        h.update(np.ascontiguousarray(self.x, dtype=np.float32).tobytes())
        if self.y is not None:
            h.update(repr(self.y.shape).encode())
            h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        h.update("\0".join(map(str, self.groups)).encode())
        return h.hexdigest()

    def class_counts(self) -> dict[str, int]:
        """Samples per label (images, volumes), pixels per label (masks), {} unlabelled."""
        if self.y is None:
            return {}
        counts = np.bincount(np.asarray(self.y).ravel().astype(np.int64),
                             minlength=len(self.labels))
        return {label: int(c) for label, c in zip(self.labels, counts, strict=False)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "kind": self.kind,
                "count": self.count, "labels": list(self.labels),
                "shape": list(self.x.shape[1:]), "groups": len(set(self.groups)),
                "class_counts": self.class_counts(), "source": dict(self.source),
                "skipped": [s.to_dict() for s in self.skipped]}


@dataclass(frozen=True)
class Task:
    """A built-in training task: `make(size)` builds its data (once per process and size)."""

    name: str
    title: str
    kind: str
    about: str
    default_size: tuple[int, ...]
    build: Callable[[Task, tuple[int, ...]], TrainingData] = field(repr=False)

    def make(self, size: tuple[int, ...] | None = None) -> TrainingData:
        return _made(self.name, _checked_size(self, size or self.default_size))


def _checked_size(task: Task, size: tuple[int, ...]) -> tuple[int, ...]:
    want = 3 if task.kind == "volumes" else 2
    try:
        size = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{task.name}: size {size!r} is not {want} whole numbers") from None
    if len(size) != want:
        what = "(slices, h, w)" if want == 3 else "(h, w)"
        raise ValueError(f"{task.name}: size {size} is not {what}")
    plane = size[-2:]
    if min(plane) < 8 or max(plane) > 512:
        raise ValueError(f"{task.name}: size {size} outside 8..512 pixels")
    if want == 3 and not 2 <= size[0] <= 32:
        raise ValueError(f"{task.name}: {size[0]} slices outside 2..32")
    return size


@cache
def _made(name: str, size: tuple[int, ...]) -> TrainingData:
    t = TASKS[name]
    return t.build(t, size)


def task(name: str) -> Task:
    """A built-in task by name (ValueError, one line, naming the known ones)."""
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[name]


# -- helpers ----------------------------------------------------------------------------

def _version(package: str) -> str:
    """A Python package's version, or a Debian package's (dpkg's status file)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        pass
    try:
        status = Path("/var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return "unknown"
    found = re.search(rf"^Package: {re.escape(package)}\n(?:[^\n]+\n)*?Version: (\S+)",
                      status, re.M)
    return found.group(1) if found else "unknown"


def slabs(count: int, width: int, guard: int) -> list[tuple[int, list[int]]]:
    """Consecutive slabs of `width` slices over 0..count-1: (slab number, the slices
    kept), each slab's first and last `guard` slices dropped, so slices of two slabs are
    at least 2 * guard + 1 apart."""
    found = []
    for number, start in enumerate(range(0, count, width)):
        kept = list(range(start + guard, min(start + width, count) - guard))
        if kept:
            found.append((number, kept))
    return found


def _slice_images(study: Study, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    """(n, h, w, 1) axial slices made as inference makes them."""
    spec = input_spec(size)
    return np.stack([prepare(study, spec, frame=i, plane="axial").array
                     for i in indices]).astype(np.float32)


def _slice_masks(labels: LabelMap, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) uint8 label slices cut as the study's view, resized nearest."""
    import cv2

    h, w = size
    return np.stack([cv2.resize(np.ascontiguousarray(labels.view(i, "axial"), np.uint8),
                                (w, h), interpolation=cv2.INTER_NEAREST) for i in indices])


def _nilearn_source(label_source: str) -> dict[str, Any]:
    return {"package": "nilearn", "version": _version("nilearn"),
            "file": volumes.MNI_T1.rsplit("/", 1)[-1],
            "licence": "MNI ICBM 2009 templates: free use with the copyright notice "
                       "(McConnell Brain Imaging Centre)",
            "label_source": label_source}


# -- brain tissue patches ---------------------------------------------------------------

TISSUES = ("grey matter", "white matter", "CSF and other")
PATCH_MM = 32  # the field of view of a patch, in mm (1 mm voxels)
PATCH_CONFIDENCE = 0.6  # the centre voxel's winning tissue probability at least this
PATCHES_PER_CLASS_PER_SLICE = 11
PATCH_SLAB, PATCH_GUARD = 10, 2


@cache
def _tissue_probabilities() -> np.ndarray:
    """(3, slices, rows, cols) probabilities of grey matter, white matter and the rest
    (1 - GM - WM), in the T1 study's stored layout."""
    import nibabel as nib

    maps = []
    for relative in (volumes.MNI_GM, volumes.MNI_WM):
        img = nib.load(str(volumes._nilearn(relative)))
        # Stored as uint8 0-255: probabilities are value / 255 (as core.segment.data).
        maps.append(np.transpose(np.asarray(img.dataobj, np.float32), (2, 1, 0)) / 255.0)
    gm, wm = maps
    return np.stack([gm, wm, np.clip(1.0 - gm - wm, 0.0, 1.0)])


def _tissue_patches(t: Task, size: tuple[int, ...]) -> TrainingData:
    study, _ = volumes.brain_tissue()
    probs = _tissue_probabilities()
    # Tissue maps cut as the study's view (same layout and affine as the T1).
    views = [LabelMap(name="p", labels=(p * 255).astype(np.uint8), segments=(),
                      source="NIfTI", affine=study.affine, pixel_spacing=study.pixel_spacing,
                      slice_spacing=study.slice_spacing) for p in probs]
    rng = np.random.default_rng(0)
    half = PATCH_MM // 2
    xs, ys, groups = [], [], []
    count = study.count("axial")
    for number, kept in slabs(count, PATCH_SLAB, PATCH_GUARD):
        for i in kept:
            shown = study.display(i, plane="axial")
            raw = study.view(i, "axial").values
            p = np.stack([v.view(i, "axial") for v in views]).astype(np.float32) / 255.0
            inside = raw > 0  # the template is brain-extracted: zero outside the brain
            winner, best = p.argmax(axis=0), p.max(axis=0)
            padded = np.pad(shown, half)
            for label in range(3):
                rows, cols = np.nonzero(inside & (winner == label) & (best >= PATCH_CONFIDENCE))
                if not len(rows):
                    continue
                pick = rng.choice(len(rows), min(len(rows), PATCHES_PER_CLASS_PER_SLICE),
                                  replace=False)
                for r, c in zip(rows[pick], cols[pick], strict=True):
                    patch = padded[r:r + PATCH_MM, c:c + PATCH_MM, None]
                    if patch.shape[:2] != tuple(size):
                        patch = resize(patch, size[0], size[1], RESIZE)
                    xs.append(SCALES[SCALE][1](patch.astype(np.float32)))
                    ys.append(label)
                    groups.append(f"MNI152 axial slab {number} (slices {kept[0]}-{kept[-1]})")
    return TrainingData(
        t.name, t.title, t.about, t.kind, np.stack(xs).astype(np.float32),
        np.asarray(ys, np.int64), TISSUES, np.asarray(groups),
        _nilearn_source("the MNI152 2009 grey- and white-matter probability maps (nilearn): "
                        f"the centre voxel's most probable tissue, probability >= "
                        f"{PATCH_CONFIDENCE}; 'CSF and other' = 1 - GM - WM inside the brain"))


# -- slices with masks ------------------------------------------------------------------

MASK_SLAB, MASK_GUARD = 12, 1


def _mask_slices(t: Task, size: tuple[int, ...], pair: Callable[[], tuple[Study, LabelMap]],
                 labels: tuple[str, ...], source: dict[str, Any], what: str) -> TrainingData:
    study, truth = pair()
    xs, ys, groups = [], [], []
    for number, kept in slabs(study.count("axial"), MASK_SLAB, MASK_GUARD):
        xs.append(_slice_images(study, kept, size))
        ys.append(_slice_masks(truth, kept, size))
        groups += [f"{what} axial slab {number} (slices {kept[0]}-{kept[-1]})"] * len(kept)
    return TrainingData(t.name, t.title, t.about, t.kind, np.concatenate(xs),
                        np.concatenate(ys), labels, np.asarray(groups), source)


def _head_ct_slices(t: Task, size: tuple[int, ...]) -> TrainingData:
    return _mask_slices(
        t, size, volumes.head_ct, ("background", "soft tissue", "bone"),
        {"package": "invesalius-examples (Debian)", "version": _version("invesalius-examples"),
         "file": volumes.CRANIUM.name, "licence": "GPL-2",
         "label_source": "the project's own masks: bone >= 226 HU inside the head, soft "
                         "tissue the rest of the head (largest part >= -142 HU)"},
        "Cranium CT")


def _brain_tissue_slices(t: Task, size: tuple[int, ...]) -> TrainingData:
    return _mask_slices(
        t, size, volumes.brain_tissue, ("background", "grey matter", "white matter"),
        _nilearn_source("maximum probability of GM, WM and 1 - GM - WM in the MNI152 2009 "
                        "probability maps (core.segment.data.brain_tissue)"),
        "MNI152")


# -- volumes: does a stack of slices hold cerebellum? ----------------------------------

STACK_SLAB, STACK_GUARD = 24, 2
STACK_MM = 96  # each stack is a 96 x 96 mm column of the brain (1 mm voxels)
STACKS_PER_SLAB = 24  # half with cerebellum where the slab has enough
CEREBELLUM_MIN_VOXELS = 200  # 2 cm^2 of cerebellum in at least one slice of the column;
# a column with a trace below that (1-199 voxels) is left out: its label would be a coin toss


def _aal_on(study: Study) -> LabelMap:
    """The AAL atlas (on Colin27's grid) on `study`'s grid, voxel by voxel through the
    affines (both grids are 1 mm and axis-aligned in MNI space: an integer shift), cut
    as the study's view. Outside the atlas: 0."""
    import nibabel as nib

    if not AAL.is_file():
        raise StudyError(f"{AAL}: missing (Debian mricron-data: run make setup)")
    img = nib.load(str(AAL))
    aal = np.asarray(img.dataobj).astype(np.uint8)
    colin = volumes.colin27()
    ref = nib.load(str(volumes.COLIN27)) if study is colin else \
        nib.load(str(volumes._nilearn(volumes.MNI_T1)))
    # index in the atlas = inv(A_atlas) A_ref index: a pure shift here (checked).
    m = np.linalg.inv(img.affine) @ ref.affine
    if not np.allclose(m[:3, :3], np.eye(3)) or not np.allclose(m[:3, 3], np.rint(m[:3, 3])):
        raise StudyError("AAL: the atlas and the brain are not on shifted 1 mm grids")
    shift = np.rint(m[:3, 3]).astype(int)
    out = np.zeros(ref.shape[:3], np.uint8)
    src = tuple(slice(max(0, s), min(n_a, n_r + s)) for s, n_a, n_r in
                zip(shift, aal.shape, ref.shape, strict=True))
    dst = tuple(slice(max(0, -s), max(0, -s) + (sl.stop - sl.start)) for s, sl in
                zip(shift, src, strict=True))
    out[dst] = aal[src]
    return LabelMap(name="AAL", labels=np.ascontiguousarray(np.transpose(out, (2, 1, 0))),
                    segments=(), source="NIfTI", affine=study.affine,
                    pixel_spacing=study.pixel_spacing, slice_spacing=study.slice_spacing)


def _cerebellum_stacks(t: Task, size: tuple[int, ...]) -> TrainingData:
    depth, h, w = size
    brains = (("MNI152", volumes.brain_tissue()[0]), ("Colin27", volumes.colin27()))
    rng = np.random.default_rng(0)
    half = STACK_MM // 2
    scale = SCALES[SCALE][1]
    xs, ys, groups = [], [], []
    for what, study in brains:
        atlas = _aal_on(study)
        count = study.count("axial")
        shown = np.stack([np.pad(study.display(i, plane="axial"), half) for i in range(count)])
        inside = np.stack([np.pad(study.view(i, "axial").values > 0, half)
                           for i in range(count)])
        cerebellum = np.stack([np.pad(np.isin(atlas.view(i, "axial"), CEREBELLUM), half)
                               for i in range(count)])
        for number, kept in slabs(count, STACK_SLAB, STACK_GUARD):
            starts = range(kept[0], kept[-1] - depth + 2)
            # Candidate columns: a random start slice and a centre inside the brain; the
            # label counts cerebellar voxels in the column's footprint.
            found: dict[int, list[tuple[int, int, int]]] = {0: [], 1: []}
            for _ in range(STACKS_PER_SLAB * 20):
                start = int(rng.choice(starts))
                z, r, c = np.nonzero(inside[start:start + depth])
                if not len(z):
                    continue
                k = rng.integers(len(z))
                r0, c0 = r[k] - half, c[k] - half
                column = cerebellum[start:start + depth, r0 + half:r0 + half + STACK_MM,
                                    c0 + half:c0 + half + STACK_MM]
                most = column.sum(axis=(1, 2)).max()
                if 0 < most < CEREBELLUM_MIN_VOXELS:
                    continue
                label = int(most >= CEREBELLUM_MIN_VOXELS)
                if len(found[label]) < STACKS_PER_SLAB // 2:
                    found[label].append((start, r0 + half, c0 + half))
                if all(len(v) >= STACKS_PER_SLAB // 2 for v in found.values()):
                    break
            for label, where in found.items():
                for start, r, c in where:
                    crop = shown[start:start + depth, r:r + STACK_MM, c:c + STACK_MM]
                    stack = np.stack([resize(s_[..., None], h, w, RESIZE) for s_ in crop])
                    xs.append(scale(stack.astype(np.float32)))
                    ys.append(label)
                    groups.append(f"{what} axial slab {number} (slices {kept[0]}-{kept[-1]})")
    return TrainingData(
        t.name, t.title, t.about, t.kind, np.stack(xs).astype(np.float32),
        np.asarray(ys, np.int64), ("no cerebellum", "cerebellum"), np.asarray(groups),
        {"package": "nilearn + mricron-data (Debian)",
         "version": f"nilearn {_version('nilearn')}, mricron-data {_version('mricron-data')}",
         "file": f"{volumes.MNI_T1.rsplit('/', 1)[-1]}, {volumes.COLIN27.name}, {AAL.name}",
         "licence": "MNI ICBM 2009: free use with notice; mricron-data: BSD-3",
         "label_source": f"AAL atlas parcels 91-116 (cerebellum and vermis): a stack holds "
                         f"cerebellum when one of its slices has >= {CEREBELLUM_MIN_VOXELS} "
                         f"cerebellar voxels inside its {STACK_MM} x {STACK_MM} mm column (none: "
                         "no cerebellum; between: left out); "
                         "AAL is drawn on Colin27 and carried to the "
                         "MNI152 2009 template by its coordinates (no registration)"})


# -- unlabelled brain slices ------------------------------------------------------------

BRAIN_FRACTION = 0.05  # a slice with at least this much brain in it


def _brain_slices(t: Task, size: tuple[int, ...]) -> TrainingData:
    xs, groups = [], []
    for what, study in (("MNI152", volumes.brain_tissue()[0]), ("Colin27", volumes.colin27())):
        for number, kept in slabs(study.count("axial"), MASK_SLAB, MASK_GUARD):
            images = _slice_images(study, kept, size)
            keep = (images > 0.05).mean(axis=(1, 2, 3)) >= BRAIN_FRACTION
            xs.append(images[keep])
            groups += [f"{what} axial slab {number}"] * int(keep.sum())
    return TrainingData(
        t.name, t.title, t.about, t.kind, np.concatenate(xs), None, (), np.asarray(groups),
        {"package": "nilearn + mricron-data (Debian)",
         "version": f"nilearn {_version('nilearn')}, mricron-data {_version('mricron-data')}",
         "file": f"{volumes.MNI_T1.rsplit('/', 1)[-1]}, {volumes.COLIN27.name}",
         "licence": "MNI ICBM 2009: free use with notice; mricron-data: BSD-3",
         "label_source": "none (unlabelled)"})


# -- the user's own set (and the built-in tumour samples) -------------------------------

# Kermany et al. 2018's chest X-ray file names carry the patient: "person12_bacteria_47".
PATIENT_IN_NAME = re.compile(r"(?:^|/)(person\d+)_", re.I)


def _group_of(image_name: str, study: Study) -> tuple[str, str]:
    """(group, how it was read): the DICOM PatientID, a patient number the file name
    carries by a known convention, else the image itself."""
    patient = study.identifying.get("PatientID", "").strip()
    if patient:
        return f"patient {patient}", "DICOM PatientID"
    found = PATIENT_IN_NAME.search(image_name)
    if found:
        return f"patient {found.group(1).lower()}", "file name (personN_)"
    return f"image {image_name}", "one group per image"


def from_labelled_set(labelled: LabelledSet, size: tuple[int, int] = (64, 64),
                      name: str = "own-set", title: str | None = None,
                      about: str | None = None) -> TrainingData:
    """A user's labelled set (one sub-folder per label, as Evaluate reads it) as images:
    grey, resized bilinear, x / 255 (`input_spec`), each image's own window (the middle
    slice of a volume). Files that cannot be read are skipped and listed in `skipped`
    with the set's own; no image at all is a ValueError (one line)."""
    spec = input_spec(size)
    labels = labelled.folders
    xs, ys, groups, how = [], [], [], set()
    skipped = list(labelled.skipped)
    for image in labelled.images:
        try:
            study = labelled.open(image)
            array = prepare(study, spec, frame=study.default_index()).array
        except (StudyError, ValueError, OSError) as exc:
            skipped.append(Skipped(image.name, str(exc).splitlines()[0] if str(exc)
                                   else type(exc).__name__))
            continue
        group, read = _group_of(image.name, study)
        xs.append(array)
        ys.append(labels.index(image.label))
        groups.append(group)
        how.add(read)
    if not xs:
        first = f" ({skipped[0].name}: {skipped[0].reason})" if skipped else ""
        raise ValueError(f"{labelled.name}: no readable image{first}")
    present = sorted(set(ys))
    used = tuple(labels[i] for i in present)  # a label whose images all failed is dropped
    remap = {old: new for new, old in enumerate(present)}
    return TrainingData(
        name, title or labelled.name,
        about or (f"{len(xs)} images from {labelled.name}, labelled by their folder. "
                  "What a model learns here holds for images like these, from where "
                  "they came from; it says nothing about other scanners or patients."),
        "images", np.stack(xs).astype(np.float32),
        np.asarray([remap[v] for v in ys], np.int64), used, np.asarray(groups),
        {"package": None, "version": None, "file": labelled.name, "licence": "the user's",
         "label_source": "the name of the sub-folder each image sits in",
         "groups": ", ".join(sorted(how))},
        tuple(skipped))


def _tumour_samples(t: Task, size: tuple[int, ...]) -> TrainingData:
    model = card("braintumor-xception")
    own = from_labelled_set(from_samples(model), tuple(size), t.name, t.title, t.about)
    package = model.samples["package"]
    source = {"package": package, "version": _version(package),
              "file": model.samples["folder"], "licence": model.license,
              "label_source": "the file name's prefix (Te-gl glioma, Te-me meningioma, "
                              "Te-no notumor, Te-pi pituitary)", "groups": "one per image"}
    return TrainingData(t.name, t.title, t.about, t.kind, own.x, own.y, own.labels,
                        own.groups, source, own.skipped)


# -- the catalogue ----------------------------------------------------------------------

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("brain-tissue-patches", "Brain tissue patches (MNI152 T1)", "images",
         "32 x 32 mm patches of the MNI152 2009 T1 brain template, each labelled by the "
         "tissue at its centre: grey matter, white matter, or CSF and other. The labels come "
         "from the template's own probability maps (the most probable tissue where it is at "
         "least 60% likely), not from a radiologist. The template is an average of 152 "
         "healthy adult brains, so a model that learns this has learnt to read intensity "
         "and context in one smooth average brain: it says nothing about a real patient's "
         "scan. Test patches come from slabs of slices no training patch touches.",
         (32, 32), _tissue_patches),
    Task("head-ct-slices", "Head CT: bone and soft tissue (Cranium)", "masks",
         "Axial slices of one real head CT (InVesalius' Cranium example) with its masks: "
         "bone, soft tissue, background. The masks are thresholds of the CT itself (bone "
         "above 226 HU), so a model that segments them has learnt a threshold and the "
         "head's shape, from one patient: no measure of a clinical segmenter.",
         (64, 64), _head_ct_slices),
    Task("brain-tissue-slices", "Brain tissue slices (MNI152 T1)", "masks",
         "Axial slices of the MNI152 2009 T1 template with grey- and white-matter masks "
         "taken from its own probability maps (the most probable tissue per voxel). One "
         "averaged brain: a model that learns this has learnt this template, not brains "
         "in general.", (64, 64), _brain_tissue_slices),
    Task("cerebellum-stacks", "Stacks of slices: is there cerebellum?", "volumes",
         "Columns of 8 consecutive 1 mm axial slices, each 96 x 96 mm, cut at random "
         "places in two brains (the MNI152 2009 template and Colin27) and labelled by "
         "whether any slice holds cerebellum in the AAL atlas (at least 2 cm^2 of it in "
         "the column; columns with less than that but some are left out). AAL was drawn "
         "on Colin27 and is carried to the MNI152 template by "
         "coordinates, without registration, so the boundary is approximate there. A "
         "column near the top of the cerebellum holds it in its lowest slices only: a "
         "model that pools over slices should weigh those. Two brains are very few: the "
         "task teaches the method, not anatomy.",
         (8, 32, 32), _cerebellum_stacks),
    Task("brain-slices", "Brain slices (unlabelled)", "unlabelled",
         "Axial slices of two brains (the MNI152 2009 template and Colin27), without "
         "labels, for a generative model. A generator trained on a few hundred slices of "
         "two brains can learn what these slices look like; its pictures are not brains "
         "of anyone, and not data to train or test a diagnostic model.",
         (32, 32), _brain_slices),
    Task("tumour-samples", "Brain tumour samples (17 images)", "images",
         "The 17 labelled brain MRI slices that ship with the braintumor model package (6 "
         "glioma, 5 meningioma, 3 no tumour, 3 pituitary), in grey. Far too few to learn "
         "from: a network will fit the training images perfectly and its validation "
         "accuracy, on two or three images, will mean almost nothing. That is the lesson: "
         "watch the training and validation curves part. (Augmentation and dropout slow "
         "the memorising: turn them off to see it plainly.)",
         (64, 64), _tumour_samples),
)}
