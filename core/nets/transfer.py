"""Transfer learning (Yosinski et al. 2014, https://arxiv.org/abs/1411.1792; the Keras
guide, https://keras.io/guides/transfer_learning/): an ImageNet-initialised Xception
(Chollet 2017, https://arxiv.org/abs/1610.02357) reused as a feature extractor, frozen,
with a new head trained on the task; optionally its top blocks are unfrozen to fine-tune.

The backbone is the nested `xception` layer of the shipped braintumor-xception (no
network: `weights="imagenet"` cannot download here). Its weights are copied into an
Xception built at the training size (convolution kernels do not depend on the image
size). Grey [0, 1] inputs become Xception's inputs with ordinary layers (no Lambda, which
safe mode refuses): repeated to three channels, then scaled to [-1, 1] as
`keras.applications.xception.preprocess_input` does (x / 127.5 - 1 on 0-255 is 2x - 1
on 0-1).

Layer names: `image`, `rgb`, `scale`, `xception` (its last conv activation,
`xception/block14_sepconv2_act`, is the Grad-CAM layer), `pool`, `dropout`, `logits`,
`probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.options import Option

MINIMUM = 71  # Xception's smallest input side (keras.applications refuses less)
BLOCKS = 14

ABOUT = (
    "Transfer learning starts from a network already trained on a million everyday "
    "photographs (ImageNet) and trains only a new last layer for the medical task; its "
    "early filters (edges, textures) are useful on scans too. The field uses it because "
    "labelled medical images are scarce. Unfreezing the top blocks lets them adapt, at "
    "the risk of overfitting a small set. Watch for what the photographs taught it: "
    "features found in photographs are not anatomy, and a small grey image is far from "
    "what it was trained on."
)

OPTIONS: dict[str, Option] = {
    "unfreeze": Option(0, "top Xception blocks to fine-tune (0: only the new head "
                          "learns)", int, 0, BLOCKS),
    "dropout": Option(0.2, "dropout before the last layer", float, 0.0, 0.8),
    "pool": Option("average", "how the backbone's feature maps become one vector: their "
                              "average (the Keras guide's head: where a feature is, is "
                              "lost) or all of them in place (flatten: the head can tell "
                              "the middle of the image from its edge)", str,
                   choices=("average", "flatten")),
}


def transfer(input_shape: tuple[int, int, int], classes: int, *, backbone: Any,
             front: Sequence[Any] = (), unfreeze: int = 0, dropout: float = 0.2,
             pool: str = "average") -> Any:
    """A classifier on a copy of `backbone` (a Keras Xception, include_top=False): frozen
    except its top `unfreeze` blocks (block14, block13, ...), whose BatchNorm layers stay
    frozen and in inference mode (their statistics come from ImageNet; a small batch
    would overwrite them)."""
    import keras
    from keras import layers

    height, width = input_shape[0], input_shape[1]
    if min(height, width) < MINIMUM:
        raise ValueError(f"input {height}x{width} is too small for Xception "
                         f"(at least {MINIMUM}x{MINIMUM})")
    if not 0 <= unfreeze <= BLOCKS:
        raise ValueError(f"unfreeze: {unfreeze} is not between 0 and {BLOCKS}")
    net = keras.applications.Xception(weights=None, include_top=False,
                                      input_shape=(height, width, 3), name="xception")
    copy_weights(backbone, net)
    set_trainable(net, unfreeze)

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in front:
        x = layer(x)
    x = layers.Concatenate(axis=-1, name="rgb")([x, x, x])
    x = layers.Rescaling(2.0, offset=-1.0, name="scale")(x)
    # training=False: BatchNorm runs on its stored statistics even while the head trains.
    x = net(x, training=False)
    x = (layers.GlobalAveragePooling2D(name="pool") if pool == "average"
         else layers.Flatten(name="pool"))(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name="transfer")


def _weighted(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.weights]


def copy_weights(source: Any, target: Any) -> None:
    """Copies `source`'s weights into `target` layer by layer, in order (the unnamed
    residual convolutions get a different automatic name in every build, so names cannot
    pair them); ValueError if the two are not the same architecture."""
    pairs = list(zip(_weighted(source), _weighted(target), strict=False))
    if len(_weighted(source)) != len(_weighted(target)):
        raise ValueError(f"backbone '{source.name}' is not an Xception: "
                         f"{len(_weighted(source))} weighted layers, "
                         f"Xception has {len(_weighted(target))}")
    for old, new in pairs:
        shapes = [tuple(w.shape) for w in old.weights]
        if (old.__class__ is not new.__class__
                or shapes != [tuple(w.shape) for w in new.weights]):
            raise ValueError(f"backbone layer '{old.name}' does not match Xception's "
                             f"'{new.name}'")
        new.set_weights(old.get_weights())


def set_trainable(net: Any, unfreeze: int) -> None:
    """Everything after the last layer of block (15 - unfreeze) trainable, BatchNorm
    excepted; the rest frozen. Block 13's residual convolution comes after block 12's
    last named layer, so it unfreezes with block 13."""
    import keras

    net.trainable = unfreeze > 0
    if not unfreeze:
        return
    first = BLOCKS - unfreeze + 1
    names = [layer.name for layer in net.layers]
    before = [i for i, name in enumerate(names) if name.startswith(f"block{first - 1}_")]
    cut = max(before) if before else 0
    for i, layer in enumerate(net.layers):
        layer.trainable = (i > cut
                           and not isinstance(layer, keras.layers.BatchNormalization))


def unfrozen_blocks(model: Any) -> list[str]:
    """The names of the backbone blocks with trainable weights in a `transfer` model."""
    net = model.get_layer("xception")
    found = []
    for layer in net.layers:
        if layer.trainable_weights and layer.name.startswith("block"):
            block = layer.name.split("_")[0]
            if block not in found:
                found.append(block)
    return found
