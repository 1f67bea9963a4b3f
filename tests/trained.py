"""Small CNNs trained in the test process, so that their maps mean something (an untrained
network gives near-zero Grad-CAM maps), and so that a map can be checked against where the
evidence really is.

The task: 32x32 crops of real images (the 17 brain MRI and 16 chest X-ray samples the
model packages ship), darkened, with one bright shape drawn at a random place: a disk, a
ring, a cross or a square outline. The class is the shape; the network has to find it
wherever it is, and a faithful map lights it up (the masks of the drawn shapes are kept).

One set of trained weights is built into several kinds of Keras model (functional,
Sequential, a nested backbone, a logit head, a separate Softmax layer, a two-input model)
so that maps can be compared across kinds. The single-sigmoid head (ring 1 vs disk 0) and
the multi-label head (one sigmoid unit per shape, several shapes per image) need their
own labels: they are fine-tuned briefly from the same convolutions. Everything is seeded
and cached per process. Accuracies measured on held-out images are in tests that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

SIZE = 32
SHAPES = ("disk", "ring", "cross", "square")  # the classes
CLASSES = len(SHAPES)
CONVS = ("conv1", "conv2", "conv3")  # conv3 (8x8x32) is the last spatial layer


@cache
def backgrounds() -> tuple[np.ndarray, ...]:
    """The 33 real sample images, grey, in [0, 1], shrunk so a crop shows anatomy."""
    from core.models import card
    from core.models.samples import samples

    out = []
    for model_id in ("braintumor-xception", "pneumonia-xception"):
        for sample in samples(card(model_id)):
            grey = cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)
            out.append(cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
                       .astype(np.float32) / 255)
    return tuple(out)


def crop(rng: np.random.Generator, images: tuple[np.ndarray, ...]) -> np.ndarray:
    image = images[rng.integers(len(images))]
    top, left = rng.integers(0, image.shape[0] - SIZE + 1, size=2)
    out = image[top:top + SIZE, left:left + SIZE]
    return out[:, ::-1] if rng.random() < 0.5 else out


def shape_mask(kind: int, row: int, col: int) -> np.ndarray:
    """A 32x32 mask of one shape centred at (row, col), about 9 pixels across."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    centre = (int(col), int(row))
    if SHAPES[kind] == "disk":
        cv2.circle(mask, centre, 3, 1, -1)
    elif SHAPES[kind] == "ring":
        cv2.circle(mask, centre, 4, 1, 1)
    elif SHAPES[kind] == "cross":
        cv2.line(mask, (col - 4, row), (col + 4, row), 1, 1)
        cv2.line(mask, (col, row - 4), (col, row + 4), 1, 1)
    else:
        cv2.rectangle(mask, (col - 4, row - 4), (col + 4, row + 4), 1, 1)
    return mask.astype(bool)


@dataclass(frozen=True)
class Data:
    x: np.ndarray  # (N, 32, 32, 3) float32 in [0, 1]
    label: np.ndarray  # (N,) the shape's class (one-shape sets), or -1
    present: np.ndarray  # (N, 4) 1 where the image holds that shape
    masks: np.ndarray  # (N, 4, 32, 32) bool: where each shape was drawn


def make_data(n: int, seed: int, multi: bool = False, kinds: tuple[int, ...] = (0, 1, 2, 3)
              ) -> Data:
    """`n` crops of real images with one shape of `kinds` each at a random place, or
    (`multi`) each shape with p = 0.5, in different quadrants so they never overlap."""
    rng = np.random.default_rng(seed)
    images = backgrounds()
    x = np.empty((n, SIZE, SIZE, 3), np.float32)
    label = np.full(n, -1, np.int32)
    present = np.zeros((n, CLASSES), np.float32)
    masks = np.zeros((n, CLASSES, SIZE, SIZE), bool)
    half = SIZE // 2
    for i in range(n):
        grey = 0.6 * crop(rng, images)  # darker, so a shape shows on bright tissue too
        if multi:
            chosen = [k for k in range(CLASSES) if rng.random() < 0.5]
            places = rng.permutation(4)[:len(chosen)]
        else:
            chosen = [int(rng.choice(kinds))]
            places = [None]
            label[i] = chosen[0]
        for kind, place in zip(chosen, places, strict=True):
            if place is None:
                row, col = rng.integers(5, SIZE - 5, size=2)
            else:
                row = (place // 2) * half + rng.integers(5, half - 5 + 1)
                col = (place % 2) * half + rng.integers(5, half - 5 + 1)
            mask = shape_mask(kind, int(row), int(col))
            grey[mask] = rng.uniform(0.9, 1.0)
            present[i, kind] = 1
            masks[i, kind] = mask
        x[i] = np.repeat(grey[..., None], 3, axis=-1)
    return Data(x, label, present, masks)


# -- models ------------------------------------------------------------------------------

def _conv_layers() -> list:
    """conv1 (32x32x16) -> pool -> conv2 (16x16x32) -> pool -> conv3 (8x8x32), ReLU."""
    from keras import layers

    out = []
    for name, filters in zip(CONVS, (16, 32, 32), strict=True):
        out.append(layers.Conv2D(filters, 3, padding="same", activation="relu", name=name))
        if name != CONVS[-1]:
            out.append(layers.MaxPooling2D(2, name=f"{name}_pool"))
    return out


def _features(x):
    import keras

    for layer in _conv_layers():
        x = layer(x)
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def functional(units: int = CLASSES, activation: str | None = "softmax"):
    """Input -> 3 convolutions -> global average pooling -> Dense(units, activation)
    named "scores"."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    out = keras.layers.Dense(units, activation=activation, name="scores")(_features(inputs))
    return keras.Model(inputs, out, name="flat")


def sequential(weights):
    """The functional model's layers as a keras.Sequential, with the same weights."""
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)), *_conv_layers(),
        layers.GlobalAveragePooling2D(name="pool"),
        layers.Dense(CLASSES, activation="softmax", name="scores"),
    ], name="sequential")
    model.set_weights(weights)
    return model


def nested(weights):
    """The convolutions as one functional layer, "backbone", inside an outer model."""
    import keras
    from keras import layers

    inner = keras.Input((SIZE, SIZE, 3), name="backbone_in")
    x = inner
    for layer in _conv_layers():
        x = layer(x)
    backbone = keras.Model(inner, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    features = layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    out = layers.Dense(CLASSES, activation="softmax", name="scores")(features)
    model = keras.Model(inputs, out, name="nested")
    model.set_weights(weights)
    return model


def logits(weights):
    """The same network without the softmax: its outputs are the scores themselves."""
    model = functional(activation=None)
    model.set_weights(weights)
    return model


def softmax_layer(weights):
    """The same network with the softmax as a separate `Softmax` layer."""
    import keras

    inner = logits(weights)
    out = keras.layers.Softmax(name="probabilities")(inner.output)
    return keras.Model(inner.input, out, name="softmax_layer")


# The second input of the two-input model: a 4-vector added to the logits through a
# Dense layer set by hand (META_GAIN x identity). It shifts the scores without touching
# the image path, so dS/d(image) is the flat model's exactly.
META_GAIN = 3.0


def two_inputs(weights):
    """Inputs [meta (4,), image]: the image is the second input, so finding it is tested;
    the softmax is an `Activation` layer after an `Add`."""
    import keras
    from keras import layers

    meta = keras.Input((CLASSES,), name="meta")
    image = keras.Input((SIZE, SIZE, 3), name="image")
    image_scores = layers.Dense(CLASSES, name="image_scores")(_features(image))
    meta_scores = layers.Dense(CLASSES, use_bias=False, name="meta_scores")(meta)
    out = layers.Activation("softmax", name="probabilities")(
        layers.Add(name="add")([image_scores, meta_scores]))
    model = keras.Model([meta, image], out, name="two_inputs")
    by_layer = _by_layer(weights)
    for name in CONVS:
        model.get_layer(name).set_weights(by_layer[name])
    model.get_layer("image_scores").set_weights(by_layer["scores"])
    model.get_layer("meta_scores").set_weights([META_GAIN * np.eye(CLASSES, dtype=np.float32)])
    return model


def _by_layer(weights) -> dict[str, list[np.ndarray]]:
    names = (*CONVS, "scores")
    return {name: list(weights[2 * i:2 * i + 2]) for i, name in enumerate(names)}


# -- training ----------------------------------------------------------------------------

TRAIN, HELD_OUT = 1024, 512
DISK, RING = SHAPES.index("disk"), SHAPES.index("ring")


def _fit(model, x, y, loss: str, epochs: int, seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True)


@cache
def shape_weights() -> tuple[np.ndarray, ...]:
    """The flat softmax model trained on the shape task (seeded)."""
    import keras

    keras.utils.set_random_seed(0)
    model = functional()
    data = make_data(TRAIN, seed=1)
    _fit(model, data.x, data.label, "sparse_categorical_crossentropy", epochs=8, seed=0)
    return tuple(model.get_weights())


@cache
def softmax_model():
    """(a) The flat functional model, softmax head."""
    model = functional()
    model.set_weights(list(shape_weights()))
    return model


@cache
def binary_model():
    """(d) One sigmoid unit on disk-or-ring images: 1 for a ring, 0 for a disk. Fine-tuned
    from the shape model's convolutions."""
    import keras

    keras.utils.set_random_seed(0)
    model = functional(units=1, activation="sigmoid")
    for name in CONVS:
        model.get_layer(name).set_weights(_by_layer(shape_weights())[name])
    data = make_data(TRAIN, seed=2, kinds=(DISK, RING))
    _fit(model, data.x, (data.label == RING).astype(np.float32), "binary_crossentropy",
         epochs=2, seed=0)
    return model


@cache
def multilabel_model():
    """(e) Four sigmoid units, one per shape, any number of shapes per image. Fine-tuned
    from the shape model's convolutions."""
    import keras

    keras.utils.set_random_seed(0)
    model = functional(activation="sigmoid")
    for name in CONVS:
        model.get_layer(name).set_weights(_by_layer(shape_weights())[name])
    data = make_data(TRAIN, seed=3, multi=True)
    _fit(model, data.x, data.present, "binary_crossentropy", epochs=10, seed=0)
    return model


@cache
def held_out() -> Data:
    return make_data(HELD_OUT, seed=100)


@cache
def held_out_binary() -> Data:
    return make_data(HELD_OUT, seed=102, kinds=(DISK, RING))


@cache
def held_out_multi() -> Data:
    return make_data(HELD_OUT, seed=101, multi=True)


# -- every kind, built once per process ---------------------------------------------------

# kind: (builder, the automatic layer expected, the last Dense's activation)
KINDS = {
    "functional": (lambda: softmax_model(), "conv3", "softmax"),
    "sequential": (lambda: sequential(list(shape_weights())), "conv3", "softmax"),
    "nested": (lambda: nested(list(shape_weights())), "backbone/conv3", "softmax"),
    "logits": (lambda: logits(list(shape_weights())), "conv3", "linear"),
    "softmax-layer": (lambda: softmax_layer(list(shape_weights())), "conv3", "linear"),
    "binary": (lambda: binary_model(), "conv3", "sigmoid"),
    "multilabel": (lambda: multilabel_model(), "conv3", "sigmoid"),
    "two-inputs": (lambda: two_inputs(list(shape_weights())), "conv3", "linear"),
}


@cache
def kind(name: str):
    """The model of a kind (cached, so its compiled explanation functions are reused)."""
    return KINDS[name][0]()


def inputs_for(name: str, images: np.ndarray, meta: np.ndarray | None = None):
    """What the model of a kind takes for `images`: the two-input model gets
    [meta (zeros unless given), images]."""
    if name != "two-inputs":
        return images
    if meta is None:
        meta = np.zeros((len(images), CLASSES), np.float32)
    return [meta, images]
