"""Hostile study files, built from their descriptions (issue 12) at test time, and the
mutation corpus the fuzzing tests and `bench/fuzz_studies.py` draw from.

Nothing big is committed: each file is written into a temporary folder when a test or a
benchmark asks for it. Small files that declare a huge image are deflated streams of
zeros, made cheaply by compressing one block once and repeating its compressed form
(a full flush resets the compressor, so equal input gives equal output).

`python -m tests.unit.hostile PATH...` opens, shows and prepares each file in this fresh
interpreter, the way the Viewer and the model input do, and prints one JSON line per file
with the outcome and this process's peak memory (`ru_maxrss`). Run one file per process
to measure one file's peak.
"""

from __future__ import annotations

import io
import json
import random
import resource
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BUDGET_ENV = "MEDLENS_STUDY_MEMORY_MB"
MB = 1024**2


# -- compressed streams of zeros --------------------------------------------------------

def _deflate(pieces: Iterable[tuple[bytes, int]]) -> tuple[bytes, int, int, int]:
    """Raw deflate of each (bytes, times) piece repeated `times` times, compressing each
    piece once. Returns (stream, crc32, adler32, length) of the uncompressed data."""
    out: list[bytes] = []
    crc, adler, length = 0, 1, 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    for data, times in pieces:
        block = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        # After a full flush the compressor starts afresh: equal input, equal output.
        if times > 1:
            again = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
            out.extend([block] + [again] * (times - 1))
        else:
            out.append(block)
        for _ in range(times):
            crc, adler = zlib.crc32(data, crc), zlib.adler32(data, adler)
        length += len(data) * times
    out.append(compressor.flush(zlib.Z_FINISH))
    return b"".join(out), crc, adler, length


def _zeros(count: int, chunk: int = 16 * MB) -> list[tuple[bytes, int]]:
    block = bytes(min(chunk, count))
    pieces = [(block, count // len(block))] if count >= len(block) else []
    if count % len(block):
        pieces.append((bytes(count % len(block)), 1))
    return pieces


def gzip_of(pieces: Iterable[tuple[bytes, int]]) -> bytes:
    """A gzip file (RFC 1952) of the repeated pieces."""
    stream, crc, _, length = _deflate(pieces)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03" + stream
            + struct.pack("<II", crc, length & 0xFFFFFFFF))


def zlib_of(pieces: Iterable[tuple[bytes, int]]) -> bytes:
    """A zlib stream (RFC 1950) of the repeated pieces."""
    stream, _, adler, _ = _deflate(pieces)
    return b"\x78\xda" + stream + struct.pack(">I", adler)


# -- building blocks --------------------------------------------------------------------

def dicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"{name} is not among pydicom's installed test files")
    return Path(path)


def nibabel_file(name: str) -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / name


def sample_images() -> list[Path]:
    """The real JPEGs the model packages ship (a brain MRI slice, a chest X-ray)."""
    from core.models import card
    from core.models.samples import samples

    found = []
    for model in ("braintumor-xception", "pneumonia-xception"):
        found.append(min((s.path for s in samples(card(model))), key=lambda p: p.stat().st_size))
    return found


def dicom_bytes(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_header(rows: int, cols: int, frames: int, bits: int = 16,
                 pixel_bytes: int | None = None, **extra: Any) -> bytes:
    """An uncompressed (explicit VR little endian) DICOM file up to and including the
    Pixel Data element's header, which declares `pixel_bytes` (default: what rows x
    cols x frames need); the pixels themselves are left to the caller to append."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4.5.6.7"
    ds.Modality, ds.SeriesInstanceUID = "OT", "1.2.3.4.5.6"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = b"\0\0"
    data = dicom_bytes(ds)
    assert data.endswith(b"\xe0\x7f\x10\x00OW\x00\x00\x02\x00\x00\x00\x00\x00")
    size = rows * cols * frames * bits // 8 if pixel_bytes is None else pixel_bytes
    return data[:-6] + struct.pack("<I", size)


def png_header(width: int, height: int, mode: int = 0) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))


def nifti_header(shape: tuple[int, ...], dtype: Any = np.uint8, **fields: Any) -> bytes:
    """A single-file NIfTI-1 header (352 bytes with the extension flag)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    for key, value in fields.items():
        header[key] = value
    return header.binaryblock + b"\0\0\0\0"


def zip_of(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            archive.writestr(info, data)
    return buffer.getvalue()


def zip_of_copies(name: str, data: bytes, copies: int) -> bytes:
    """A zip of `copies` entries with the same content (deflated once), written by hand:
    building 1000 members of 2 MB each through zipfile would deflate 2 GB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = compressor.compress(data) + compressor.flush()
    crc = zlib.crc32(data)
    local, central = io.BytesIO(), io.BytesIO()
    stem, dot, ext = name.rpartition(".")
    for i in range(copies):
        entry = f"{stem}{i:05d}{dot}{ext}".encode()
        offset = local.tell()
        fields = (20, 0, 8, 0, 0x5021, crc, len(packed), len(data), len(entry), 0)
        local.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + entry + packed)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x5021,
                                  crc, len(packed), len(data), len(entry), 0, 0, 0, 0, 0,
                                  offset) + entry)
    directory = central.getvalue()
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(directory),
                      local.tell(), 0)
    return local.getvalue() + directory + end


def retag(data: bytes, group: int, element: int, vr: bytes) -> bytes:
    """An explicit VR little endian DICOM with one short-form element's VR replaced."""
    at = data.index(struct.pack("<HH", group, element)) + 4
    return data[:at] + vr + data[at + 2:]


def with_elements(path: Path, **values: Any) -> bytes:
    import warnings

    import pydicom

    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid values are the point
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return dicom_bytes(ds)


def nested_zip(depth: int, inner: bytes, name: str = "inner.zip",
               leaf: str = "ct.dcm") -> bytes:
    data = zip_of({leaf: inner}, zipfile.ZIP_STORED)
    for _ in range(depth - 1):
        data = zip_of({name: data}, zipfile.ZIP_STORED)
    return data


def damage_member(data: bytes, member: str) -> bytes:
    """A zip with one deflated member's first block set to the invalid type 3: zlib
    fails ("invalid block type") before any CRC is checked."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out = bytearray(data)
    out[start] |= 0x06
    return bytes(out)


def damaged_member_zip() -> bytes:
    ct = dicom_file("CT_small.dcm").read_bytes()
    return damage_member(zip_of({"series/ct.dcm": ct}), "series/ct.dcm")


def broken_png() -> bytes:
    """A PNG whose image data is split over two IDAT chunks, the second one's type not
    letters: Pillow raises SyntaxError("broken PNG file") while it decodes."""
    rows = b"".join(b"\0" + bytes(range(i, i + 64)) for i in range(64))
    packed = zlib.compress(rows)
    return (png_header(64, 64) + png_chunk(b"IDAT", packed[:20])
            + png_chunk(b"\x01\x02\x03\x04", packed[20:]) + png_chunk(b"IEND", b""))


def two_series(uid_a: str, uid_b: str) -> bytes:
    ct, mr = dicom_file("CT_small.dcm"), dicom_file("MR_small.dcm")
    return zip_of({"study/ct.dcm": with_elements(ct, SeriesInstanceUID=uid_a, SeriesNumber=3),
                   "study/mr.dcm": with_elements(mr, SeriesInstanceUID=uid_b, SeriesNumber=7),
                   "study/mr2.dcm": with_elements(mr, SeriesInstanceUID=uid_b, SeriesNumber=7,
                                                  SOPInstanceUID="1.2.3.99",
                                                  InstanceNumber=2)})


def series_zip(slices: int) -> bytes:
    """A real CT series (tests.series: 512x512 slices with geometry) as one zip."""
    import tempfile

    from tests.series import write_series

    with tempfile.TemporaryDirectory() as folder:
        files = write_series(Path(folder), slices=slices)
        return zip_of({f"series/{f.name}": f.read_bytes() for f in files})


# -- the hostile files ------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    """One hostile file: its name, what it is, how to build its bytes, and how much a
    study read from it would hold (float32 values; 0 when it must be refused whatever
    the budget)."""

    name: str
    what: str
    build: Callable[[], bytes]
    values: int = 0
    refused: bool = False  # refused whatever the memory budget

    def opens(self, budget_mb: float) -> bool:
        """Whether it should open under this budget (3x its float32 size fits)."""
        return not self.refused and self.values > 0 and 3 * self.values * 4 <= budget_mb * MB

    def float32_mb(self) -> float:
        return self.values * 4 / MB

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if not path.exists():
            path.write_bytes(self.build())
        return path


_CT = lambda: dicom_file("CT_small.dcm").read_bytes()  # noqa: E731


def _uid_with_controls() -> bytes:
    return two_series("1.2.826.0.1.3680043.8.498.1\n\x1b[2J\r99", "1.2.826.0.1.3680043.2.77")


# Item 1 of the issue (small files that cost gigabytes), then the same kinds small enough
# to open in a fast test, then item 2 (exceptions that were not StudyError) and 4 (lines).
CASES: tuple[Hostile, ...] = (
    Hostile("zeros_1029x512x512.dcm.gz",
            "527 KB gzipped DICOM holding 1029x512x512 16-bit zeros",
            lambda: gzip_of([(dicom_header(512, 512, 1029), 1), *_zeros(1029 * 512 * 512 * 2)]),
            values=1029 * 512 * 512),
    Hostile("constant_9999x9999.png", "97 KB 9999x9999 greyscale PNG, constant",
            lambda: png_header(9999, 9999) + png_chunk(
                b"IDAT", zlib_of([(bytes(1 + 9999) * 100, 99), (bytes(1 + 9999) * 99, 1)]))
            + png_chunk(b"IEND", b""),
            values=9999 * 9999),
    Hostile("copies_1000x2MB.zip", "4.5 MB zip of 1000 DICOM files of 2 MB each",
            lambda: zip_of_copies("slice.dcm", dicom_header(1024, 1024, 1)
                                  + bytes(1024 * 1024 * 2), 1000),
            values=1000 * 1024 * 1024, refused=True),
    Hostile("voxels_270M.nii.gz", "262 KB gzipped NIfTI of 270 M voxels (512x512x1030 uint8)",
            lambda: gzip_of([(nifti_header((512, 512, 1030)), 1), *_zeros(512 * 512 * 1030)]),
            values=512 * 512 * 1030, refused=True),
    Hostile("zeros_64x512x512.dcm.gz", "gzipped DICOM holding 64x512x512 zeros (opens)",
            lambda: gzip_of([(dicom_header(512, 512, 64), 1), *_zeros(64 * 512 * 512 * 2)]),
            values=64 * 512 * 512),
    Hostile("constant_4000x4000.png", "4000x4000 greyscale PNG, constant (opens)",
            lambda: png_header(4000, 4000) + png_chunk(
                b"IDAT", zlib_of([(bytes(1 + 4000) * 100, 40)])) + png_chunk(b"IEND", b""),
            values=4000 * 4000),
    Hostile("voxels_512x512x64.nii.gz", "gzipped NIfTI of 512x512x64 uint8 (opens)",
            lambda: gzip_of([(nifti_header((512, 512, 64)), 1), *_zeros(512 * 512 * 64)]),
            values=512 * 512 * 64),
    Hostile("series_48.zip", "a real 48-slice 512x512 CT series in a zip (opens)",
            lambda: series_zip(48), values=48 * 512 * 512),
    Hostile("declares_64k_frames.dcm", "a DICOM declaring 65535 frames of 4096x4096, "
            "holding none", lambda: dicom_header(4096, 4096, 65535, pixel_bytes=2),
            refused=True),
    Hostile("damaged_member.zip", "zlib.error from a damaged zip member",
            damaged_member_zip, refused=True),
    Hostile("unknown_vr.dcm", "NotImplementedError from an unknown VR read lazily",
            lambda: retag(_CT(), 0x0008, 0x0090, b"ZZ"), values=128 * 128),
    Hostile("bytes_length.dcm", "pydicom's BytesLengthException (a 2-byte FL value)",
            lambda: retag(_CT(), 0x0008, 0x0060, b"FL"), refused=True),
    Hostile("bad_descrip.nii", "UnicodeDecodeError from a NIfTI descrip field",
            lambda: nifti_header((16, 16, 4), descrip=b"\xff\xfe\xfa" * 20) + bytes(1024),
            values=16 * 16 * 4),
    Hostile("palette_lut.dcm", "ValueError from a palette LUT (data one entry too long)",
            lambda: with_elements(
                dicom_file("examples_palette.dcm"),
                RedPaletteColorLookupTableData=dicom_bytes_element(
                    "examples_palette.dcm", "RedPaletteColorLookupTableData") + b"\0\0"),
            refused=True),
    Hostile("palette_bits.dcm", "TypeError from a palette LUT declaring 12 bits",
            lambda: with_elements(dicom_file("examples_palette.dcm"),
                                  RedPaletteColorLookupTableDescriptor=[256, 0, 12]),
            refused=True),
    Hostile("spacing_1e308.dcm", "PixelSpacing 1e308 (NaN in true_aspect)",
            lambda: with_elements(dicom_file("CT_small.dcm"), PixelSpacing=[1e308, 1.0]),
            values=128 * 128),
    Hostile("spacing_1e-308.dcm", "PixelSpacing 1e-308 (NaN in true_aspect)",
            lambda: with_elements(dicom_file("CT_small.dcm"), PixelSpacing=[1e-308, 1.0]),
            values=128 * 128),
    Hostile("nan_vox_offset.nii.gz", "a NaN vox_offset in a gzipped NIfTI",
            lambda: gzip_of([(nifti_header((16, 16, 4), vox_offset=float("nan")), 1),
                             (bytes(1024), 1)]), refused=True),
    Hostile("nan_vox_offset.nii", "a NaN vox_offset in a NIfTI",
            lambda: nifti_header((16, 16, 4), vox_offset=float("nan")) + bytes(1024),
            refused=True),
    Hostile("broken_chunk.png", "Pillow's SyntaxError on a broken PNG", broken_png,
            refused=True),
    Hostile("nested_400.zip", "RecursionError from a zip nested 400 deep",
            lambda: nested_zip(400, _CT()), refused=True),
    Hostile("nested_20_long_names.zip", "a 2.9 KB message from deep nesting",
            lambda: nested_zip(20, b"not a study", name="n" * 140 + ".zip"), refused=True),
    Hostile("uid_controls.zip", "a SeriesInstanceUID with control characters, and a "
            "second series (notes must name neither UID)", _uid_with_controls,
            values=128 * 128),
    Hostile("newline_entry.zip", "a zip entry name holding a newline, beside a good file",
            lambda: zip_of({"study/ct.dcm": _CT(), "study/read\nme.txt": b"hello"}),
            values=128 * 128),
    Hostile("newline_only.zip", "a zip whose only entry's name holds a newline",
            lambda: zip_of({"study/bad\nname\x1b[31m.dcm": b"not a study" * 40}),
            refused=True),
)

FAST = tuple(c for c in CASES if c.name not in {
    "zeros_1029x512x512.dcm.gz", "constant_9999x9999.png"})


def dicom_bytes_element(file: str, keyword: str) -> bytes:
    import pydicom

    return bytes(pydicom.dcmread(dicom_file(file))[keyword].value)


def case(name: str) -> Hostile:
    return next(c for c in CASES if c.name == name)


# -- what the Viewer and the model input do with a study ----------------------------------

def show(study: Any, prepare: bool = True) -> None:
    """Everything the Viewer does with an opened study (and, with `prepare`, what Explain
    does to make a model's input): window choices, the picture of the first, middle and
    last image of every plane with its caption, each window the file offers, the PNG."""
    from core.studies import viewing

    choices, _ = viewing.window_choices(study)
    viewing.summary(study)
    viewing.metadata_rows(study.metadata)
    for plane in study.planes or (None,):
        count = study.count(plane)
        for index in sorted({0, study.default_index(plane), count - 1}):
            pic = viewing.picture(study, index, None, plane)
            viewing.spacing_caption(pic, study)
            viewing.png(pic.image)
    for window in study.windows[:3]:
        viewing.picture(study, study.default_index(), window, study.acquired_plane)
    if prepare:
        from core.models import card
        from core.models.inputs import prepare as prepare_input

        prepare_input(study, card("braintumor-xception").input_spec,
                      study.default_index(), None, study.acquired_plane)


def outcome(data: bytes | Path, name: str, prepare: bool = True) -> dict[str, Any]:
    """Open and show one file: {"outcome": "opened" | "study_error" | "other", ...}."""
    from core.studies import StudyError, open_study

    try:
        study = open_study(data, name=name)
        show(study, prepare)
    except StudyError as exc:
        return {"outcome": "study_error", "message": str(exc)}
    except Exception as exc:  # the property under test: nothing else gets out
        return {"outcome": "other", "type": type(exc).__name__, "message": str(exc)[:500]}
    return {"outcome": "opened", "notes": list(study.notes),
            "float32_mb": round(study.pixels.size * 4 / MB, 1)}


def peak_mb() -> float:
    """This process's peak resident memory, in MB. Linux's VmHWM, not `ru_maxrss`: a
    process started from a large one (a pytest worker that loaded TensorFlow) inherits
    its parent's `ru_maxrss` through fork and exec, while VmHWM starts afresh."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024  # kB


def one_line_naming(message: str, name: str, limit: int = 300) -> bool:
    """A StudyError message as the contract has it: one line of printable characters,
    at most `limit` long, naming the file (its start, as a long name may be elided)."""
    return (message.isprintable() and len(message) <= limit
            and message.startswith(name[:40].encode("unicode_escape").decode()))


# -- mutations ------------------------------------------------------------------------------

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF)
DICOM_FIELDS = {
    "Rows": (0, 1, 65535, 4096), "Columns": (0, 1, 65535, 3),
    "NumberOfFrames": ("0", "-1", "2", "1000000", "nan", "1e9", "x"),
    "BitsAllocated": (0, 1, 7, 12, 32, 64, 65535), "BitsStored": (0, 1, 17, 64, 65535),
    "HighBit": (0, 31, 65535), "PixelRepresentation": (1, 2, 65535),
    "SamplesPerPixel": (0, 2, 3, 4, 65535), "PlanarConfiguration": (1, 2),
    "PhotometricInterpretation": ("MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR",
                                  "HSV", "", "\x1b[31m"),
    "PixelSpacing": ([1e308, 1.0], [1e-308, 1.0], [0, 0], [-1, 2], ["nan", "inf"], [1.0]),
    "RescaleSlope": ("0", "-1", "1e308", "nan", "1e-308"),
    "RescaleIntercept": ("1e308", "-1e308", "nan", "inf"),
    "WindowCenter": ("nan", "1e308", ["1", "2", "3"]), "WindowWidth": ("0", "-5", "1e-308"),
    "VOILUTFunction": ("SIGMOID", "LINEAR_EXACT", "BOGUS"),
    "ImagePositionPatient": ([0, 0, "nan"], [1e308, 0, 0], [1, 2]),
    "ImageOrientationPatient": ([1, 0, 0, 1, 0, 0], [0] * 6, ["nan"] * 6, [1, 0]),
    "SeriesInstanceUID": ("1.2.3\n4", "\x00\x01", "9" * 64),
    "Modality": ("CT", "SEG", "RTDOSE", "\n"),
    "RescaleType": ("HU", "\x1b"),
    "SliceThickness": ("nan", "-1", "1e308"), "SpacingBetweenSlices": ("0", "nan"),
}
NIFTI_FIELDS = {  # offset, struct format, hostile values (NIfTI-1)
    "dim": (40, "8h", ((3, 0, 10, 10, 1, 1, 1, 1), (7, 32767, 32767, 32767, 32767, 1, 1, 1),
                       (-1, 1, 1, 1, 1, 1, 1, 1), (8, 2, 2, 2, 2, 2, 2, 2),
                       (4, 16, 16, 4, 0, 1, 1, 1), (2, 65, 1, 1, 1, 1, 1, 1))),
    "datatype": (70, "h", ((0,), (1,), (32,), (128,), (1792,), (2304,), (-1,))),
    "bitpix": (72, "h", ((0,), (1,), (3,), (-8,))),
    "pixdim": (76, "8f", ((1, float("nan"), 1, 1, 1, 1, 1, 1), (1, 1e38, 1e-38, 1, 1, 1, 1, 1),
                          (-1, 0, 0, 0, 0, 0, 0, 0))),
    "vox_offset": (108, "f", ((float("nan"),), (float("inf"),), (-1.0,), (1e9,), (351.5,))),
    "scl_slope": (112, "f", ((float("nan"),), (0.0,), (1e38,), (float("inf"),))),
    "scl_inter": (116, "f", ((float("nan"),), (-1e38,))),
    "cal_max": (124, "f", ((float("nan"),), (1e38,))),
    "descrip": (148, "80s", ((b"\xff\xfe" * 40,), (b"a\nb\x1b",))),
    "qform_code": (252, "h", ((1,), (-5,), (32767,))),
    "sform_code": (254, "h", ((1,), (-5,))),
    "quatern": (256, "6f", ((float("nan"),) * 6, (1e38,) * 6)),
    "srow": (280, "12f", ((0.0,) * 12, (float("nan"),) * 12)),
}


def corpus() -> dict[str, bytes]:
    """The real files the tests already use, and zips of them: the seeds of the fuzzer."""
    import gzip

    ct, mr = dicom_file("CT_small.dcm").read_bytes(), dicom_file("MR_small.dcm").read_bytes()
    seeds = {
        "CT_small.dcm": ct,
        "MR_small.dcm": mr,
        "MR_small_RLE.dcm": dicom_file("MR_small_RLE.dcm").read_bytes(),
        "MR_small_jp2klossless.dcm": dicom_file("MR_small_jp2klossless.dcm").read_bytes(),
        "MR_small_bigendian.dcm": dicom_file("MR_small_bigendian.dcm").read_bytes(),
        "examples_palette.dcm": dicom_file("examples_palette.dcm").read_bytes(),
        "emri_small.dcm": dicom_file("emri_small.dcm").read_bytes(),
        "examples_ybr_color.dcm": dicom_file("examples_ybr_color.dcm").read_bytes(),
        "SC_rgb_small_odd.dcm": dicom_file("SC_rgb_small_odd.dcm").read_bytes(),
        "anatomical.nii": nibabel_file("anatomical.nii").read_bytes(),
        "example4d.nii.gz": nibabel_file("example4d.nii.gz").read_bytes(),
        "CT_small.dcm.gz": gzip.compress(ct, mtime=0),
        "two_files.zip": zip_of({"s/ct.dcm": ct, "s/mr.dcm": mr}),
        "mr_series.zip": zip_of({f"s/{i}.dcm": with_elements(
            dicom_file("MR_small.dcm"), InstanceNumber=i + 1, SOPInstanceUID=f"1.2.3.{i}",
            ImagePositionPatient=[0, 0, 5.0 * i]) for i in range(3)}),
    }
    for path in sample_images():
        seeds[path.name] = path.read_bytes()
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray((np.arange(48 * 40) % 4099).astype(np.uint16).reshape(48, 40)).save(
        png, format="PNG")
    seeds["ramp16.png"] = png.getvalue()
    seeds["anatomical.zip"] = zip_of({"a/anatomical.nii": seeds["anatomical.nii"]})
    return seeds


def _splice(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def _position(rng: random.Random, data: bytes) -> int:
    # Headers hold the structure: half the byte mutations land in the first 2 KB.
    end = len(data) if rng.random() < 0.5 else min(len(data), 2048)
    return rng.randrange(max(1, end))


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(7)
    if not data:
        return bytes([rng.randrange(256)])
    at = _position(rng, data)
    if kind == 0:  # flip a few bits
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[_position(rng, data)] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # an interesting integer, 1, 2 or 4 bytes, either byte order
        size = rng.choice((1, 2, 4))
        value = rng.choice(INTERESTING) & (2 ** (8 * size) - 1)
        return _splice(data, at, value.to_bytes(size, rng.choice(("little", "big"))))
    if kind == 2:  # truncated
        return data[: rng.randrange(len(data))]
    if kind == 3:  # a run deleted
        return data[:at] + data[at + rng.randint(1, 512):]
    if kind == 4:  # a run repeated
        run = data[at: at + rng.randint(1, 512)]
        return data[:at] + run * rng.randint(2, 8) + data[at:]
    if kind == 5:  # random bytes written over
        return _splice(data, at, rng.randbytes(rng.randint(1, 64)))
    return _splice(data, at, bytes([rng.choice((0, 0xFF))]) * rng.randint(1, 256))


def mutate_dicom(rng: random.Random, data: bytes) -> bytes | None:
    """One structural attribute of a DICOM file set to a hostile value (None: not one
    pydicom can rewrite)."""
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
            keyword = rng.choice(sorted(DICOM_FIELDS))
            setattr(ds, keyword, rng.choice(DICOM_FIELDS[keyword]))
            return dicom_bytes(ds)
    except Exception:
        return None


VRS = (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
       b"OB", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UI", b"UL", b"UN",
       b"US", b"UT", b"ZZ", b"Ds")


def mutate_element(rng: random.Random, data: bytes) -> bytes | None:
    """One explicit-VR element's VR or length changed, as a damaged or hostile writer
    leaves them: values read lazily then fail (an unknown VR, a length no value fits)."""
    import re

    found = [m.start() for m in re.finditer(rb"[\x02-\x7f][\x00-\xff]{3}[A-Z]{2}", data[:65536])
             if data[m.start() + 4: m.start() + 6] in VRS]
    if not found:
        return None
    at = rng.choice(found) + 4
    if rng.random() < 0.5:
        return _splice(data, at, rng.choice(VRS))
    length = rng.choice((0, 1, 3, 5, 0x7FFF, 0xFFFF))
    return _splice(data, at + 2, length.to_bytes(2, "little"))


def mutate_nifti(rng: random.Random, data: bytes) -> bytes | None:
    """One NIfTI-1 header field set to a hostile value, in the file's own byte order."""
    import gzip

    packed = data[:2] == b"\x1f\x8b"
    try:
        raw = gzip.decompress(data) if packed else data
    except (OSError, EOFError, zlib.error):  # an earlier step damaged the stream
        return None
    if len(raw) < 348:
        return None
    order = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    offset, fmt, values = NIFTI_FIELDS[rng.choice(sorted(NIFTI_FIELDS))]
    out = _splice(raw, offset, struct.pack(order + fmt, *rng.choice(values)))
    return gzip.compress(out, compresslevel=1, mtime=0) if packed else out


def mutate_zip(rng: random.Random, data: bytes) -> bytes | None:
    """A zip's entries renamed, nested or damaged."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = {i.filename: archive.read(i) for i in archive.infolist()}
    except Exception:
        return None
    names = list(entries)
    kind = rng.randrange(4)
    if kind == 0:
        victim = rng.choice(names)
        entries[rng.choice(("a\nb.dcm", "../x.dcm", "x\x1b[2J.dcm", "dir/", ".hidden",
                            "n" * 300))] = entries.pop(victim)
    elif kind == 1:
        return nested_zip(rng.randint(2, 12), data)
    elif kind == 2:
        victim = rng.choice(names)
        entries[victim] = mutate_bytes(rng, entries[victim])
    else:
        out = bytearray(data)
        at = rng.randrange(len(out))
        out[at] ^= 0xFF
        return bytes(out)
    return zip_of(entries, rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)))


def mutant(rng: random.Random, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """A random mutation (one to three steps) of a random seed, named after it."""
    name = rng.choice(sorted(seeds))
    data = seeds[name]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        structural = None
        if rng.random() < 0.5:
            if name.endswith(".dcm"):
                mutate = mutate_dicom if rng.random() < 0.6 else mutate_element
                structural = mutate(rng, data)
            elif ".nii" in name:
                structural = mutate_nifti(rng, data)
            elif name.endswith(".zip"):
                structural = mutate_zip(rng, data)
        data = structural if structural is not None else mutate_bytes(rng, data)
    return f"mutant-of-{name}", data


# -- run one file per process ---------------------------------------------------------------

def main(paths: list[str]) -> None:
    # Imports are counted in the base, not in the case.
    import core.models.inputs  # noqa: F401
    import core.studies.viewing  # noqa: F401

    base = peak_mb()
    for path in paths:
        started = time.perf_counter()
        result = outcome(Path(path), Path(path).name)
        result.update(name=Path(path).name, seconds=round(time.perf_counter() - started, 2),
                      base_mb=round(base, 1), peak_mb=round(peak_mb(), 1))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
