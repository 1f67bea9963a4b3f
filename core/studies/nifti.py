"""NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz) into `Study`, through nibabel.

NIfTI stores voxels (i, j, k) with an affine to RAS+ world millimetres; DICOM's patient
frame is LPS. The affine is converted once here, so volumes from both formats are cut
into the same radiological views (`Study.view`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from core.studies.study import MAX_VOXELS, Study, StudyError, one_line
from core.studies.windows import Window, auto_window

# RAS+ (NIfTI) to LPS (DICOM): flip the first two world axes.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def gunzip(data: bytes, name: str, limit: int) -> bytes:
    """Decompress a gzip stream (all its members) holding a NIfTI or DICOM file.

    The head is looked at first, so a bomb is refused before it is inflated: content
    that is neither NIfTI nor DICOM at once, a NIfTI beyond the size its own header
    declares, anything beyond `limit` bytes.
    """
    parts: list[bytes] = []
    total, rest, checked = 0, data, False
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            while True:
                chunk = inflater.decompress(rest, min(limit + 1 - total, 1 << 20))
                total += len(chunk)
                parts.append(chunk)
                if not checked and (total >= 544 or inflater.eof):
                    limit = min(limit, _declared_size(b"".join(parts)[:544], name))
                    checked = True
                if total > limit:
                    raise StudyError(f"{name}: decompresses to more than {_size(limit)}"
                                     + (" (what its NIfTI header declares)" if checked else ""))
                rest = inflater.unconsumed_tail
                if inflater.eof or not rest:
                    break
            if not inflater.eof:
                raise StudyError(f"{name}: a truncated gzip stream")
            rest = inflater.unused_data  # the next member, if any
    except zlib.error as exc:
        raise StudyError(f"{name}: a damaged gzip stream ({one_line(exc)})") from None
    return b"".join(parts)


def _size(count: int) -> str:
    return f"{count / 1024**2:,.1f} MB" if count >= 1024**2 else f"{count / 1024:,.0f} KB"


def _declared_size(head: bytes, name: str) -> int:
    """The most a gzipped file may inflate to, from its first bytes."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return MAX_VOXELS * 4 + 2**20
    if not is_nifti(head.ljust(544, b"\0")):
        raise StudyError(f"{name}: a gzip file holding neither NIfTI nor DICOM")
    for order in "<>":
        if struct.unpack(f"{order}i", head[:4])[0] == 348:
            dims = struct.unpack(f"{order}8h", head[40:56])
            bitpix = struct.unpack(f"{order}h", head[72:74])[0]
            offset = int(struct.unpack(f"{order}f", head[108:112])[0])
            break
        if struct.unpack(f"{order}i", head[:4])[0] == 540:
            bitpix = struct.unpack(f"{order}h", head[14:16])[0]
            dims = struct.unpack(f"{order}8q", head[16:80])
            offset = struct.unpack(f"{order}q", head[168:176])[0]
            break
    count = int(np.prod([max(1, d) for d in dims[1 : 1 + max(1, min(dims[0], 7))]],
                        dtype=np.float64))
    if count > MAX_VOXELS * 64:  # 4-D series: only the first volume is read, but allow some
        raise StudyError(f"{name}: a NIfTI header declaring {count:,} voxels")
    # Extensions and padding after the data are allowed a little room.
    return max(offset, 352) + count * max(bitpix, 8) // 8 + 2**16


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
        img = kind.from_bytes(data)
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:
        raise StudyError(f"{name}: cannot read the NIfTI file ({one_line(exc)})") from None
    if len(shape) < 2 or min(shape) < 1:
        raise StudyError(f"{name}: a NIfTI image of shape {shape} holds no 2-D image")
    if int(np.prod(shape[:3])) > MAX_VOXELS:
        raise StudyError(f"{name}: {'x'.join(map(str, shape))} voxels, larger than the "
                         f"{MAX_VOXELS:,}-voxel limit")
    notes = []
    index: tuple = (slice(None),) * min(len(shape), 3)
    if len(shape) > 3:
        extra = int(np.prod(shape[3:]))
        index += (0,) * (len(shape) - 3)
        notes.append(f"4-D NIfTI: volume 1 of {extra} shown (dimension 4: "
                     f"{'time' if len(shape) == 4 else 'higher dimensions'})")
    try:
        # dataobj applies scl_slope/scl_inter: the stored values in their real units.
        voxels = np.asarray(img.dataobj[index])
        if np.iscomplexobj(voxels):
            voxels = np.abs(voxels)
            notes.append("complex voxels: their magnitude is shown")
        voxels = voxels.astype(np.float32)
    except Exception as exc:
        raise StudyError(f"{name}: cannot read the NIfTI voxels ({one_line(exc)})") from None
    if voxels.ndim == 2:
        voxels = voxels[:, :, None]
    if not np.all(np.isfinite(voxels)):
        notes.append("non-finite voxels (NaN/inf) shown as 0")
        voxels = np.nan_to_num(voxels, nan=0.0, posinf=0.0, neginf=0.0)

    # (i, j, k) -> (slice k, row j, column i), the Study's layout.
    pixels = np.ascontiguousarray(np.transpose(voxels, (2, 1, 0)))
    affine = RAS_TO_LPS @ np.asarray(img.affine, dtype=np.float64)
    sizes = [float(np.linalg.norm(affine[:3, axis])) for axis in range(3)]
    header = img.header
    codes = "".join(nib.aff2axcodes(img.affine))
    window = None
    cal_min, cal_max = float(header["cal_min"]), float(header["cal_max"])
    if cal_max > cal_min:
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
        identifying={"Description": str(header["descrip"].astype(str))}
        if str(header["descrip"].astype(str)).strip() else {},
        pixel_spacing=(sizes[1], sizes[0]),
        slice_spacing=sizes[2] if pixels.shape[0] > 1 else None,
        affine=affine if pixels.shape[0] > 1 else None,
        windows=(window,) if window else (),
        notes=tuple(notes),
    )
