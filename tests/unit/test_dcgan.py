"""core.nets.dcgan: the generator and discriminator shapes, the GAN's train step, safe-mode
reloading (optimizer state included) and the sample grid."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from core.nets import dcgan as dcgan_module
from core.nets.dcgan import GAN, dcgan, discriminator, generator, sample_grid
from core.options import checked

TINY = {"latent": 8, "filters": 8}


def latent(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, size)).astype(np.float32)


@pytest.mark.parametrize("shape, options, batch_norm", [
    ((32, 32, 1), {}, True), ((8, 16, 1), TINY, True), ((8, 8, 1), TINY, False)])
def test_generator_makes_images_in_the_data_range(shape, options, batch_norm):
    g = generator(shape, **options, batch_norm=batch_norm)
    images = g.predict(latent(3, options.get("latent", 64)), verbose=0)
    assert images.shape == (3, *shape)
    assert images.min() >= 0.0 and images.max() <= 1.0
    d = discriminator(shape, options.get("filters", 32), batch_norm=batch_norm)
    assert d.predict(images, verbose=0).shape == (3, 1)
    norms = [layer.name for model in (g, d) for layer in model.layers
             if "BatchNormalization" in type(layer).__name__]
    # Radford et al.: everywhere but the generator's output and the discriminator's input.
    assert norms == (["project_bn", "up1_bn", "up2_bn", "up3_bn", "down2_bn", "down3_bn"]
                     if batch_norm else [])


def test_generator_rejects_a_size_it_cannot_reach():
    with pytest.raises(ValueError, match="not a multiple of 8"):
        generator((30, 32, 1))


def test_train_step_moves_both_networks_and_reports_finite_losses():
    import keras

    keras.utils.set_random_seed(0)
    gan = dcgan((8, 8, 1), **TINY)
    before = {part: [w.copy() for w in getattr(gan, part).get_weights()]
              for part in ("generator", "discriminator")}
    images = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    history = gan.fit(images, batch_size=8, epochs=2, verbose=0).history
    assert set(history) == {"d_loss", "g_loss"}
    assert np.isfinite(history["d_loss"] + history["g_loss"]).all()
    for part, weights in before.items():
        after = getattr(gan, part).get_weights()
        assert all(not np.array_equal(a, b) for a, b in zip(after, weights, strict=True)), part
    assert int(gan.d_optimizer.iterations) == int(gan.g_optimizer.iterations) == 4


def test_the_gan_generator_and_discriminator_reload_in_safe_mode(tmp_path):
    import keras

    gan = dcgan((8, 8, 1), **TINY, seed=3)
    gan.fit(np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32),
            batch_size=4, epochs=1, verbose=0)
    z = latent(5)
    gan.save(tmp_path / "gan.keras")
    gan.generator.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", safe_mode=True)
    assert isinstance(loaded, GAN) and loaded.latent == 8 and loaded.seed == 3
    np.testing.assert_array_equal(loaded.predict(z, verbose=0), gan.predict(z, verbose=0))
    images = gan.predict(z, verbose=0)
    np.testing.assert_array_equal(loaded.discriminator.predict(images, verbose=0),
                                  gan.discriminator.predict(images, verbose=0))
    # The optimizers come back with their state, so training can resume.
    assert int(loaded.d_optimizer.iterations) == int(gan.d_optimizer.iterations) == 2
    np.testing.assert_array_equal(loaded.g_optimizer.variables[-1].numpy(),
                                  gan.g_optimizer.variables[-1].numpy())
    alone = keras.models.load_model(tmp_path / "generator.keras", safe_mode=True)
    np.testing.assert_array_equal(alone.predict(z, verbose=0), images)


def test_front_layers_act_in_the_discriminator():
    import keras

    gan = dcgan((8, 8, 1), front=[keras.layers.GaussianNoise(0.1, name="front_noise")],
                **TINY)
    noise = gan.discriminator.get_layer("front_noise")
    assert noise.input is gan.discriminator.inputs[0]


@pytest.mark.parametrize("z_shape, grid", [((5, 8), (2, 3)), ((2, 4, 8), (2, 4)),
                                           ((1, 8), (1, 1))])
def test_sample_grid_tiles_the_generated_images(z_shape, grid):
    g = generator((8, 16, 1), **TINY)
    z = np.random.default_rng(1).standard_normal(z_shape).astype(np.float32)
    tiled = sample_grid(g, z)
    rows, cols = grid
    assert tiled.shape == (rows * 8, cols * 16)
    assert tiled.min() >= 0.0 and tiled.max() <= 1.0
    images = g.predict(z.reshape(-1, 8), verbose=0)[..., 0]
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        np.testing.assert_allclose(tiled[r * 8:(r + 1) * 8, c * 16:(c + 1) * 16], image,
                                   atol=1e-6)
    if len(images) < rows * cols:  # the cells past the last image stay black
        assert not tiled[(rows - 1) * 8:, (len(images) % cols) * 16:].any()


def test_sample_grid_rejects_a_bad_latent_array():
    with pytest.raises(ValueError, match="latent vectors of shape"):
        sample_grid(generator((8, 8, 1), **TINY), np.zeros(8))


def test_options_declare_the_builders_defaults():
    signature = inspect.signature(dcgan).parameters
    assert checked(dcgan_module.OPTIONS, {}) == {
        name: signature[name].default for name in dcgan_module.OPTIONS}
    assert inspect.signature(generator).parameters["latent"].default == \
        dcgan_module.OPTIONS["latent"].default
    assert 3 <= dcgan_module.ABOUT.count(". ") + 1 <= 6
