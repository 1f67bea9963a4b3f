"""core.inside.latent: walks and interpolations through a tiny DCGAN generator."""

from __future__ import annotations

import numpy as np
import pytest

from core.inside.latent import (
    interpolate,
    latent_size,
    latent_walk,
    path,
    random_latent,
    walk,
)


@pytest.fixture(scope="module")
def tiny_generator():
    import keras

    from core.nets.dcgan import generator

    keras.utils.set_random_seed(0)
    return generator((16, 8, 1), latent=8, filters=4)


def as_uint8(g, z):
    return np.round(np.clip(np.asarray(g(z[None], training=False))[0, ..., 0], 0, 1)
                    * 255).astype(np.uint8)


def test_latent_size_and_seeded_draws(tiny_generator):
    assert latent_size(tiny_generator) == 8
    z = random_latent(tiny_generator, 3)
    assert z.shape == (8,) and z.dtype == np.float32
    np.testing.assert_array_equal(z, random_latent(tiny_generator, 3))
    assert not np.array_equal(z, random_latent(tiny_generator, 4))


def test_walk_changes_one_coordinate_and_gives_one_image_per_value(tiny_generator):
    values = [-3.0, 0.0, 3.0]
    images = latent_walk(tiny_generator, seed=1, dimension=5, values=values)
    assert images.shape == (3, 16, 8) and images.dtype == np.uint8
    z = random_latent(tiny_generator, 1)
    walked = walk(z, 5, values)
    np.testing.assert_array_equal(np.delete(walked, 5, axis=1), np.delete(np.repeat(
        z[None], 3, 0), 5, axis=1))
    np.testing.assert_array_equal(walked[:, 5], values)
    for image, v in zip(images, walked, strict=True):
        np.testing.assert_array_equal(image, as_uint8(tiny_generator, v))
    assert not np.array_equal(images[0], images[2])  # the coordinate does something
    with pytest.raises(ValueError, match="out of range"):
        latent_walk(tiny_generator, 0, 8, values)


@pytest.mark.parametrize("spherical", [True, False])
def test_interpolation_runs_from_one_image_to_the_other(tiny_generator, spherical):
    z0, z1 = random_latent(tiny_generator, 0), random_latent(tiny_generator, 1)
    images = interpolate(tiny_generator, z0, z1, steps=6, spherical=spherical)
    assert images.shape == (6, 16, 8)
    np.testing.assert_array_equal(images[0], as_uint8(tiny_generator, z0))
    np.testing.assert_array_equal(images[-1], as_uint8(tiny_generator, z1))


def test_spherical_interpolation_keeps_the_norm_the_straight_line_loses():
    rng = np.random.default_rng(5)
    z0, z1 = rng.standard_normal(64), rng.standard_normal(64)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    curve = path(z0, z1, 9)
    np.testing.assert_allclose(curve[0], z0, rtol=1e-5)
    np.testing.assert_allclose(curve[-1], z1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(curve, axis=1), np.linalg.norm(z0), rtol=1e-5)
    line = path(z0, z1, 9, spherical=False)
    assert np.linalg.norm(line[4]) < 0.9 * np.linalg.norm(z0)  # nearly orthogonal vectors
    with pytest.raises(ValueError, match="at least 2"):
        path(z0, z1, 1)
