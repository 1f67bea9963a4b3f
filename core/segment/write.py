"""Writing results: a label map as NIfTI (with the study's affine) or as DICOM SEG
(highdicom) referencing the source images, and a picture (the overlay) as PNG.

Nothing written carries identifying data unless asked: the NIfTI and PNG hold none, and a
SEG replaces the source's identity (PS3.15 Annex E's Basic Profile, as `core.studies.deid`
defines it) unless `keep_identity=True`, which is for sending the SEG back to the PACS the
study came from.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np

from core.studies.deid import identifying_kind
from core.studies.masks import NIFTI_COMMENT, LabelMap
from core.studies.nifti import RAS_TO_LPS
from core.studies.study import Study, StudyError

MANUFACTURER = "MedLens"
# What a de-identified SEG says in place of the patient (PS3.15 E.1: dummy values).
PLACEHOLDER_NAME = "Anonymous^Patient"
PLACEHOLDER_ID = "ANONYMOUS"
# Type 2 attributes highdicom copies from the source: present, empty, when de-identified.
EMPTIED = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber",
           "StudyID", "ReferringPhysicianName")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medlens")
    except PackageNotFoundError:
        return "0"


def _index_affine(labels: LabelMap | Study) -> np.ndarray:
    """(column, row, slice) -> LPS mm: the map's (or study's) own affine, else its
    spacing alone."""
    if labels.affine is not None:
        return np.asarray(labels.affine, dtype=np.float64)
    rows, cols = labels.pixel_spacing or (1.0, 1.0)
    return np.diag([float(cols), float(rows), float(labels.slice_spacing or 1.0), 1.0])


def write_nifti(labels: LabelMap, path: str | Path) -> Path:
    """The label map as a NIfTI-1 file (.nii or .nii.gz by the name): uint8 (uint16 past
    255 labels), voxel (i, j, k) = labels[k, j, i], the affine in RAS+ (the inverse of
    `core.studies.nifti`'s reading); segment names and colours in a comment extension."""
    import nibabel as nib

    values = np.asarray(labels.labels)
    if values.ndim != 3:
        raise StudyError(f"{labels.name}: a label map of shape {values.shape}, expected "
                         "(slices, rows, columns)")
    top = int(values.max()) if values.size else 0
    image = _nifti_image(values.astype(np.uint8 if top <= 255 else np.uint16, copy=False),
                         labels, "MedLens label map")
    image.header["cal_min"], image.header["cal_max"] = 0, max(top, 1)
    table = [{"number": s.number, "name": s.name, "colour": list(s.colour)}
             for s in labels.segments]
    image.header.extensions.append(nib.nifti1.Nifti1Extension(
        NIFTI_COMMENT, json.dumps({"medlens_segments": table}).encode()))
    path = Path(path)
    nib.save(image, str(path))
    return path


def write_volume(study: Study, path: str | Path) -> Path:
    """A greyscale volume study as NIfTI-1 in its physical units (int16 where the values
    are whole numbers in its range, as CT's HU; float32 otherwise), with its affine: a
    study built in memory (the built-in training volumes) as a file any tool opens. No
    header text from the study is written."""
    import nibabel as nib

    values = np.asarray(study.pixels)
    if values.ndim != 3:
        raise StudyError(f"{study.name}: a {values.ndim - 1}-D study of shape {values.shape}: "
                         "only greyscale volumes are written as NIfTI")
    whole = np.array_equal(values, np.round(values)) and values.min() >= -32768 \
        and values.max() <= 32767
    image = _nifti_image(values.astype(np.int16 if whole else np.float32), study,
                         "MedLens volume")
    path = Path(path)
    nib.save(image, str(path))
    return path


def _nifti_image(values: np.ndarray, geometry: LabelMap | Study, description: str):
    """A NIfTI-1 image of (slice k, row j, column i) `values` (NIfTI stores (i, j, k)),
    its affine in RAS+ from the geometry's (LPS, core.studies' convention), in mm."""
    import nibabel as nib

    data = np.ascontiguousarray(values.transpose(2, 1, 0))
    # LPS -> RAS flips the first two world axes: the same matrix both ways.
    affine = RAS_TO_LPS @ _index_affine(geometry)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)  # scanner coordinates, as the study's
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description.encode()
    return image


def write_png(picture: np.ndarray, path: str | Path) -> Path:
    """An 8-bit picture ((H, W) grey or (H, W, 3) RGB: an overlay) as PNG, with no text
    chunks (nothing but the pixels)."""
    from PIL import Image

    picture = np.asarray(picture)
    if picture.dtype != np.uint8 or picture.ndim not in (2, 3) or (
            picture.ndim == 3 and picture.shape[2] not in (3, 4)):
        raise ValueError(f"a PNG is written from uint8 (H, W) or (H, W, 3), not "
                         f"{picture.dtype} {picture.shape}")
    path = Path(path)
    Image.fromarray(picture).save(path, format="PNG")
    return path


# -- DICOM SEG ---------------------------------------------------------------------------

def _pseudonym(uid: str) -> str:
    """A UID standing for another, the same each time (two SEGs of one study still share
    a study), from which the original cannot be read back (a SHA-512 of it)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medlens-deid", str(uid)]))


def _deidentify(ds):
    """A copy of a source header with its identity replaced: identifying attributes
    (`core.studies.deid`) dropped, instance UIDs replaced by pseudonyms, private elements
    dropped, at every depth; the patient named by a placeholder."""
    from pydicom.dataset import Dataset

    def clean(source) -> Dataset:
        out = Dataset()
        for elem in source:
            if elem.tag.is_private:
                continue
            if elem.VR == "SQ":
                out.add_new(elem.tag, "SQ", [clean(item) for item in elem.value])
            elif identifying_kind(elem.keyword or "", elem.VR):
                if elem.VR == "UI" and elem.value:
                    out.add_new(elem.tag, "UI", _pseudonym(elem.value))
            else:
                out.add(elem)
        return out

    copy = clean(ds)
    copy.PatientName, copy.PatientID = PLACEHOLDER_NAME, PLACEHOLDER_ID
    for keyword in EMPTIED:
        setattr(copy, keyword, "")
    copy.PatientIdentityRemoved = "YES"
    copy.DeidentificationMethod = "MedLens: PS3.15 Basic Profile, UIDs replaced"
    return copy


def _source_order(study: Study) -> list[int]:
    """For each frame of a multi-frame source, in file order, the slice of
    `study.pixels` it became (reading may reorder frames along the slice normal)."""
    source = study.sources[0]
    frames = int(source.get("NumberOfFrames") or 1)
    if study.affine is None or frames != study.frames:
        return list(range(frames))
    origin, normal = study.affine[:3, 3], study.affine[:3, 2]
    places = []
    for item in source.get("PerFrameFunctionalGroupsSequence") or ():
        try:
            position = np.asarray([float(v) for v in
                                   item.PlanePositionSequence[0].ImagePositionPatient])
        except (AttributeError, IndexError, TypeError, ValueError):
            return list(range(frames))
        places.append(int(round(float((position - origin) @ normal / (normal @ normal)))))
    return places if sorted(places) == list(range(frames)) else list(range(frames))


def _codes(name: str):
    """The segmented property type: the SNOMED CT concept named like the segment when
    pydicom's code dictionary has one ("Bone", "White matter"), else "Tissue"."""
    from pydicom.sr.codedict import codes

    keyword = "".join(word.capitalize() for word in re.findall(r"[A-Za-z]+", name))
    try:
        return getattr(codes.SCT, keyword)
    except AttributeError:
        return codes.SCT.Tissue


def write_dicom_seg(labels: LabelMap, study: Study, path: str | Path,
                    keep_identity: bool = False, algorithm: str | None = None) -> Path:
    """The label map as a DICOM Segmentation (BINARY, one segment per label, with its
    name and colour) referencing the study's source images.

    By default the identity is replaced: new Study/Series/SOP instance UIDs (pseudonyms of
    the source's, which are referenced under them), a placeholder patient, no birth date,
    accession, institution or other identifying attribute. `keep_identity=True` keeps the
    source's patient and study (for the PACS it came from). `algorithm` names the model
    ("MedLens <algorithm>" in the SEG; the map's name by default)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not study.sources:
        raise StudyError(f"{study.name}: DICOM SEG needs a DICOM study (this is "
                         f"{study.format})")
    values = np.asarray(labels.labels)
    if values.shape != study.pixels.shape[:3]:
        raise StudyError(f"{labels.name} ({'x'.join(map(str, values.shape))}) does not fit "
                         f"{study.name} ({'x'.join(map(str, study.pixels.shape[:3]))})")
    if not labels.segments:
        raise StudyError(f"{labels.name}: no segments to write")
    sources = list(study.sources) if keep_identity else [_deidentify(s) for s in study.sources]
    if len(sources) == 1 and values.shape[0] > 1:
        values = values[_source_order(study)]  # frames in the file's order
    # One boolean plane per segment, numbered 1..S as DICOM requires (a map's own numbers
    # may skip).
    planes = np.stack([values == s.number for s in labels.segments], axis=-1)
    automatic = labels.source == "model"
    name = f"{MANUFACTURER} {algorithm or labels.name}"
    identification = hd.AlgorithmIdentificationSequence(
        name=name[:64], family=codes.cid7162.ArtificialIntelligence, version=_version())
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=s.name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=_codes(s.name),
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if automatic
                            else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
            algorithm_identification=identification if automatic else None,
            display_color=hd.color.CIELabColor.from_rgb(*s.colour),
        )
        for i, s in enumerate(labels.segments)
    ]
    with warnings.catch_warnings():
        # highdicom's advice on a source's one-part patient name ("CQ500-CT-310"): the
        # name is the PACS's, kept as it is.
        warnings.filterwarnings("ignore", message=".*intended person name")
        seg = _segmentation(hd, sources, planes, descriptions, name)
    path = Path(path)
    seg.save_as(str(path))
    return path


def _segmentation(hd, sources, planes, descriptions, name):
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=planes,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=name[:64],
        software_versions=_version(),
        device_serial_number="0",
        series_description=f"Segmentation ({name})"[:64],
        # An empty map still has one frame to write.
        omit_empty_frames=bool(planes.any()),
    )
