"""NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz) into `Study`, through nibabel.

NIfTI stores voxels (i, j, k) with an affine to RAS+ world millimetres; DICOM's patient
frame is LPS. The affine is converted once here, so volumes from both formats are cut
into the same radiological views (`Study.view`).
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from core.studies.study import (
    MAX_VOXELS,
    Study,
    StudyError,
    check_memory,
    one_line,
    plausible_mm,
)
from core.studies.windows import Window, auto_window

# RAS+ (NIfTI) to LPS (DICOM): flip the first two world axes.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# What a gzip stream's head must show before more is inflated: its format and, from its
# header, how much it may hold. A DICOM header longer than this is rare.
HEAD = 1 << 20


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def gunzip(data: bytes, name: str, limit: int,
           declared: Callable[[bytes, str], tuple[int, int, str]] | None = None) -> bytes:
    """Decompress a gzip stream (all its members) holding a NIfTI or DICOM file.

    The head is looked at first, so a bomb is refused before it is inflated:
    `declared(head, name)` says from the file's own header how many bytes to keep, how
    many it may hold at most, and which header said so; anything beyond `limit` is
    refused too. Bytes past the kept ones (a 4-D NIfTI's later volumes) are inflated and
    counted, not held.
    """
    parts: list[bytes] = []
    total, kept, rest, checked, source = 0, 0, data, declared is None, ""
    keep = limit

    def check() -> None:
        nonlocal parts, kept, keep, limit, checked, source
        keep, most, source = declared(b"".join(parts)[:HEAD], name)  # type: ignore[misc]
        limit, keep, checked = min(limit, most), min(keep, limit), True
        if kept > keep:  # already past what is kept: cut back
            parts, kept = [b"".join(parts)[:keep]], keep

    def over() -> StudyError:
        return StudyError(f"{name}: decompresses to more than {_size(limit)}"
                          + (f" (what its {source} header declares)" if source else ""))

    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            while True:
                chunk = inflater.decompress(rest, min(limit + 1 - total, 1 << 20))
                total += len(chunk)
                if kept < keep:
                    parts.append(chunk[: keep - kept])
                    kept += len(parts[-1])
                if not checked and total >= HEAD:
                    check()
                if total > limit:
                    raise over()
                rest = inflater.unconsumed_tail
                if inflater.eof or not rest:
                    break
            if not inflater.eof:
                if not checked:  # what the header declares says more than "truncated"
                    check()
                raise StudyError(f"{name}: a truncated gzip stream")
            rest = inflater.unused_data  # the next member, if any
    except zlib.error as exc:
        raise StudyError(f"{name}: a damaged gzip stream ({one_line(exc)})") from None
    if not checked:  # shorter than the head: its header still decides
        check()
        if total > limit:
            raise over()
    return b"".join(parts)


def _size(count: int) -> str:
    return f"{count / 1024**2:,.1f} MB" if count >= 1024**2 else f"{count / 1024:,.0f} KB"


def declared_bytes(head: bytes, name: str) -> tuple[int, int]:
    """(bytes up to the end of the first volume, bytes of the whole file) that a NIfTI
    header declares; StudyError for a header no file could match, or one over the
    memory budget."""
    for order in "<>":
        if struct.unpack(f"{order}i", head[:4])[0] == 348:
            dims = struct.unpack(f"{order}8h", head[40:56])
            bitpix = struct.unpack(f"{order}h", head[72:74])[0]
            offset = struct.unpack(f"{order}f", head[108:112])[0]
            break
        if struct.unpack(f"{order}i", head[:4])[0] == 540:
            bitpix = struct.unpack(f"{order}h", head[14:16])[0]
            dims = struct.unpack(f"{order}8q", head[16:80])
            offset = struct.unpack(f"{order}q", head[168:176])[0]
            break
    if not (math.isfinite(offset) and 0 <= offset < 2**40):
        raise StudyError(f"{name}: a NIfTI header with an invalid vox_offset ({offset})")
    sizes = [max(1, int(d)) for d in dims[1 : 1 + max(1, min(int(dims[0]), 7))]]
    volume = int(np.prod(sizes[:3], dtype=np.float64))
    count = int(np.prod(sizes, dtype=np.float64))
    if volume > MAX_VOXELS:
        raise StudyError(f"{name}: a NIfTI header declaring {'x'.join(map(str, sizes[:3]))} "
                         f"voxels, larger than the {MAX_VOXELS:,}-voxel limit")
    check_memory(name, volume, f"a NIfTI volume of {'x'.join(map(str, sizes[:3]))} voxels")
    start = max(int(offset), 352)
    width = max(int(bitpix), 8) // 8
    # Extensions and padding after the data are allowed a little room.
    return start + volume * width + 2**16, start + count * width + 2**16


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """nibabel logs the header fixes it makes, to stderr (with no handler, through
    logging's last resort): the CLI allows one line, and the study's notes say enough."""
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def is_nifti(data: bytes) -> bool:
    """A NIfTI-1 (348-byte header, magic n+1) or NIfTI-2 (540, n+2) single file."""
    if len(data) < 348:
        return False
    for order in "<>":
        size = struct.unpack(f"{order}i", data[:4])[0]
        if size == 348 and data[344:348] in (b"n+1\x00", b"ni1\x00"):
            return True
        if size == 540 and data[4:8] == b"n+2\x00":
            return True
    return False


def read_nifti(data: bytes, name: str) -> Study:
    """One NIfTI file's bytes (already decompressed) into a `Study` volume."""
    import nibabel as nib

    if data[344:348] == b"ni1\x00":
        raise StudyError(f"{name}: a NIfTI header without its image (.hdr/.img pair); "
                         "save it as one .nii file")
    kind = nib.Nifti2Image if data[4:8] == b"n+2\x00" else nib.Nifti1Image
    try:
        with _quiet(nib.imageglobals.logger):
            img = kind.from_bytes(data)
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:  # nibabel on a malformed header: any type; no code of ours
        raise StudyError(f"{name}: cannot read the NIfTI file ({one_line(exc)})") from None
    if len(shape) < 2 or min(shape) < 1:
        raise StudyError(f"{name}: a NIfTI image of shape {shape} holds no 2-D image")
    if int(np.prod(shape[:3])) > MAX_VOXELS:
        raise StudyError(f"{name}: {'x'.join(map(str, shape))} voxels, larger than the "
                         f"{MAX_VOXELS:,}-voxel limit")
    check_memory(name, int(np.prod(shape[:3])), f"a NIfTI volume of "
                 f"{'x'.join(map(str, shape[:3]))} voxels")
    notes = []
    if len(shape) > 3:
        extra = int(np.prod(shape[3:]))
        notes.append(f"4-D NIfTI: volume 1 of {extra} shown (dimension 4: "
                     f"{'time' if len(shape) == 4 else 'higher dimensions'})")
    try:
        pixels, complex_, finite = _voxels(img, shape)
    except Exception as exc:  # nibabel reading the data: any type; no code of ours
        raise StudyError(f"{name}: cannot read the NIfTI voxels ({one_line(exc)})") from None
    if complex_:
        notes.append("complex voxels: their magnitude is shown")
    if not finite:
        notes.append("non-finite voxels (NaN/inf) shown as 0")

    affine = RAS_TO_LPS @ np.asarray(img.affine, dtype=np.float64)
    sizes = [float(np.linalg.norm(affine[:3, axis])) for axis in range(3)]
    header = img.header
    geometry = all(plausible_mm(size) for size in sizes) and np.all(np.isfinite(affine))
    if geometry:
        codes = "".join(nib.aff2axcodes(img.affine))
    else:
        # NaN, infinite or absurd voxel sizes: shown as stored, with no scale.
        notes.append("the header's voxel geometry is not valid: voxels shown as stored, "
                     "spacing unknown")
        affine, codes = RAS_TO_LPS.copy(), "unknown"
    window = None
    cal_min, cal_max = float(header["cal_min"]), float(header["cal_max"])
    if cal_max > cal_min and np.isfinite(cal_max - cal_min):
        window = Window((cal_min + cal_max) / 2, cal_max - cal_min, "file (cal_min-cal_max)")
    dtype = np.dtype(img.get_data_dtype())
    spatial, _ = header.get_xyzt_units()
    metadata = {
        "Format": f"NIfTI-{'2' if kind is nib.Nifti2Image else '1'}",
        "Dimensions": " x ".join(map(str, shape)),
        "DataType": dtype.name,
        "VoxelSize": " x ".join(f"{s:.4g}" for s in sizes) + f" {spatial or 'mm'}",
        "StoredOrientation": f"{codes} (voxel axes i, j, k point to these sides)",
        "QformCode": str(int(header["qform_code"])),
        "SformCode": str(int(header["sform_code"])),
    }
    # The free-text description may be any bytes; kept apart like DICOM's identifying tags.
    description = bytes(header["descrip"].item()).decode("utf-8", errors="replace")
    slope, inter = header.get_slope_inter()
    if slope is not None and (slope, inter) != (1.0, 0.0):
        metadata["Scaling"] = f"value = stored x {slope:g} + {inter or 0:g}"
    return Study(
        name=name,
        format="NIfTI",
        pixels=pixels,
        photometric="MONOCHROME2",
        stored_dtype=dtype.name,
        window=window or auto_window(pixels),
        modality=None,
        units="",
        bits_stored=dtype.itemsize * 8,
        metadata=metadata,
        identifying={"Description": description} if description.strip() else {},
        pixel_spacing=(sizes[1], sizes[0]) if geometry else None,
        slice_spacing=sizes[2] if pixels.shape[0] > 1 and geometry else None,
        affine=affine if pixels.shape[0] > 1 else None,
        windows=(window,) if window else (),
        notes=tuple(notes),
    )


def _voxels(img, shape: tuple[int, ...]) -> tuple[np.ndarray, bool, bool]:
    """The first volume as float32 in the Study's (slice k, row j, column i) layout, read
    slice by slice (nibabel scales each in float64; the whole volume never is), whether
    it was complex (its magnitude kept) and whether every value was finite (else 0)."""
    cols, rows = shape[0], shape[1]
    slices = shape[2] if len(shape) > 2 else 1
    out = np.empty((slices, rows, cols), dtype=np.float32)
    rest = (0,) * max(0, len(shape) - 3)
    complex_, finite = False, True
    for k in range(slices):
        index = (slice(None), slice(None)) + ((k,) if len(shape) > 2 else ()) + rest
        # dataobj applies scl_slope/scl_inter: the stored values in their real units.
        plane = np.asarray(img.dataobj[index])
        if np.iscomplexobj(plane):
            plane, complex_ = np.abs(plane), True
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: checked next
            out[k] = plane.T
        if not np.all(np.isfinite(out[k])):
            finite = False
            np.nan_to_num(out[k], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out, complex_, finite
