"""How a study becomes a model's input: one explicit step, recorded so the user sees it.

study -> [frame] -> [window to 8 bits, MONOCHROME1 inverted] -> [channels] -> [resize]
-> [scale] -> model input. Every step taken is written down in `ModelInput.steps`, and
`ModelInput.seen` keeps the 8-bit picture the model was given, before scaling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from core.studies import Study, Window

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


RESIZES = (*RESAMPLING, "tf-bilinear")


def resize(picture: np.ndarray, height: int, width: int, how: str) -> np.ndarray:
    """(h, w, c) uint8 resized. "tf-bilinear" is tf.image.resize's bilinear (pixel
    centres, no antialiasing, float output), which OpenCV's INTER_LINEAR on float32
    reproduces; PIL's bilinear widens its kernel when shrinking (antialiasing)."""
    if how == "tf-bilinear":
        import cv2

        out = cv2.resize(picture.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_LINEAR)
        return out.reshape(height, width, picture.shape[-1])
    resample = RESAMPLING[how]
    if picture.shape[-1] == 1:
        return np.asarray(Image.fromarray(picture[..., 0]).resize((width, height),
                                                                 resample))[..., None]
    return np.asarray(Image.fromarray(picture).resize((width, height), resample))


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
    source_shape: tuple[int, int]  # (rows, cols) of the displayed image it came from
    plane: str | None = None
    metadata: np.ndarray | None = None  # a second input's vector (core/metadata.py)

    @property
    def inputs(self) -> np.ndarray | list[np.ndarray]:
        """One input as the model takes it, unbatched: the image, or [image, metadata]."""
        return self.array if self.metadata is None else [self.array, self.metadata]

    @property
    def batch(self) -> np.ndarray | list[np.ndarray]:
        """A batch of one, as the model takes it: the image, or [image, metadata]."""
        if self.metadata is None:
            return self.array[None]
        return [self.array[None], self.metadata[None]]

    @property
    def fingerprint(self) -> str:
        """What the model is given and where its maps go: the arrays and the size of the
        image they came from (a job's input digest)."""
        h = hashlib.sha256(repr((self.array.shape, self.source_shape)).encode())
        for array in (self.array, self.metadata):
            if array is not None:
                h.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return h.hexdigest()

    def with_metadata(self, vector: np.ndarray, description: str) -> ModelInput:
        """The same input with the model's metadata vector, its answers recorded."""
        return replace(self, metadata=np.asarray(vector, dtype=np.float32),
                       steps=(*self.steps, f"metadata: {description}"))


def prepare(study: Study, spec: InputSpec, frame: int = 0,
            window: Window | None = None, plane: str | None = None) -> ModelInput:
    """Turn one 2-D image of a study into the input `spec` describes, recording each step.

    `frame` is the frame of a multi-frame image or the slice of a volume in `plane`
    (default: the plane it was acquired in).
    """
    steps: list[str] = []
    view = study.view(frame, plane)
    if view.count > 1 or view.plane:
        steps.append(f"{view.label}" + (" (radiological orientation)" if view.plane else ""))
    used = None
    picture = study.display(frame, window, plane)
    if not study.is_colour:
        used = window or study.window
        if used is None or used.source == "full 8-bit range":
            steps.append("8-bit pixels used as stored")
        else:
            steps.append(f"window {used.describe(study.units)} to 8 bits")
        if study.photometric == "MONOCHROME1":
            steps.append("MONOCHROME1 inverted (bright = dense)")
    if picture.shape[:2] != view.values.shape[:2]:
        rows, cols = view.values.shape[:2]
        steps.append(f"{cols}x{rows} pixels of {view.spacing[1]:.3g} x {view.spacing[0]:.3g} mm "
                     f"resampled to {picture.shape[1]}x{picture.shape[0]} for true aspect ratio")

    # Grey is replicated to RGB after resizing, which gives the same pixels (each channel
    # is resized alike) without three copies of a large image.
    replicate = picture.ndim == 2 and spec.channels == 3
    if picture.ndim == 2:
        picture = picture[..., None]
    elif spec.channels == 1:
        picture = np.asarray(Image.fromarray(picture).convert("L"))[..., None]
        steps.append("RGB converted to grey (ITU-R 601-2 luma)")
    else:
        steps.append("RGB used as is")

    view_shape = picture.shape[:2]
    rows, cols = view_shape
    if (rows, cols) != (spec.height, spec.width):
        picture = resize(picture, spec.height, spec.width, spec.resize)
        aspect = "" if rows * spec.width == cols * spec.height else ", aspect ratio not kept"
        steps.append(
            f"resized {cols}x{rows} to {spec.width}x{spec.height} ({spec.resize}{aspect})"
        )

    if replicate:
        picture = np.repeat(picture, 3, axis=-1)
        steps.append("grey replicated to 3 channels (RGB)")

    description, scale = SCALES[spec.scale]
    steps.append(f"scaled: {description}")
    array = scale(picture.astype(np.float32)).astype(np.float32)
    picture = np.clip(np.rint(picture), 0, 255).astype(np.uint8)  # tf-bilinear is float
    seen = picture if picture.shape[-1] == 3 else np.repeat(picture, 3, axis=-1)
    return ModelInput(
        array=array,
        seen=np.ascontiguousarray(seen),
        steps=tuple(steps),
        frame=frame,
        window=used,
        source_shape=(int(view_shape[0]), int(view_shape[1])),
        plane=view.plane,
    )
