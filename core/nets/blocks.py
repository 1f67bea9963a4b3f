"""The custom Keras layers the builders in `core.nets` need (the ViT's class token,
position embedding and token pick), each registered so that a saved model reloads in
Keras safe mode once this module is imported (`core.models.runtime.keras.load_keras`
imports it). Ordinary Keras layers are used wherever one does the job: a Lambda layer
would be refused by safe mode.

The ViT layers follow Dosovitskiy et al. 2021 (https://arxiv.org/abs/2010.11929), Eq. 1:
z0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "medlens"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassToken(keras.layers.Layer):
    """Prepends one learned token (x_class in Eq. 1) to a (N, T, dim) sequence: its output
    after the encoder is what the classifier reads."""

    def build(self, input_shape: Any) -> None:
        self.token = self.add_weight(shape=(1, 1, int(input_shape[-1])), name="token",
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x: Any) -> Any:
        token = ops.broadcast_to(ops.cast(self.token, x.dtype),
                                 (ops.shape(x)[0], 1, ops.shape(x)[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned (1, T, dim) position embedding (E_pos in Eq. 1): attention alone
    does not know where a patch came from."""

    def build(self, input_shape: Any) -> None:
        self.position = self.add_weight(
            shape=(1, int(input_shape[1]), int(input_shape[2])), name="position",
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x: Any) -> Any:
        return x + ops.cast(self.position, x.dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Token(keras.layers.Layer):
    """One token of a (N, T, dim) sequence: (N, dim) (the class token is `index=0`)."""

    def __init__(self, index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x: Any) -> Any:
        return x[:, self.index]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}
