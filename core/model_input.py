"""How a study becomes a model's input: one explicit step, recorded so the user sees it.

study -> [frame] -> [window to 8 bits, MONOCHROME1 inverted] -> [channels] -> [resize]
-> [scale] -> model input. Every step taken is written down in `ModelInput.steps`, and
`ModelInput.seen` keeps the 8-bit picture the model was given, before scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.study import Study, Window

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

SCALES = {
    "xception": ("x / 127.5 - 1 (Xception preprocess_input), range [-1, 1]",
                 lambda x: x / 127.5 - 1.0),
    "unit": ("x / 255, range [0, 1]", lambda x: x / 255.0),
    "none": ("raw 0-255 values", lambda x: x),
}


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: size, channels, how to resize and how to scale."""

    height: int
    width: int
    channels: int
    resize: str
    scale: str


@dataclass(frozen=True)
class ModelInput:
    """A model's input made from one 2-D image of a study, with the steps that made it."""

    array: np.ndarray  # (h, w, c) float32, scaled as the model expects
    seen: np.ndarray  # (h, w, 3) uint8: what the model saw, before scaling
    steps: tuple[str, ...]
    frame: int
    window: Window | None
    source_shape: tuple[int, int]  # (rows, cols) of the study image it came from


def prepare(study: Study, spec: InputSpec, frame: int = 0,
            window: Window | None = None) -> ModelInput:
    """Turn one frame of a study into the input `spec` describes, recording each step."""
    steps: list[str] = []
    if study.frames > 1:
        steps.append(f"frame {frame + 1} of {study.frames}")
    used = None
    picture = study.display(frame, window)
    if not study.is_colour:
        used = window or study.window
        if used is None or used.source == "full 8-bit range":
            steps.append("8-bit pixels used as stored")
        else:
            unit = f" {study.units}" if study.units else ""
            steps.append(
                f"window centre {used.center:g}{unit}, width {used.width:g}{unit} "
                f"({used.source}) to 8 bits"
            )
        if study.photometric == "MONOCHROME1":
            steps.append("MONOCHROME1 inverted (bright = dense)")

    if picture.ndim == 2:
        if spec.channels == 3:
            picture = np.repeat(picture[..., None], 3, axis=-1)
            steps.append("grey replicated to 3 channels (RGB)")
        else:
            picture = picture[..., None]
    elif spec.channels == 1:
        picture = np.asarray(Image.fromarray(picture).convert("L"))[..., None]
        steps.append("RGB converted to grey (ITU-R 601-2 luma)")
    else:
        steps.append("RGB used as is")

    rows, cols = picture.shape[:2]
    if (rows, cols) != (spec.height, spec.width):
        resample = RESAMPLING[spec.resize]
        if picture.shape[-1] == 1:
            resized = Image.fromarray(picture[..., 0]).resize((spec.width, spec.height), resample)
            picture = np.asarray(resized)[..., None]
        else:
            picture = np.asarray(
                Image.fromarray(picture).resize((spec.width, spec.height), resample)
            )
        aspect = "" if rows * spec.width == cols * spec.height else ", aspect ratio not kept"
        steps.append(
            f"resized {cols}x{rows} to {spec.width}x{spec.height} ({spec.resize}{aspect})"
        )

    description, scale = SCALES[spec.scale]
    steps.append(f"scaled: {description}")
    seen = picture if picture.shape[-1] == 3 else np.repeat(picture, 3, axis=-1)
    return ModelInput(
        array=scale(picture.astype(np.float32)).astype(np.float32),
        seen=np.ascontiguousarray(seen),
        steps=tuple(steps),
        frame=frame,
        window=used,
        source_shape=(study.image_shape),
    )
