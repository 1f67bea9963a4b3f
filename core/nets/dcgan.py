"""DCGAN: a generator that turns random numbers into images and a discriminator that tells
real images from generated ones, trained against each other.

Radford, Metz and Chintala 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks" (https://arxiv.org/abs/1511.06434), as the
Keras example "DCGAN to generate face images" builds it
(https://keras.io/examples/generative/dcgan_overriding_train_step/): strided convolutions
instead of pooling, transposed convolutions to upsample, ReLU in the generator and
LeakyReLU(0.2) in the discriminator, no dense hidden layers, and (the paper's, not the
Keras example's) batch normalisation in both networks except the generator's output and
the discriminator's input. Measured on 478 brain slices at 32x32 for 2 minutes: without
it the discriminator won within 5 epochs and the generator collapsed to black images;
with it the losses stayed balanced and the samples took brain-like shapes.

The losses are Goodfellow et al. 2014's (https://arxiv.org/abs/1406.2661) with the
generator's "non-saturating" loss (their section 3): the discriminator minimises
BCE(D(x), 1) + BCE(D(G(z)), 0), the generator minimises BCE(D(G(z)), 1).

Layer names are stable: generator `latent` -> `project` -> `up{i}` -> `image` (a sigmoid:
images in [0, 1], the data's range); discriminator `image` -> `down{i}` -> `logit` (one
number: > 0 means "real").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from core.options import Option

ABOUT = (
    "A GAN is two networks trained against each other: the generator turns random "
    "numbers into images, the discriminator tries to tell them from real ones, and each "
    "improves by beating the other. The field uses GANs to make synthetic scans (for "
    "teaching, data sharing or augmentation) and to translate between modalities. Watch "
    "the two losses: neither should win outright, and a generator that makes the same "
    "image for every input (mode collapse) can still fool a weak discriminator. A "
    "generated image that looks like a brain is not anatomy: it shows no patient."
)

OPTIONS: dict[str, Option] = {
    "latent": Option(64, "length of the random vector the generator starts from", int,
                     8, 256),
    "filters": Option(32, "filters of the generator's last and the discriminator's first "
                          "conv (the others are 2x and 4x)", int, 8, 128),
    "batch_norm": Option(True, "batch normalisation in both networks (Radford et al.): "
                               "it keeps the two in balance on small data", bool),
}

UPSAMPLINGS = 3  # the generator starts at 1/8 of the image size


def generator(image_shape: tuple[int, int, int] = (32, 32, 1), latent: int = 64,
              filters: int = 32, batch_norm: bool = True) -> Any:
    """A latent vector -> a dense projection to (h/8, w/8, 4 filters) -> three stride-2
    transposed convolutions (4, 2, 1 x filters), each with batch normalisation (unless
    `batch_norm=False`) and ReLU -> a sigmoid image in [0, 1]."""
    from keras import layers

    height, width, channels = image_shape
    step = 2**UPSAMPLINGS
    if height % step or width % step:
        raise ValueError(f"image {height}x{width} is not a multiple of {step} (the "
                         f"generator doubles a {step}x smaller image {UPSAMPLINGS} times)")
    z = keras.Input((latent,), name="latent")
    x = layers.Dense((height // step) * (width // step) * filters * 4, name="project")(z)
    x = layers.Reshape((height // step, width // step, filters * 4), name="project_grid")(x)
    if batch_norm:
        x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_act")(x)
    for i in range(1, UPSAMPLINGS + 1):
        x = layers.Conv2DTranspose(filters * 2 ** (UPSAMPLINGS - i), 4, strides=2,
                                   padding="same", name=f"up{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"up{i}_bn")(x)
        x = layers.ReLU(name=f"up{i}_act")(x)
    image = layers.Conv2D(channels, 5, padding="same", activation="sigmoid",
                          name="image", dtype="float32")(x)
    return keras.Model(z, image, name="generator")


def discriminator(image_shape: tuple[int, int, int] = (32, 32, 1), filters: int = 32, *,
                  front: Sequence[Any] = (), batch_norm: bool = True) -> Any:
    """An image -> `front` layers (augmentation: they act on real and generated images
    alike) -> three stride-2 convolutions (1, 2, 4 x filters) with LeakyReLU(0.2) and
    batch normalisation after the second and third -> dropout -> one logit (> 0: "real")."""
    from keras import layers

    image = keras.Input(image_shape, name="image")
    x = image
    for layer in front:
        x = layer(x)
    for i in range(1, UPSAMPLINGS + 1):
        x = layers.Conv2D(filters * 2 ** (i - 1), 4, strides=2, padding="same",
                          name=f"down{i}")(x)
        if batch_norm and i > 1:  # not on the first: Radford et al. keep it off the input
            x = layers.BatchNormalization(name=f"down{i}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"down{i}_act")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    logit = layers.Dense(1, name="logit", dtype="float32")(x)
    return keras.Model(image, logit, name="discriminator")


@keras.saving.register_keras_serializable(package="medlens")
class GAN(keras.Model):
    """The generator and the discriminator trained together: `fit(images)` runs
    `train_step`, one discriminator step and one generator step per batch, and reports
    `d_loss` and `g_loss`. Calling the model on latent vectors gives generated images."""

    def __init__(self, discriminator: Any, generator: Any, latent: int, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.latent = int(latent)
        self.seed = int(seed)
        self.noise = keras.random.SeedGenerator(self.seed)
        self.built = True  # both networks are built: nothing is left to create on a call

    def call(self, z: Any, training: bool = False) -> Any:
        return self.generator(z, training=training)

    def compile(self, d_optimizer: Any = None, g_optimizer: Any = None,
                **kwargs: Any) -> None:
        """Adam(2e-4, beta_1=0.5) for each network by default, Radford et al.'s choice."""
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.get(
            d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5))
        self.g_optimizer = keras.optimizers.get(
            g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5))
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self) -> list[Any]:
        return [self.d_loss_tracker, self.g_loss_tracker] if self.compiled else []

    def train_step(self, data: Any) -> dict[str, Any]:
        # Keras 3 leaves the gradient step to the backend: this is TensorFlow's.
        import tensorflow as tf
        from keras import ops

        real = data[0] if isinstance(data, (tuple, list)) else data
        batch = ops.shape(real)[0]

        z = keras.random.normal((batch, self.latent), seed=self.noise)
        fake = self.generator(z, training=True)
        # Real 1, generated 0; the real labels softened to [0.95, 1] (one-sided label
        # smoothing, Salimans et al. 2016, https://arxiv.org/abs/1606.03498) so the
        # discriminator does not grow overconfident and starve the generator.
        smooth = 1.0 - 0.05 * keras.random.uniform((batch, 1), seed=self.noise)
        with tf.GradientTape() as tape:
            # Real and generated in separate batches (as Radford et al. train it): batch
            # normalisation then sees the same all-generated batch here as in the
            # generator's step, rather than a mixed batch it could tell apart by.
            d_loss = (self.loss_fn(smooth, self.discriminator(real, training=True))
                      + self.loss_fn(ops.zeros((batch, 1)),
                                     self.discriminator(fake, training=True)))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights,
                                             strict=True))

        z = keras.random.normal((batch, self.latent), seed=self.noise)
        with tf.GradientTape() as tape:
            judged = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self.loss_fn(ops.ones((batch, 1)), judged)  # the non-saturating loss
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights,
                                             strict=True))

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "latent": self.latent, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GAN:
        config = dict(config)
        for part in ("discriminator", "generator"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)

    def get_compile_config(self) -> dict[str, Any] | None:
        if not self.compiled:
            return None
        return {"d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
                "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer)}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(**{k: keras.saving.deserialize_keras_object(v)
                        for k, v in config.items()})
        # Built now, the optimizers take back their saved state (Adam's moments) when
        # the weights load, so a reloaded GAN resumes training where it stopped.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)


def dcgan(input_shape: tuple[int, int, int], classes: int = 0, *,
          front: Sequence[Any] = (), latent: int = 64, filters: int = 32,
          batch_norm: bool = True, seed: int = 0) -> GAN:
    """The catalogue's builder: a compiled `GAN` for `input_shape` (h, w, 1) images.
    `classes` is ignored (a GAN learns from unlabelled images); `front` goes in the
    discriminator."""
    del classes
    gan = GAN(discriminator(input_shape, filters, front=front, batch_norm=batch_norm),
              generator(input_shape, latent, filters, batch_norm), latent, seed=seed,
              name="dcgan")
    gan.compile()
    return gan


def sample_grid(generator: Any, z: np.ndarray) -> np.ndarray:
    """The generator's images for latent vectors `z` tiled into one grey image in [0, 1]:
    `z` (rows, cols, latent) gives a rows x cols grid; `z` (n, latent) the squarest grid
    that holds n (cells past n stay black). Returns (rows * h, cols * w)."""
    z = np.asarray(z, np.float32)
    if z.ndim == 3:
        rows, cols = z.shape[:2]
        z = z.reshape(rows * cols, z.shape[2])
    elif z.ndim == 2:
        cols = int(np.ceil(np.sqrt(len(z))))
        rows = int(np.ceil(len(z) / cols)) if len(z) else 0
    else:
        raise ValueError(f"latent vectors of shape {z.shape}: (n, latent) or "
                         f"(rows, cols, latent) expected")
    images = np.asarray(generator.predict(z, verbose=0), np.float32)[..., 0]
    h, w = images.shape[1:3]
    grid = np.zeros((rows * h, cols * w), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return np.clip(grid, 0.0, 1.0)
