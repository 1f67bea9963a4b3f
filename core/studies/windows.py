"""VOI: how a study's physical values become the grey levels a radiologist expects.

DICOM PS3.3 C.11.2.1.2 defines the window functions (LINEAR, LINEAR_EXACT, SIGMOID) and
C.11.2.1.1 the VOI LUT; both map modality-LUT output (HU for CT) onto the display range,
here 0..255. Presets are the usual CT windows (Radiopaedia, "Windowing (CT)").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Centre, width in HU. Radiopaedia "Windowing (CT)" and common PACS defaults.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "CT brain": (40.0, 80.0),
    "CT subdural": (75.0, 215.0),
    "CT stroke": (32.0, 8.0),
    "CT lung": (-600.0, 1500.0),
    "CT mediastinum / soft tissue": (50.0, 350.0),
    "CT abdomen / soft tissue": (40.0, 400.0),
    "CT liver": (30.0, 150.0),
    "CT bone": (400.0, 1800.0),
}

# Percentile windows for every greyscale modality: (low, high).
PERCENTILE_PRESETS: dict[str, tuple[float, float]] = {
    "Auto (0.5-99.5 percentile)": (0.5, 99.5),
    "Auto, tight (2-98 percentile)": (2.0, 98.0),
    "Full range (min-max)": (0.0, 100.0),
}

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class VOILUT:
    """A VOI LUT from the file (PS3.3 C.11.2.1.1): values from `first` map to `data`."""

    first: int
    bits: int
    data: np.ndarray
    explanation: str = ""

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VOILUT) and (self.first, self.bits) == (other.first, other.bits)
                and np.array_equal(self.data, other.data))

    def __hash__(self) -> int:
        return hash((self.first, self.bits, len(self.data)))


@dataclass(frozen=True)
class Window:
    """A VOI window in the study's units: centre and width, and where it came from.

    `function` is the DICOM VOI LUT Function; a `lut`, when set, replaces the window
    function entirely (centre and width then only describe the LUT's input range).
    """

    center: float
    width: float
    source: str = "manual"
    function: str = "LINEAR"
    lut: VOILUT | None = None

    def describe(self, units: str = "") -> str:
        unit = f" {units}" if units else ""
        if self.lut is not None:
            return f"VOI LUT from the file ({self.source})"
        text = f"C {self.center:g}{unit} / W {self.width:g}{unit}"
        if self.function != "LINEAR":
            text += f", {self.function}"
        return f"{text} ({self.source})"


# Values windowed at a time: the float64 arithmetic of PS3.3 C.11.2.1 then needs a few
# 8 MB temporaries, not several times the image (a 9999 x 9999 image is 0.8 GB as float64).
BLOCK = 1 << 20


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """The VOI transform of PS3.3 C.11.2.1 onto 0..255 (uint8), block by block."""
    values = np.asarray(values)
    if values.ndim == 0 or values.size <= BLOCK:
        return _window(values, window)
    out = np.empty(values.shape, dtype=np.uint8)
    step = max(1, BLOCK // max(1, values[0].size))
    for start in range(0, values.shape[0], step):
        out[start:start + step] = _window(values[start:start + step], window)
    return out


def _window(values: np.ndarray, window: Window) -> np.ndarray:
    if window.lut is not None:
        return _apply_lut(values, window.lut)
    x = np.asarray(values, dtype=np.float64)
    c, w = float(window.center), float(window.width)
    if window.function == "LINEAR_EXACT":
        # C.11.2.1.3.2: y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin
        y = ((x - c) / max(w, np.finfo(float).tiny) + 0.5) * 255.0
    elif window.function == "SIGMOID":
        # C.11.2.1.3.1: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin
        y = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / max(w, 1e-12), -700, 700)))
    else:
        w = max(w, 1.0)
        if w == 1.0:  # C.11.2.1.2.1: a width of 1 is a threshold at c - 0.5
            return np.where(x > c - 0.5, 255, 0).astype(np.uint8)
        # C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _apply_lut(values: np.ndarray, lut: VOILUT) -> np.ndarray:
    # Values below the first mapped value take the first entry, above the last the last.
    # Clipped as float first: NaN or 1e38 cast to int64 is undefined.
    index = np.clip(np.nan_to_num(np.round(values)) - lut.first, 0, len(lut.data) - 1)
    index = index.astype(np.int64)
    top = float(2**min(max(lut.bits, 1), 32) - 1)
    return np.clip(np.round(lut.data[index] / top * 255.0), 0, 255).astype(np.uint8)


def auto_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> Window:
    """A window spanning the given percentiles of the image's values."""
    sample = np.asarray(values)
    if sample.size > 4_000_000:  # percentiles of a large volume: a strided sample suffices
        sample = sample.reshape(-1)[:: sample.size // 2_000_000]
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    width = max(hi - lo, 1.0)
    if (low, high) == (0.0, 100.0):
        source = "full range"
    else:
        source = f"auto ({low:g}-{high:g} percentile)"
    return Window(center=lo + width / 2, width=width, source=source)
