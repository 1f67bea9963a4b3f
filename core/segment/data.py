"""The real volumes the built-in segmentation models are trained and measured on, built in
memory from files that installed packages ship (nothing is downloaded):

- `brain_tissue()`: the MNI152 2009c nonlinear symmetric T1 template (Fonov et al. 2011,
  https://doi.org/10.1016/j.neuroimage.2010.07.033) with its grey- and white-matter
  probability maps, as nilearn ships them;
- `head_ct()`: InVesalius' example head CT `Cranium.inv3` (Debian invesalius-examples,
  GPL-2) with its bone and head masks.

Each is a `(Study, LabelMap)` pair aligned voxel for voxel (same layout, affine and
spacing), built once per process.
"""

from __future__ import annotations

import gzip
import io
import plistlib
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from core.models.cards import ModelError
from core.models.registry import package_path
from core.studies import Study, StudyError, Window, open_study
from core.studies.masks import LabelMap, Segment

NILEARN_DATA = "nilearn/datasets/data"
MNI_T1 = f"{NILEARN_DATA}/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MNI_GM = f"{NILEARN_DATA}/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
MNI_WM = f"{NILEARN_DATA}/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
COLIN27 = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")

# Display colours: grey matter and white matter as FreeSurfer's LUT draws cortex and
# white matter; soft tissue a skin tone; bone 3D Slicer's bone colour.
GREY_MATTER = Segment(1, "grey matter", (205, 62, 78))
WHITE_MATTER = Segment(2, "white matter", (80, 160, 255))
SOFT_TISSUE = Segment(1, "soft tissue", (177, 122, 101))
BONE = Segment(2, "bone", (241, 214, 145))

# InVesalius' masks are thresholds of the CT (their plists say so, and the masks equal
# them voxel for voxel): bone >= 226 HU, head >= -142 HU.
BONE_HU = 226


@dataclass(frozen=True)
class Sample:
    """A built-in segmentation example: a real volume, its ground truth and the model
    trained on that kind of image (on held-out slices, see the model's card)."""

    name: str
    study: Study
    truth: LabelMap | None  # None: a volume without a tissue ground truth
    model: str
    file: str  # the stem its files get when exported (`medlens samples export`)


def _nilearn(relative: str) -> Path:
    try:
        return package_path("nilearn", relative)
    except ModelError as exc:
        raise ModelError(f"{exc}; run make setup") from None


def _stored_layout(volume: np.ndarray) -> np.ndarray:
    """A nibabel (i, j, k) array in `Study.pixels`' layout (k, j, i), as the NIfTI reader
    stores it."""
    return np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))


@cache
def brain_tissue() -> tuple[Study, LabelMap]:
    """The MNI152 2009 T1 template (189 axial slices of 233x197 at 1 mm) and its tissue
    labels: 1 grey matter, 2 white matter, 0 everything else.

    Each voxel takes the most probable of three classes: grey matter (the GM map), white
    matter (the WM map) and "other" (1 - GM - WM: CSF and the background together, since
    no CSF map ships; the template nilearn ships is brain-extracted: zero outside the
    brain, no skull or scalp). With three probabilities summing to 1 the winner is at least
    1/3; a voxel with GM 0.45, WM 0.40 is grey matter. This is the maximum-probability
    hard labelling of the template's own tissue priors.
    """
    import nibabel as nib

    study = open_study(_nilearn(MNI_T1))
    maps = []
    for relative in (MNI_GM, MNI_WM):
        img = nib.load(str(_nilearn(relative)))
        if not np.allclose(img.affine, nib.load(str(_nilearn(MNI_T1))).affine):
            raise StudyError(f"{Path(relative).name}: not on the T1 template's grid")
        # Stored as uint8 0-255 (scl_slope 1): probabilities are value / 255.
        maps.append(_stored_layout(np.asarray(img.dataobj, dtype=np.float32)) / 255.0)
    gm, wm = maps
    other = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.argmax(np.stack([other, gm, wm]), axis=0).astype(np.uint8)
    truth = LabelMap(
        name="MNI152 2009 tissue (GM/WM maximum probability)",
        labels=labels,
        segments=(GREY_MATTER, WHITE_MATTER),
        source="NIfTI",
        affine=study.affine,
        pixel_spacing=study.pixel_spacing,
        slice_spacing=study.slice_spacing,
        notes=("labels: the most probable of grey matter, white matter and everything "
               "else (1 - GM - WM) in nilearn's MNI152 2009 probability maps",),
    )
    return study, truth


def _members(path: Path) -> dict[str, bytes]:
    """The files of an InVesalius project (a gzipped tar), by base name."""
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(path.read_bytes()))) as tar:
            return {Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]
                    for m in tar.getmembers() if m.isfile()}
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise StudyError(f"{path.name}: cannot read the InVesalius project ({exc})") from None


def _mask(files: dict[str, bytes], plist_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One InVesalius mask as bool in the CT's shape. The .dat is uint8 of one more
    voxel along each axis: index 0 of each axis holds InVesalius' "slice computed"
    flags, the mask proper is [1:, 1:, 1:], 255 inside, 0 outside."""
    meta = plistlib.loads(files[plist_name])
    full = np.frombuffer(files[meta["mask_file"]], np.uint8).reshape(meta["mask_shape"])
    inner = full[1:, 1:, 1:]
    if inner.shape != shape:
        raise StudyError(f"{meta['mask_file']}: mask {inner.shape} does not match the CT {shape}")
    return inner == 255


@cache
def head_ct() -> tuple[Study, LabelMap]:
    """InVesalius' `Cranium.inv3` head CT (108 axial slices of 256x256, 0.957 x 0.957 x
    1.5 mm, HU) and its labels: 1 soft tissue, 2 bone, 0 air and everything else.

    The project's two masks are thresholds (bone >= 226 HU; head >= -142 HU). The head is
    the largest connected part of the head mask (the scanner's table, also above
    -142 HU, is dropped); bone is the bone mask inside the head, soft tissue the rest of
    the head. Air inside the head (sinuses, airways) stays 0.

    Orientation: InVesalius stores slices inferior to superior and rows flipped
    (anterior at the bottom: the table lies above the occiput in the stored array), so
    the affine maps rows to anterior; columns are taken as DICOM's, towards the
    patient's left (the file keeps no direction cosines: left and right are assumed).
    """
    from scipy import ndimage

    if not CRANIUM.is_file():
        raise StudyError(f"{CRANIUM} is missing (Debian invesalius-examples); run make setup")
    files = _members(CRANIUM)
    main = plistlib.loads(files["main.plist"])
    matrix = main["matrix"]
    shape = tuple(int(s) for s in matrix["shape"])
    hu = np.frombuffer(files[matrix["filename"]], np.dtype(matrix["dtype"])).reshape(shape)
    sx, sy, sz = (float(s) for s in main["spacing"])
    # (column, row, slice) -> LPS mm: columns to the left, rows to anterior (-y), slices
    # to superior.
    affine = np.array([[sx, 0, 0, 0], [0, -sy, 0, (shape[1] - 1) * sy], [0, 0, sz, 0],
                       [0, 0, 0, 1]], dtype=np.float64)
    window = Window(float(main["window_level"]), float(main["window_width"]),
                    "file (InVesalius project)")
    study = Study(
        name=CRANIUM.name, format="NIfTI", pixels=hu.astype(np.float32),
        photometric="MONOCHROME2", stored_dtype=str(hu.dtype), window=window,
        modality=str(main.get("modality", "CT")), units="HU", bits_stored=16,
        metadata={"Format": "InVesalius project (.inv3)",
                  "Dimensions": " x ".join(map(str, shape[::-1])),
                  "VoxelSize": f"{sx:.4g} x {sy:.4g} x {sz:.4g} mm"},
        pixel_spacing=(sy, sx), slice_spacing=sz, affine=affine, windows=(window,),
        notes=("InVesalius project read as a volume: left and right assumed "
               "(the file keeps no direction cosines)",))
    masks = {plistlib.loads(files[n])["threshold_range"][0]: _mask(files, n, shape)
             for n in sorted(files) if n.startswith("mask_") and n.endswith(".plist")}
    bone = masks[BONE_HU]
    head = masks[min(masks)]
    parts, count = ndimage.label(head)
    if count > 1:
        sizes = np.bincount(parts.ravel())
        sizes[0] = 0
        head = parts == int(np.argmax(sizes))
    labels = np.zeros(shape, np.uint8)
    labels[head] = SOFT_TISSUE.number
    labels[head & bone] = BONE.number
    truth = LabelMap(
        name="Cranium.inv3 head and bone masks", labels=labels,
        segments=(SOFT_TISSUE, BONE), source="InVesalius", affine=affine,
        pixel_spacing=(sy, sx), slice_spacing=sz,
        notes=("labels from the project's masks: bone >= 226 HU inside the head, soft "
               "tissue the rest of the head (largest part of >= -142 HU)",))
    return study, truth


@cache
def colin27() -> Study:
    """Colin27 (Holmes et al. 1998: one subject scanned 27 times and averaged), brain-
    extracted (`ch2bet.nii.gz`, Debian mricron-data, BSD-3): a brain the brain-tissue
    model never saw. No tissue ground truth ships with it (its atlases are parcellations:
    bench/segment_colin27.py compares with AAL's grey-matter parcels)."""
    path = COLIN27
    if not path.is_file():
        raise StudyError(f"{path}: missing (Debian mricron-data: run make setup)")
    return open_study(path, name="Colin27 (ch2bet.nii.gz)")


def samples() -> tuple[Sample, ...]:
    """The built-in segmentation examples: each model's training volume with its ground
    truth, and a brain the brain model never saw. A missing data package raises one line
    (ModelError or StudyError) saying to run make setup."""
    brain, brain_truth = brain_tissue()
    ct, ct_truth = head_ct()
    return (
        Sample("MNI152 2009 T1 (brain MRI template)", brain, brain_truth,
               "brain-tissue-unet", "mni152-t1"),
        Sample("Cranium.inv3 (head CT, InVesalius)", ct, ct_truth, "head-ct-unet",
               "cranium-ct"),
        Sample("Colin27 (another brain, never seen in training)", colin27(), None,
               "brain-tissue-unet", "colin27"),
    )

