"""Can the built-in training tasks be learnt? A quick small Keras model per task, trained on
the task's seeded split for a fixed time budget, its validation metric printed.

`.venv/bin/python bench/train_tasks.py [--task NAME ...] [--seconds 60] [--seed 0]`
prints one JSON line per task: N, shape, class counts, the split's counts, epochs run,
training seconds, and the best validation accuracy (classification) or mean foreground
Dice (masks). These are the small models written here, not the catalogue's recipes.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from core.train.data import TASKS, TrainingData
from core.train.split import split


def _classifier(data: TrainingData) -> Any:
    import keras
    from keras import layers

    volumes = data.kind == "volumes"
    conv, pool, gap = ((layers.Conv3D, layers.MaxPooling3D, layers.GlobalAveragePooling3D)
                       if volumes else
                       (layers.Conv2D, layers.MaxPooling2D, layers.GlobalAveragePooling2D))
    x = inputs = keras.Input(data.x.shape[1:])
    for filters in ((8, 16, 32) if volumes else (16, 32, 64)):
        x = conv(filters, 3, padding="same", activation="relu")(x)
        x = pool((1, 2, 2) if volumes else 2)(x)
    x = gap()(x) if volumes else layers.Flatten()(x)
    x = layers.Dropout(0.25)(layers.Dense(64, activation="relu")(x))
    out = layers.Dense(len(data.labels), activation="softmax")(x)
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _dice(model: Any, x: np.ndarray, y: np.ndarray, labels: int) -> float:
    pred = model.predict(x, verbose=0).argmax(-1)
    scores = []
    for c in range(1, labels):
        both = ((pred == c) & (y == c)).sum()
        total = (pred == c).sum() + (y == c).sum()
        if total:
            scores.append(2 * both / total)
    return float(np.mean(scores))


def run(name: str, seconds: float, seed: int) -> dict[str, Any]:
    import keras

    keras.utils.set_random_seed(seed)
    data = TASKS[name].make()
    s = split(data, seed)
    row: dict[str, Any] = {"task": name, "n": data.count, "shape": list(data.x.shape[1:]),
                           "class_counts": data.class_counts(), "split": s.counts()}
    if data.kind == "unlabelled":
        return row
    xt, xv = data.x[s.train], data.x[s.validation]
    yt, yv = data.y[s.train], data.y[s.validation]
    if data.kind == "masks":
        from core.nets.unet import unet
        from core.segment.train import dice_ce_loss

        # No batch normalisation: a minute of steps leaves its running statistics unsettled.
        model = unet(data.x.shape[1:], len(data.labels), filters=16, depth=3,
                     batch_norm=False)
        model.compile(keras.optimizers.Adam(2e-3), dice_ce_loss(len(data.labels)))
    else:
        model = _classifier(data)
    start, epochs, best = time.perf_counter(), 0, 0.0
    while time.perf_counter() - start < seconds:
        model.fit(xt, yt, batch_size=8 if data.kind != "images" else 32, epochs=1, verbose=0,
                  shuffle=True)
        epochs += 1
        if len(xv) == 0:
            continue
        if data.kind == "masks":
            score = _dice(model, xv, yv, len(data.labels))
        else:
            score = float((model.predict(xv, verbose=0).argmax(-1) == yv).mean())
        best = max(best, score)
    train_score = (float((model.predict(xt, verbose=0).argmax(-1) == yt).mean())
                   if data.kind != "masks" else _dice(model, xt, yt, len(data.labels)))
    row.update(epochs=epochs, seconds=round(time.perf_counter() - start, 1),
               metric="mean foreground Dice" if data.kind == "masks" else "accuracy",
               best_validation=round(best, 3), last_train=round(train_score, 3))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=list(TASKS))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.task or list(TASKS):
        print(json.dumps(run(name, args.seconds, args.seed)), flush=True)


if __name__ == "__main__":
    main()
