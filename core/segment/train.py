"""How the built-in segmentation models are trained: one seeded command re-trains each from
scratch and rewrites its weights and card.

    python -m core.segment.train brain-tissue-unet [--seed 0] [--epochs N] [--out assets/models]
    python -m core.segment.train head-ct-unet

The network is the seeds' U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597;
`core.nets.unet`). The loss is soft Dice over the foreground labels plus categorical
cross-entropy (the Dice-CE of nnU-Net, Isensee et al. 2021,
https://doi.org/10.1038/s41592-020-01008-z). Inputs are made exactly as at inference
(`ModelCard.prepare`: the card's window, resize and scale), so what the model learnt is
what the app shows it. Slices are split into contiguous slabs along the axial axis with
guard bands between them, so neighbouring (nearly identical) slices never sit on both
sides of a split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.models.cards import CARDS_DIR, ModelCard, ModelError
from core.models.registry import sha256
from core.nets.unet import unet
from core.segment import data, metrics
from core.segment.run import at_size
from core.studies import Study, StudyError
from core.studies.masks import LabelMap
from core.studies.study import to_canonical

ROLES = ("train", "validation", "test")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a trained model: data, split, network size, schedule.

    `split`: role -> contiguous slabs [start, stop) of slice indices in `plane`; any two
    slabs of different roles are at least `guard` slices apart (checked)."""

    model_id: str
    data: Callable[[], tuple[Study, LabelMap]]
    split: dict[str, tuple[tuple[int, int], ...]]
    size: int = 128
    filters: int = 16
    depth: int = 3
    epochs: int = 40
    batch: int = 8
    learning_rate: float = 2e-3
    flip: bool = True  # left-right flips: both heads are near-symmetric
    guard: int = 5
    plane: str = "axial"

    def indices(self, role: str) -> list[int]:
        return [i for start, stop in self.split.get(role, ()) for i in range(start, stop)]

    def check(self, count: int) -> None:
        """Slabs inside the volume, and slabs of different roles `guard` slices apart."""
        slabs = [(start, stop, role) for role in ROLES for start, stop in self.split.get(role, ())]
        for start, stop, role in slabs:
            if not 0 <= start < stop <= count:
                raise ValueError(f"{self.model_id}: {role} slab [{start}, {stop}) is outside "
                                 f"0..{count}")
        for a in slabs:
            for b in slabs:
                if a[2] != b[2] and a[0] <= b[0] and b[0] - a[1] < self.guard:
                    raise ValueError(f"{self.model_id}: {a[2]} [{a[0]}, {a[1]}) and {b[2]} "
                                     f"[{b[0]}, {b[1]}) are closer than {self.guard} slices")

    def describe(self) -> dict[str, Any]:
        """The split as the card records it."""
        return {"plane": self.plane, "guard_slices": self.guard,
                **{role: [list(s) for s in self.split.get(role, ())] for role in ROLES},
                "note": (f"contiguous slabs of {self.plane} slice indices [start, stop) in the "
                         f"app's {self.plane} view (0 = most inferior); at least {self.guard} "
                         "slices discarded between slabs of different roles")}


RECIPES: dict[str, Recipe] = {
    # 189 axial slices (1 mm). The test slab crosses the lateral ventricles and the deep
    # grey nuclei; validation sits lower, through the temporal lobes.
    "brain-tissue-unet": Recipe(
        "brain-tissue-unet", data.brain_tissue,
        split={"train": ((0, 60), (85, 90), (130, 189)), "validation": ((65, 80),),
               "test": ((95, 125),)}, epochs=12),
    # 108 axial slices (1.5 mm), skull base to vertex.
    "head-ct-unet": Recipe(
        "head-ct-unet", data.head_ct,
        split={"train": ((0, 30), (50, 55), (90, 108)), "validation": ((35, 45),),
               "test": ((60, 85),)}, epochs=20),
}


# -- data -------------------------------------------------------------------------------

def model_card(recipe: Recipe, template: dict[str, Any]) -> ModelCard:
    """The card inputs are prepared with: the shipped card, at the recipe's input size."""
    raw = dict(template, input_shape=[recipe.size, recipe.size, 1])
    return ModelCard.from_dict(raw)


def target(labels: LabelMap, index: int, plane: str, size: tuple[int, int]) -> np.ndarray:
    """The label slice cut as the study's view, resized nearest to (h, w)."""
    import cv2

    view = labels.view(index, plane)
    h, w = size
    return cv2.resize(np.ascontiguousarray(view, dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST)


def slices(card: ModelCard, study: Study, labels: LabelMap, indices: list[int],
           plane: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, h, w, 1) inputs made by `card.prepare` and (N, h, w) uint8 targets."""
    h, w, _ = card.input_shape
    x = np.stack([card.prepare(study, frame=i, plane=plane).array for i in indices])
    y = np.stack([target(labels, i, plane, (h, w)) for i in indices])
    return x.astype(np.float32), y


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Light augmentation, new each epoch: left-right flips, intensity gain and offset,
    shifts of up to 6% and scales of 0.9-1.1 (bilinear image, nearest labels), so the
    network cannot memorise one volume's exact pixels."""
    import cv2

    n, h, w, _ = x.shape
    xs, ys = np.empty_like(x), np.empty_like(y)
    for i in range(n):
        img, lab = x[i, ..., 0], y[i]
        if flip and rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        scale = rng.uniform(0.9, 1.1)
        shift = rng.uniform(-0.06, 0.06, 2) * (w, h)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
        m[:, 2] += shift
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        lab = cv2.warpAffine(np.ascontiguousarray(lab), m, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-0.05, 0.05)
        xs[i, ..., 0] = np.clip(img * gain + offset, 0.0, 1.0)
        ys[i] = lab
    return xs, ys


# -- loss -------------------------------------------------------------------------------

def dice_ce_loss(labels: int, smooth: float = 1.0) -> Callable[[Any, Any], Any]:
    """Soft Dice over the foreground labels plus categorical cross-entropy.

    Soft Dice (Milletari et al. 2016, https://arxiv.org/abs/1606.04797) per label c >= 1:
    1 - (2 sum(p_c g_c) + s) / (sum(p_c) + sum(g_c) + s), summed over the batch's pixels
    and averaged over labels; cross-entropy -mean(sum_c g_c log p_c). `y_true` holds label
    numbers (N, h, w), `y_pred` softmax probabilities (N, h, w, labels)."""
    from keras import ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        truth = ops.one_hot(ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32"),
                            labels)
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        ce = -ops.mean(ops.sum(truth * ops.log(p), axis=-1))
        axes = (0, 1, 2)
        overlap = ops.sum(p[..., 1:] * truth[..., 1:], axis=axes)
        total = ops.sum(p[..., 1:], axis=axes) + ops.sum(truth[..., 1:], axis=axes)
        dice = (2.0 * overlap + smooth) / (total + smooth)
        return ce + (1.0 - ops.mean(dice))

    return loss


# -- prediction and evaluation ----------------------------------------------------------

def predict(model: Any, card: ModelCard, study: Study, indices: list[int],
            plane: str, batch: int = 16) -> np.ndarray:
    """(n, rows, cols) labels at the study's view resolution: the model's probabilities
    resized bilinear to each view's size, then the most probable label."""
    x = np.stack([card.prepare(study, frame=i, plane=plane).array for i in indices])
    probs = np.asarray(model.predict(x, batch_size=batch, verbose=0))
    # Laid back on each slice as the app does (core.segment.run.at_size).
    return np.stack([at_size(p, *study.view(i, plane).values.shape).argmax(axis=-1)
                     .astype(np.uint8) for i, p in zip(indices, probs, strict=True)])


def evaluate(model: Any, card: ModelCard, study: Study, labels: LabelMap,
             indices: list[int], plane: str) -> dict[str, Any]:
    """Dice, IoU and HD95 (mm) per foreground label over `indices` taken as one 3-D slab
    at the study's own resolution (predictions resized back, see `predict`)."""
    pred = predict(model, card, study, indices, plane)
    truth = np.stack([target(labels, i, plane, study.view(i, plane).values.shape)
                      for i in indices])
    spacing = to_canonical(study.pixels, study.affine)[1]  # (z, y, x) mm
    if plane != "axial":
        raise ValueError("held-out slabs are axial")
    out: dict[str, Any] = {"dice": {}, "iou": {}, "hd95_mm": {}}
    for number, name in enumerate(card.labels):
        if number == 0:
            continue
        p, t = pred == number, truth == number
        out["dice"][name] = _number(metrics.dice(p, t), 4)
        out["iou"][name] = _number(metrics.iou(p, t), 4)
        out["hd95_mm"][name] = _number(metrics.hd95(p, t, spacing), 2)
    return out


def _number(value: float, digits: int) -> float | None:
    """A figure for JSON: rounded; None where undefined (NaN) or infinite."""
    return round(float(value), digits) if np.isfinite(value) else None


def _mean_dice(model: Any, x: np.ndarray, y: np.ndarray, labels: int) -> float:
    """Mean foreground Dice at the input size: the validation score that picks the epoch."""
    pred = np.argmax(np.asarray(model.predict(x, verbose=0)), axis=-1)
    scores = [metrics.dice(pred == c, y == c) for c in range(1, labels)]
    return float(np.nanmean(scores))


# -- training ---------------------------------------------------------------------------

def train(recipe: Recipe, seed: int = 0, out: Path = CARDS_DIR,
          command: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `recipe` from scratch with `seed`, keep the epoch with the best validation
    Dice, write `<out>/<id>.keras` and `<out>/<id>.json` (the card with its sha256, split,
    seed, command and held-out figures). Returns the card's `evaluation` plus timings."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    out = Path(out)
    card_path = out / f"{recipe.model_id}.json"
    template_path = card_path if card_path.is_file() else CARDS_DIR / card_path.name
    template = json.loads(template_path.read_text(encoding="utf-8"))
    card = model_card(recipe, template)
    study, labels = recipe.data()
    recipe.check(study.count(recipe.plane))
    n_labels = len(card.labels)

    x_train, y_train = slices(card, study, labels, recipe.indices("train"), recipe.plane)
    x_val, y_val = slices(card, study, labels, recipe.indices("validation"), recipe.plane)

    shape = (recipe.size, recipe.size, 1)
    model = unet(shape, n_labels, filters=recipe.filters, depth=recipe.depth,
                 name=recipe.model_id.replace("-", "_"))
    # Few steps per epoch: Keras' default BatchNormalization momentum (0.99) would leave
    # the moving statistics near their initial values for most of training, and the
    # inference-mode predictions (validation, the shipped model) far from training's.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  loss=dice_ce_loss(n_labels))
    start = time.perf_counter()
    best, best_weights, losses = -1.0, model.get_weights(), []
    for epoch in range(recipe.epochs):
        xa, ya = augment(x_train, y_train, rng, recipe.flip)
        history = model.fit(xa, ya, batch_size=recipe.batch, epochs=1, shuffle=True, verbose=0)
        losses.append(float(history.history["loss"][-1]))
        score = _mean_dice(model, x_val, y_val, n_labels)
        if score > best:
            best, best_weights = score, model.get_weights()
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {losses[-1]:.4f}, validation Dice "
            f"{score:.4f} ({time.perf_counter() - start:.0f} s)")
    seconds = time.perf_counter() - start

    # Shipped uncompiled: the file loads with plain keras.models.load_model, no custom loss.
    final = unet(shape, n_labels, filters=recipe.filters, depth=recipe.depth,
                 name=recipe.model_id.replace("-", "_"))
    final.set_weights(best_weights)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{recipe.model_id}.keras"
    final.save(weights)

    held_out = evaluate(final, card, study, labels, recipe.indices("test"), recipe.plane)
    command = command or (f"python -m core.segment.train {recipe.model_id} --seed {seed} "
                          f"--epochs {recipe.epochs}")
    template["input_shape"] = list(shape)
    template["source"] = dict(template["source"], sha256=sha256(weights),
                              split=recipe.describe(), seed=seed, command=command,
                              training=(f"{recipe.epochs} epochs of {len(x_train)} augmented "
                                        f"slices, batch {recipe.batch}, Adam "
                                        f"{recipe.learning_rate:g}, epoch kept by validation "
                                        f"Dice ({best:.4f}); {seconds:.0f} s on a 2-core CPU"))
    template["evaluation"] = {
        "held_out": held_out,
        "slices": recipe.indices("test"),
        "plane": recipe.plane,
        "how": ("the test slab as one 3-D volume at the study's own resolution (the "
                "probabilities resized bilinear back, then the most probable label); Dice "
                "and IoU per label, HD95 in mm with the voxel spacing (core.segment.metrics)"),
        "command": command,
    }
    card_path.write_text(json.dumps(template, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    return {"evaluation": template["evaluation"], "seconds": round(seconds, 1),
            "losses": losses, "validation_dice": best, "weights": str(weights),
            "card": str(card_path)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.segment.train",
                                     description="Re-train a built-in segmentation model.")
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=CARDS_DIR)
    args = parser.parse_args(argv)
    recipe = RECIPES[args.model]
    if args.epochs is not None:
        if args.epochs < 1:
            print("--epochs: at least 1", file=sys.stderr)
            return 2
        recipe = replace(recipe, epochs=args.epochs)
    command = " ".join(["python -m core.segment.train", *(argv if argv is not None
                                                         else sys.argv[1:])])
    try:
        result = train(recipe, args.seed, args.out, command,
                       log=lambda line: print(line, file=sys.stderr))
    except (ModelError, StudyError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("evaluation", "seconds", "validation_dice",
                                              "weights", "card")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
