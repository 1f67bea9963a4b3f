"""A walk through a GAN generator's latent space, and interpolation between two images.

The generator (core.nets.dcgan.generator) turns a latent vector z, drawn from a standard
normal, into an image. Radford et al. 2015 (https://arxiv.org/abs/1511.06434, Sec. 6.1)
walk the latent space to show the generator learnt smooth changes, not memorised images.
Interpolation is spherical by default (White 2016, "Sampling Generative Networks",
https://arxiv.org/abs/1609.04468): a high-dimensional normal vector lies near a sphere,
and the straight line between two of them passes through vectors of smaller norm than
the generator was ever given; slerp keeps to the sphere:

    slerp(z0, z1; t) = sin((1 - t) w) / sin(w) * z0 + sin(t w) / sin(w) * z1,
    cos(w) = z0 . z1 / (|z0| |z1|)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _generator(model: Any) -> Any:
    """The generator network itself: a `core.nets.dcgan.GAN` holds it as `.generator`."""
    return getattr(model, "generator", None) or model


def latent_size(generator: Any) -> int:
    """The length of the generator's latent vector."""
    shape = _generator(generator).inputs[0].shape
    if len(shape) != 2:
        raise ValueError(f"the generator's input is {tuple(shape)}: a (batch, latent) "
                         "vector was expected")
    return int(shape[-1])


def random_latent(generator: Any, seed: int = 0) -> np.ndarray:
    """A latent vector drawn from the standard normal the generator was trained on."""
    return np.random.default_rng(seed).standard_normal(latent_size(generator)).astype(
        np.float32)


def generate(generator: Any, z: np.ndarray) -> np.ndarray:
    """The generator's images for latent vectors z (n, latent): (n, h, w) uint8 (its
    first channel; the DCGAN's sigmoid output in [0, 1] scaled to 0-255)."""
    z = np.asarray(z, np.float32).reshape(-1, latent_size(generator))
    images = np.asarray(_generator(generator)(z, training=False), np.float32)[..., 0]
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def walk(z: np.ndarray, dimension: int, values: Sequence[float]) -> np.ndarray:
    """Copies of z with coordinate `dimension` set to each of `values`: (n, latent)."""
    z = np.asarray(z, np.float32).reshape(-1)
    if not 0 <= dimension < z.size:
        raise ValueError(f"dimension {dimension} is out of range: the latent has {z.size}")
    out = np.repeat(z[None], len(values), axis=0)
    out[:, dimension] = np.asarray(values, np.float32)
    return out


def latent_walk(generator: Any, seed: int, dimension: int,
                values: Sequence[float]) -> np.ndarray:
    """Images (n, h, w) uint8 along one latent coordinate: the vector `random_latent(seed)`
    with coordinate `dimension` set to each of `values` (say -3..3: the normal's range)."""
    return generate(generator, walk(random_latent(generator, seed), dimension, values))


def path(z0: np.ndarray, z1: np.ndarray, steps: int, spherical: bool = True) -> np.ndarray:
    """`steps` latent vectors from z0 to z1 inclusive: slerp (see the module's equation)
    or, with `spherical=False` or (anti)parallel vectors, the straight line."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (got {steps})")
    a, b = np.asarray(z0, np.float64).reshape(-1), np.asarray(z1, np.float64).reshape(-1)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    omega = float(np.arccos(np.clip(cos, -1.0, 1.0)))
    if not spherical or np.sin(omega) < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b)
            / np.sin(omega)).astype(np.float32)


def interpolate(generator: Any, z0: np.ndarray, z1: np.ndarray, steps: int = 8,
                spherical: bool = True) -> np.ndarray:
    """Images (steps, h, w) uint8 from generator(z0) to generator(z1)."""
    return generate(generator, path(z0, z1, steps, spherical))
