"""Studies: the images a user brings (DICOM, PNG, JPEG), read into one `Study` type.

Pixels are kept in physical units (the DICOM modality LUT applied: HU for CT) and shown
through a window (DICOM PS3.3 C.11.2.1.2 linear VOI function), with MONOCHROME1 inverted
so the image looks as a radiologist expects. Identifying DICOM attributes are kept apart
from the metadata the viewer shows. Reading a study never imports TensorFlow.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# A 50 000 x 50 000 image would need ~10 GB as float32: refuse before decoding.
MAX_PIXELS = 100_000_000

# PS3.15 Annex E Basic Application Level Confidentiality Profile: the attributes most
# likely to identify a patient. They are never shown or exported unless asked for.
IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
        "OtherPatientNames", "PatientBirthDate", "PatientBirthTime", "PatientBirthName",
        "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
        "MedicalRecordLocator", "PatientAge", "PatientSex", "PatientSize", "PatientWeight",
        "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
        "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "ReferringPhysicianName", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
        "RequestingPhysician", "AccessionNumber", "StudyID", "StudyDate", "SeriesDate",
        "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime",
        "ContentTime", "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
        "StationName", "DeviceSerialNumber", "StudyInstanceUID", "SeriesInstanceUID",
        "SOPInstanceUID", "MediaStorageSOPInstanceUID", "FrameOfReferenceUID",
        "StudyDescription", "SeriesDescription", "RequestedProcedureDescription",
        "PerformedProcedureStepDescription", "ProtocolName", "ImageComments",
        "IssuerOfPatientID", "PatientInsurancePlanCodeSequence", "ResponsiblePerson",
        "ResponsibleOrganization", "ScheduledPerformingPhysicianName",
    }
)

# What the viewer shows of a DICOM header: technical attributes only.
DISPLAY_KEYWORDS = (
    "Modality", "SOPClassUID", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
    "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "PixelSpacing",
    "ImagerPixelSpacing", "SliceThickness", "RescaleIntercept", "RescaleSlope",
    "RescaleType", "WindowCenter", "WindowWidth", "KVP", "MagneticFieldStrength",
    "RepetitionTime", "EchoTime", "ImageType",
)


class StudyError(ValueError):
    """A file that cannot be read as a study. The message is one line naming the file."""


@dataclass(frozen=True)
class Window:
    """A VOI window in the study's units: centre and width, and where it came from."""

    center: float
    width: float
    source: str = "manual"


@dataclass
class Study:
    """One image or multi-frame image, its pixels in physical units, ready to be shown.

    `pixels` has a frame axis first: (frames, rows, cols) for greyscale,
    (frames, rows, cols, 3) for colour.
    """

    name: str
    format: str  # "DICOM", "PNG" or "JPEG"
    pixels: np.ndarray
    photometric: str  # MONOCHROME1, MONOCHROME2 or RGB
    stored_dtype: str  # the dtype the file stores, before any rescale
    window: Window | None  # the file's own window, else a default; None for colour
    modality: str | None = None
    units: str = ""
    bits_stored: int = 8
    metadata: dict[str, str] = field(default_factory=dict)
    identifying: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, cols) of one 2-D image."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    @property
    def shape(self) -> list[int]:
        """[rows, cols] for one image, [frames, rows, cols] for several; no colour axis."""
        rows, cols = self.image_shape
        return [rows, cols] if self.frames == 1 else [self.frames, rows, cols]

    def image(self, frame: int = 0) -> np.ndarray:
        """The 2-D image of one frame, in physical units."""
        if not 0 <= frame < self.frames:
            raise StudyError(f"{self.name}: frame {frame} is out of range (0..{self.frames - 1})")
        return self.pixels[frame]

    def display(self, frame: int = 0, window: Window | None = None) -> np.ndarray:
        """The 8-bit image as the viewer shows it: windowed, MONOCHROME1 inverted."""
        pixels = self.image(frame)
        if self.is_colour:
            return np.clip(pixels, 0, 255).astype(np.uint8)
        shown = apply_window(pixels, window or self.window or auto_window(pixels))
        if self.photometric == "MONOCHROME1":
            shown = 255 - shown
        return shown


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """DICOM linear VOI function (PS3.3 C.11.2.1.2.1) onto 0..255."""
    c, w = float(window.center), max(float(window.width), 1.0)
    if w == 1.0:
        return np.where(values > c - 0.5, 255, 0).astype(np.uint8)
    # y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin, clipped to [ymin, ymax]
    y = ((values.astype(np.float64) - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def auto_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> Window:
    """A window spanning the given percentiles of the image's values."""
    lo, hi = np.percentile(values, [low, high])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    width = max(float(hi - lo), 1.0)
    source = f"auto ({low}-{high} percentile)"
    return Window(center=float(lo + width / 2), width=width, source=source)


def open_study(source: str | Path | bytes, name: str | None = None) -> Study:
    """Read a DICOM, PNG or JPEG file (a path or its bytes) into a `Study`.

    The format is found from the content, not the extension. Anything that cannot be
    read raises `StudyError` with one line naming the file and the problem.
    """
    if isinstance(source, bytes):
        data, name = source, name or "upload"
    else:
        path = Path(source)
        name = name or str(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StudyError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise StudyError(f"{name}: is a folder, not a file") from None
        except OSError as exc:
            raise StudyError(f"{name}: cannot read ({exc.strerror})") from None
    if not data:
        raise StudyError(f"{name}: the file is empty")
    if data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff"):
        return _read_picture(data, name)
    return _read_dicom(data, name)


def _one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message folded onto one line (decoders report on several)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_picture(data: bytes, name: str) -> Study:
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS check below decides; PIL's warning would be a second line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        fmt = img.format or "image"
        cols, rows = img.size
        if rows * cols > MAX_PIXELS:
            raise StudyError(
                f"{name}: {cols}x{rows} pixels, larger than the {MAX_PIXELS:,}-pixel limit"
            )
        img.load()
    except StudyError:
        raise
    except Image.DecompressionBombError as exc:
        raise StudyError(
            f"{name}: larger than the {MAX_PIXELS:,}-pixel limit ({_one_line(exc)})"
        ) from None
    except UnidentifiedImageError:
        raise StudyError(f"{name}: cannot decode the image (not a valid PNG or JPEG)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{name}: cannot decode the image ({_one_line(exc)})") from None

    if img.mode in ("1", "L", "LA"):
        pixels, photometric = np.asarray(img.convert("L")), "MONOCHROME2"
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels, photometric = np.asarray(img), "MONOCHROME2"
    else:  # RGB, RGBA (alpha dropped), P (palette), CMYK, YCbCr
        pixels, photometric = np.asarray(img.convert("RGB")), "RGB"
    stored = "uint16" if img.mode.startswith("I;16") else str(pixels.dtype)
    values = pixels.astype(np.float32)[None]
    window = None
    if photometric != "RGB":
        if stored == "uint8":
            window = Window(128.0, 256.0, "full 8-bit range")
        else:
            window = auto_window(values[0])
    return Study(
        name=name,
        format=fmt,
        pixels=values,
        photometric=photometric,
        stored_dtype=stored,
        window=window,
        bits_stored=16 if stored != "uint8" else 8,
        metadata={"Format": fmt, "Mode": img.mode, "Size": f"{cols} x {rows}"},
    )


def _read_dicom(data: bytes, name: str) -> Study:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        # Files without the 128-byte preamble are still DICOM: try once more, then
        # insist on an image below.
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:
            raise StudyError(f"{name}: not a DICOM, PNG or JPEG file") from None
    except Exception as exc:
        raise StudyError(f"{name}: cannot parse the DICOM file ({_one_line(exc)})") from None

    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        if "SOPClassUID" in ds:
            kind = getattr(ds.SOPClassUID, "name", str(ds.SOPClassUID))
            raise StudyError(f"{name}: a DICOM object without pixel data ({kind})")
        raise StudyError(f"{name}: not a DICOM, PNG or JPEG file")

    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if int(ds.Rows) * int(ds.Columns) * frames > MAX_PIXELS:
        raise StudyError(
            f"{name}: {ds.Columns}x{ds.Rows}x{frames} pixels, larger than the "
            f"{MAX_PIXELS:,}-pixel limit"
        )
    try:
        stored = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_name = getattr(syntax, "name", "unknown transfer syntax")
        raise StudyError(
            f"{name}: cannot decode the pixel data ({syntax_name}): {_one_line(exc)}"
        ) from None

    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    units = ""
    window = None
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(stored, ds)
        bits = 16 if rgb.max() > 255 else 8
        values = (rgb / (257.0 if bits == 16 else 1.0)).astype(np.float32)
        photometric = "RGB"
    elif samples == 3:
        # pydicom converts YBR to RGB by default.
        values = stored.astype(np.float32)
        photometric = "RGB"
    else:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        if getattr(ds, "Modality", "") == "CT" and "RescaleIntercept" in ds:
            units = "HU"
        else:
            units = str(getattr(ds, "RescaleType", "")) if "RescaleType" in ds else ""
        window = _file_window(ds) or auto_window(values)

    colour = photometric == "RGB"
    if (values.ndim == 2 and not colour) or (values.ndim == 3 and colour and frames == 1):
        values = values[None]

    return Study(
        name=name,
        format="DICOM",
        pixels=values,
        photometric=photometric,
        stored_dtype=str(stored.dtype),
        window=window,
        modality=str(getattr(ds, "Modality", "")) or None,
        units=units,
        bits_stored=int(getattr(ds, "BitsStored", 8)),
        metadata=_display_metadata(ds),
        identifying=_identifying(ds),
    )


def _file_window(ds) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    # Several windows may be given (PS3.3 C.11.2.1.2): the first is the default.
    center, width = _first(center), _first(width)
    try:
        return Window(float(center), float(width), "file")
    except (TypeError, ValueError):
        return None


def _first(value):
    if isinstance(value, (str, bytes)):
        return value
    try:
        return value[0]
    except (TypeError, IndexError, KeyError):
        return value


def _display_metadata(ds) -> dict[str, str]:
    shown: dict[str, str] = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        uid = meta.TransferSyntaxUID
        shown["TransferSyntax"] = f"{uid.name} ({uid})"
    for keyword in DISPLAY_KEYWORDS:
        if keyword in ds and keyword not in IDENTIFYING_KEYWORDS:
            value = ds[keyword].value
            if keyword == "SOPClassUID":
                value = getattr(value, "name", value)
            shown[keyword] = str(value)
    return shown


def _identifying(ds) -> dict[str, str]:
    return {
        elem.keyword: str(elem.value)
        for elem in ds.iterall()
        if elem.keyword in IDENTIFYING_KEYWORDS and elem.VR != "SQ"
    }
