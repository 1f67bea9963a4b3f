"""A recurrent network over the slices of a volume: each slice is encoded by the same small
CNN, a GRU or LSTM reads the slices in order, and attention pooling weighs the slices
before the class is decided.

- Per-slice CNN + recurrent layer: the "CNN-RNN" used for CT volumes, e.g. Grewal et al.
  2018, RADnet (https://arxiv.org/abs/1710.04934), a DenseNet per slice with a
  bidirectional LSTM for haemorrhage detection.
- Attention pooling: Bahdanau, Cho and Bengio 2015 (https://arxiv.org/abs/1409.0473) and,
  for pooling a bag of instances, Ilse, Tomczak and Welling 2018, "Attention-based Deep
  Multiple Instance Learning" (https://arxiv.org/abs/1802.04712): a score per slice,
  a softmax over slices, the weighted sum of the slices' features.

Layer names are stable: `slice_block{i}_conv` (the per-slice convolutions, each wrapped in
TimeDistributed), `sequence` (the recurrent layer, (N, slices, features)), `slice_score`
(one number per slice), `slice_attention` (the softmax over slices: (N, slices), the
weight each slice gets), `pooled`, `logits`, `probabilities`. Only ordinary Keras layers:
a saved model reloads in safe mode with no custom objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.options import Option

ATTENTION = "slice_attention"

ABOUT = (
    "A small CNN looks at each slice of the volume on its own, then a recurrent layer "
    "(a GRU or an LSTM) reads the slices in order, as a radiologist scrolls through a "
    "scan. Attention pooling gives every slice a weight that sums to 1 over the volume, "
    "and the class is decided from the weighted sum. The field uses this for CT and MRI "
    "series where the finding sits in a few slices. Watch the slice weights: they show "
    "which slices the model leaned on, which is not the same as which slices hold the "
    "evidence."
)

OPTIONS: dict[str, Option] = {
    "cell": Option("gru", "recurrent cell: a GRU (fewer weights) or an LSTM", str,
                   choices=("gru", "lstm")),
    "bidirectional": Option(True, "read the slices in both directions (top-down and "
                                  "bottom-up) and join the two", bool),
    "units": Option(32, "units of the recurrent layer (per direction)", int, 4, 256),
    "filters": Option(16, "filters of the first per-slice conv block (doubled each block)",
                      int, 2, 64),
    "blocks": Option(3, "conv-ReLU-pool blocks of the per-slice encoder", int, 1, 5),
    "dropout": Option(0.25, "dropout before the last layer", float, 0.0, 0.8),
    "attend": Option("sequence", "what each slice's attention score is read from: the "
                                 "recurrent layer's output at that slice (which has seen "
                                 "its neighbours: weights can pile up at the ends), or the "
                                 "slice's own CNN features (a weight then says which slice "
                                 "itself looked decisive)", str,
                     choices=("sequence", "slices")),
}


def recurrent(input_shape: tuple[int, int, int, int], classes: int, *,
              front: Sequence[Any] = (), cell: str = "gru", bidirectional: bool = True,
              units: int = 32, filters: int = 16, blocks: int = 3,
              dropout: float = 0.25, attend: str = "sequence",
              name: str = "recurrent") -> Any:
    """A per-slice CNN, a (bidirectional) GRU/LSTM over slices and attention pooling over
    `input_shape` (slices, h, w, 1) volumes, for `classes` >= 2 classes. `front` layers
    (preprocessing, augmentation) act on the input first."""
    import keras
    from keras import layers

    _, height, width, _ = input_shape
    if classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, not {classes}")
    if cell not in ("gru", "lstm"):
        raise ValueError(f"cell: '{cell}' is not one of gru, lstm")
    if attend not in ("sequence", "slices"):
        raise ValueError(f"attend: '{attend}' is not one of sequence, slices")
    if min(height, width) < 2**blocks:
        raise ValueError(f"slices of {height}x{width} are too small for {blocks} blocks "
                         f"(each halves them: at least {2**blocks} wanted)")

    inputs = keras.Input(input_shape, name="volume")
    x = inputs
    for layer in front:
        x = layer(x)
    for i in range(1, blocks + 1):
        # TimeDistributed: the same convolution (same weights) on every slice.
        x = layers.TimeDistributed(
            layers.Conv2D(filters * 2 ** (i - 1), 3, padding="same", activation="relu"),
            name=f"slice_block{i}_conv")(x)
        x = layers.TimeDistributed(layers.MaxPooling2D(2, padding="same"),
                                   name=f"slice_block{i}_pool")(x)
    x = features = layers.TimeDistributed(layers.GlobalAveragePooling2D(),
                                          name="slice_features")(x)
    # `sequence` names the outer layer either way: (N, slices, units or 2 x units).
    rnn = (layers.GRU if cell == "gru" else layers.LSTM)(
        units, return_sequences=True, name=f"sequence_{cell}" if bidirectional else "sequence")
    if bidirectional:
        rnn = layers.Bidirectional(rnn, name="sequence")
    sequence = rnn(x)
    # Attention pooling (Ilse et al. 2018, eq. 8-9 without the tanh hidden layer):
    # a_s = softmax_s(w . h_s + b), z = sum_s a_s h_s; with attend="slices" the score
    # reads the slice's own features f_s instead: a_s = softmax_s(w . f_s + b).
    score = layers.Dense(1, name="slice_score")(sequence if attend == "sequence" else features)
    score = layers.Flatten(name="slice_score_flat")(score)
    weights = layers.Softmax(axis=-1, name=ATTENTION)(score)
    pooled = layers.Dot(axes=(1, 1), name="pooled")([weights, sequence])
    if dropout:
        pooled = layers.Dropout(dropout, name="dropout")(pooled)
    logits = layers.Dense(classes, name="logits")(pooled)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


def slice_weights(model: Any, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Each volume's attention weight per slice, (N, slices), each row summing to 1: the
    output of the model's `slice_attention` layer (inference mode: no augmentation, no
    dropout)."""
    import keras

    try:
        layer = model.get_layer(ATTENTION)
    except ValueError:
        raise ValueError(f"model '{model.name}' has no '{ATTENTION}' layer "
                         f"(not a slice-attention network)") from None
    probe = keras.Model(model.inputs, layer.output)
    return np.asarray(probe.predict(np.asarray(x, np.float32), batch_size=batch_size,
                                    verbose=0), dtype=np.float32)
