"""What the model does to an image before its first learnt layer: preprocessing that always
acts (per-image normalisation, denoising) and augmentation that acts only in training
(random flips, rotations, zooms, shifts, contrast and noise), all as Keras layers at the
front of the model, so a saved model carries them and inference repeats the preprocessing.

- Augmentation: Shorten and Khoshgoftaar 2019, "A survey on image data augmentation for deep
  learning", https://doi.org/10.1186/s40537-019-0197-0; Keras' preprocessing layers
  (https://keras.io/api/layers/preprocessing_layers/image_augmentation/).
- Denoising: Gaussian smoothing, the median filter (Tukey 1977) and the bilateral filter
  (Tomasi and Manduchi 1998, https://doi.org/10.1109/ICCV.1998.710815), written with
  keras.ops so gradients reach the input (Grad-CAM and saliency run through them).

Custom layers are registered (`package="medlens"`) with `get_config`, so a saved model
reloads in Keras' safe mode once this module is imported (`core.nets.__init__` does not
import it: Keras loads only when a network is built or loaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from core.options import Option, checked

KINDS = ("images", "masks", "volumes", "unlabelled")

PREPROCESSING: dict[str, Option] = {
    "normalise": Option("none", "per-image intensity normalisation: zscore (mean 0, "
                        "standard deviation 1) or minmax (0 to 1), at training and inference",
                        str, choices=("none", "zscore", "minmax")),
    "denoise": Option("none", "a fixed smoothing filter before the network, at training and "
                      "inference", str, choices=("none", "gaussian", "median", "bilateral")),
    "denoise_size": Option(3, "the denoising window, in pixels (odd)", int, choices=(3, 5, 7)),
}

AUGMENTATION: dict[str, Option] = {
    "flip": Option("horizontal", "random mirror image in training", str,
                   choices=("none", "horizontal", "vertical", "horizontal_and_vertical")),
    "rotate": Option(10.0, "random rotation of up to this many degrees either way", float,
                     0.0, 180.0),
    "zoom": Option(0.1, "random zoom in or out by up to this fraction", float, 0.0, 0.5),
    "crop": Option(0.05, "random shift by up to this fraction of the size (a random crop "
                   "that keeps the size; the uncovered edge is black)", float, 0.0, 0.5),
    "contrast": Option(0.1, "random contrast change by up to this factor about the image's "
                       "mean", float, 0.0, 0.9),
    "noise": Option(0.01, "Gaussian noise of this standard deviation (images are 0-1)",
                    float, 0.0, 0.5),
}

GEOMETRIC = ("flip", "rotate", "zoom", "crop")
INTENSITY = ("contrast", "noise")

AUGMENTATION_NOTE = (
    "Augmentation layers act only while training; at inference the model sees the image as "
    "given (after its preprocessing). For segmentation masks only intensity augmentation "
    "(contrast, noise) runs inside the model: a flip, rotation, zoom or shift changes where "
    "things are, so the mask would have to move with the image, and a layer inside the model "
    "never sees the mask. For volumes (stacks of slices) the same intensity augmentation is "
    "applied to the whole volume at once (one contrast factor per volume, independent noise "
    "per voxel); geometric ones are left out, since moving each slice on its own would break "
    "the anatomy that joins them."
)


def applies(name: str, kind: str) -> bool:
    """Whether augmentation `name` runs inside the model for data of `kind`."""
    return name in INTENSITY or kind in ("images", "unlabelled")


def _per_slice(x: Any, fn: Any) -> Any:
    """fn on (B, h, w, c) images; a volume's (B, s, h, w, c) slices one by one."""
    if len(x.shape) == 4:
        return fn(x)
    s, h, w, c = x.shape[1:]
    out = fn(ops.reshape(x, (-1, h, w, c)))
    return ops.reshape(out, (-1, s, h, w, c))


def _neighbours(x: Any, size: int) -> Any:
    """(B, h, w, c, size*size): each pixel's window, edges mirrored without repeating the
    edge pixel (numpy "reflect", OpenCV BORDER_REFLECT_101, scipy "mirror")."""
    r = size // 2
    h, w = x.shape[1], x.shape[2]
    padded = ops.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
    return ops.stack([padded[:, i:i + h, j:j + w, :] for i in range(size)
                      for j in range(size)], axis=-1)


def _squared_offsets(size: int) -> np.ndarray:
    """Squared distance of each window position from its centre, in `_neighbours`' order."""
    r = size // 2
    return np.array([(i - r) ** 2 + (j - r) ** 2 for i in range(size) for j in range(size)],
                    np.float32)


@keras.saving.register_keras_serializable(package="medlens")
class Normalise(keras.layers.Layer):
    """Per-image (per-volume) intensity normalisation over every non-batch axis: zscore
    (x - mean) / sqrt(var + eps), or minmax (x - min) / (max - min + eps)."""

    def __init__(self, mode: str = "zscore", epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in ("zscore", "minmax"):
            raise ValueError(f"normalise: '{mode}' is not one of zscore, minmax")
        self.mode, self.epsilon = mode, float(epsilon)

    def call(self, x: Any) -> Any:
        axes = tuple(range(1, len(x.shape)))
        if self.mode == "zscore":
            mean = ops.mean(x, axis=axes, keepdims=True)
            var = ops.var(x, axis=axes, keepdims=True)
            return (x - mean) / ops.sqrt(var + self.epsilon)
        low = ops.min(x, axis=axes, keepdims=True)
        high = ops.max(x, axis=axes, keepdims=True)
        return (x - low) / (high - low + self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="medlens")
class Denoise(keras.layers.Layer):
    """A fixed smoothing filter over a size x size window (a volume slice by slice):
    gaussian (weights exp(-d^2 / 2 sigma^2), normalised), median (the middle of the sorted
    window: its gradient goes to the median pixel), or bilateral (Tomasi and Manduchi
    1998, eq. 3: weights exp(-d^2 / 2 sigma^2) exp(-(I_q - I_p)^2 / 2 sigma_range^2),
    normalised per pixel)."""

    def __init__(self, kind: str = "gaussian", size: int = 3, sigma: float = 1.0,
                 sigma_range: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        if kind not in ("gaussian", "median", "bilateral"):
            raise ValueError(f"denoise: '{kind}' is not one of gaussian, median, bilateral")
        if int(size) < 3 or int(size) % 2 == 0:
            raise ValueError(f"denoise: size {size} is not an odd number >= 3")
        self.kind, self.size = kind, int(size)
        self.sigma, self.sigma_range = float(sigma), float(sigma_range)

    def _filter(self, x: Any) -> Any:
        window = _neighbours(x, self.size)
        if self.kind == "median":
            return ops.sort(window, axis=-1)[..., self.size * self.size // 2]
        spatial = np.exp(-_squared_offsets(self.size) / (2 * self.sigma**2))
        if self.kind == "gaussian":
            return ops.sum(window * (spatial / spatial.sum()), axis=-1)
        # Bilateral, eq. 3: the range weight compares each neighbour with the centre pixel.
        centre = ops.expand_dims(x, -1)
        weights = spatial * ops.exp(-ops.square(window - centre) / (2 * self.sigma_range**2))
        return ops.sum(window * weights, axis=-1) / ops.sum(weights, axis=-1)

    def call(self, x: Any) -> Any:
        return _per_slice(x, self._filter)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "size": self.size,
                "sigma": self.sigma, "sigma_range": self.sigma_range}


@keras.saving.register_keras_serializable(package="medlens")
class VolumeContrast(keras.layers.Layer):
    """Keras' RandomContrast for a whole volume (RandomContrast takes 2-D images only): in
    training (x - mean) * c + mean, one c drawn from [1 - factor, 1 + factor] per volume,
    the mean over the volume, clipped to [0, 1]; at inference the identity."""

    def __init__(self, factor: float = 0.1, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.factor, self.seed = float(factor), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training or not self.factor:
            return x
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        c = keras.random.uniform(shape, 1 - self.factor, 1 + self.factor, seed=self.generator)
        axes = tuple(range(1, len(x.shape)))
        mean = ops.mean(x, axis=axes, keepdims=True)
        return ops.clip((x - mean) * c + mean, 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def front(input_shape: Sequence[int], preprocessing: dict[str, Any] | None,
          augmentation: dict[str, Any] | None, kind: str, seed: int) -> list[Any]:
    """The layers a network starts with, in order: augmentation (geometric, then contrast
    and noise; training only, seeded), then denoising and normalisation (always).

    `input_shape` is (h, w, 1) or, for volumes, (slices, h, w, 1). Options are checked
    against `PREPROCESSING` and `AUGMENTATION` (ValueError, one line); augmentation that
    cannot run inside the model for `kind` is left out (see `AUGMENTATION_NOTE`)."""
    from keras import layers as kl

    if kind not in KINDS:
        raise ValueError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
    if len(input_shape) != (4 if kind == "volumes" else 3):
        raise ValueError(f"input shape {tuple(input_shape)} does not suit {kind}")
    pre = checked(PREPROCESSING, preprocessing, "preprocessing option")
    aug = checked(AUGMENTATION, augmentation, "augmentation option")
    aug = {k: v for k, v in aug.items() if applies(k, kind)}
    made: list[Any] = []
    seeds = iter(range(int(seed) * 100, int(seed) * 100 + 100))
    if aug.get("flip", "none") != "none":
        made.append(kl.RandomFlip(aug["flip"], seed=next(seeds), name="augment_flip"))
    if aug.get("rotate"):
        # RandomRotation's factor is a fraction of a full turn.
        made.append(kl.RandomRotation(aug["rotate"] / 360.0, fill_mode="constant",
                                      fill_value=0.0, seed=next(seeds), name="augment_rotate"))
    if aug.get("zoom"):
        made.append(kl.RandomZoom(aug["zoom"], fill_mode="constant", fill_value=0.0,
                                  seed=next(seeds), name="augment_zoom"))
    if aug.get("crop"):
        made.append(kl.RandomTranslation(aug["crop"], aug["crop"], fill_mode="constant",
                                         fill_value=0.0, seed=next(seeds), name="augment_crop"))
    if aug.get("contrast"):
        if kind == "volumes":
            made.append(VolumeContrast(aug["contrast"], seed=next(seeds),
                                       name="augment_contrast"))
        else:
            made.append(kl.RandomContrast(aug["contrast"], value_range=(0.0, 1.0),
                                          seed=next(seeds), name="augment_contrast"))
    if aug.get("noise"):
        made.append(kl.GaussianNoise(aug["noise"], seed=next(seeds), name="augment_noise"))
    if pre["denoise"] != "none":
        made.append(Denoise(pre["denoise"], pre["denoise_size"], name="denoise"))
    if pre["normalise"] != "none":
        made.append(Normalise(pre["normalise"], name="normalise"))
    return made


def preview(data: Any, indices: Sequence[int], preprocessing: dict[str, Any] | None,
            augmentation: dict[str, Any] | None, seed: int) -> np.ndarray:
    """(n, h, w) float32: `data.x[indices]` as the model's first layers see them in
    training (the front layers run with training=True; for volumes the middle slice)."""
    x = np.asarray(data.x[list(indices)], dtype=np.float32)
    made = front(data.x.shape[1:], preprocessing, augmentation, data.kind, seed)
    out: Any = x
    for layer in made:
        out = layer(out, training=True)
    out = np.asarray(out, dtype=np.float32)
    if data.kind == "volumes":
        out = out[:, out.shape[1] // 2]
    return out[..., 0]
