"""Is this input in the model's domain? A check computed from the model itself.

- Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
  ICML 2022, https://arxiv.org/abs/2204.06507: the distance of the L2-normalised
  penultimate features to their k-th nearest neighbour among in-domain samples. The
  features are the globally pooled backbone output where the model has one (what the
  paper's ResNets feed their one Dense layer), else the final Dense layer's input.
- Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020,
  https://arxiv.org/abs/2010.03759: the free energy of the logits.

The in-domain samples are the model's own labelled samples (core/models/samples.py);
their normalised features, and each score's leave-one-out (LOO) distribution, are stored
in assets/domain/<model-id>.json with the model file's sha256, written by
`bench/domain_check.py --write` (tests/slow/test_domain.py recomputes them). So a first
prediction costs one more forward pass to the penultimate layer, never a pass over the
samples.

Combined score: each score standardised by the mean and standard deviation of its
in-domain LOO distribution (each sample scored against the others), then the larger:
s(x) = max((r_k(x) - mu_r) / sd_r, (E(x) - mu_E) / sd_E). Higher is further outside.
The max, not the sum: a classifier is often confident (low energy) far outside its
domain (a brain MRI read as PNEUMONIA 99.4%), and in a sum that confidence cancelled
the kNN distance; energy may only add a flag (AUROCs in bench/domain_check.py, on the
final Dense's input: sum 0.886-0.976, max 0.919-1.000, energy alone 0.466-0.899; on
the pooled features now used: max 0.974-1.000). k = 1: with 16-17 samples of 2-4
classes, larger k reaches into other classes (AUROC fell with k = 2, 3, 5 on the final
Dense's input; on the pooled features k = 1-3 measured within 0.006 of each other).
Threshold: the largest in-domain LOO combined score, so no built-in sample is flagged
when scored against the others: with 16-17 samples a quantile below the largest would
flag in-domain images by design, at a rate these few samples cannot measure.

A model without labelled samples (skinlesion-xception, every uploaded model) cannot be
checked: `in_domain` is None with the reason, never a silent pass.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from core.models.cards import ModelCard
from core.models.inputs import ModelInput
from core.studies import Study

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "assets" / "domain"
K = 1  # the k of the k-th nearest neighbour: 16-17 samples per model (see calibrate)
METHOD = "kNN distance (k=1) and energy, LOO-standardised, max"
METHOD_WORDS = ("k-th nearest-neighbour distance of normalised penultimate features "
                "(Sun et al. 2022) and energy of the logits (Liu et al. 2020), each "
                "standardised on the model's own samples (leave-one-out), the larger")


# -- the scores: pure numpy --------------------------------------------------------------

def normalise(features: np.ndarray) -> np.ndarray:
    """z = f / ||f||_2, row-wise (Sun et al. 2022, Sec. 3: the normalised embedding)."""
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def knn_distance(query: np.ndarray, bank: np.ndarray, k: int = K) -> np.ndarray:
    """r_k(z*) = ||z* - z_(k)||_2, the distance of each normalised query to its k-th
    nearest neighbour in the normalised bank (Sun et al. 2022, Sec. 3.1; the paper's
    score is -r_k, in domain when -r_k >= lambda: here r_k, higher is further out)."""
    if not 1 <= k <= len(bank):
        raise ValueError(f"k={k} needs 1 to {len(bank)} samples")
    d = np.linalg.norm(query[:, None, :] - bank[None, :, :], axis=2)
    return np.sort(d, axis=1)[:, k - 1]


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The free energy E(x; f) = -T log sum_i exp(f_i(x) / T) of the logits (Liu et al.
    2020, Sec. 2; T = 1 as there): in-domain inputs have lower energy."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1)
    return -temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def loo_knn(bank: np.ndarray, k: int = K) -> np.ndarray:
    """Each bank row's r_k against the other rows (leave-one-out)."""
    return np.array([knn_distance(bank[i:i + 1], np.delete(bank, i, axis=0), k)[0]
                     for i in range(len(bank))])


@dataclass(frozen=True)
class Calibration:
    """What the check compares an input with: the normalised features of the model's
    samples, each score's in-domain LOO mean and sd, and the threshold."""

    model: str
    sha256: str
    runtime: str  # the runtime the features are computed on (the VGG16: its Keras port)
    bank: np.ndarray  # (N, D) normalised penultimate features of the samples
    knn: tuple[float, float]  # mean, sd of the LOO r_k
    energy: tuple[float, float]  # mean, sd of the samples' energies
    threshold: float
    k: int = K
    samples: tuple[str, ...] = ()
    logits: str = "the final Dense layer's pre-activation"

    def score(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The combined score s(x) of each row (see the module's docstring)."""
        r = knn_distance(normalise(features), self.bank, self.k)
        return combine(r, energy(logits), self.knn, self.energy)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "sha256": self.sha256, "runtime": self.runtime,
                "method": METHOD, "k": self.k, "threshold": self.threshold,
                "knn": list(self.knn), "energy": list(self.energy), "logits": self.logits,
                "samples": list(self.samples),
                "bank": [[round(float(v), 7) for v in row] for row in self.bank]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibration:
        return cls(model=raw["model"], sha256=raw["sha256"], runtime=raw["runtime"],
                   bank=np.asarray(raw["bank"], dtype=np.float64), k=int(raw["k"]),
                   knn=tuple(raw["knn"]), energy=tuple(raw["energy"]),
                   threshold=float(raw["threshold"]), samples=tuple(raw["samples"]),
                   logits=raw.get("logits", ""))


def _standard(values: np.ndarray) -> tuple[float, float]:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), max(sd, 1e-6)


def combine(r: np.ndarray, e: np.ndarray, knn: tuple[float, float],
            en: tuple[float, float]) -> np.ndarray:
    """s = max((r_k - mu_r) / sd_r, (E - mu_E) / sd_E): the larger standardised score,
    so either one far outside its in-domain spread flags, and neither cancels the other."""
    return np.maximum((np.asarray(r) - knn[0]) / knn[1], (np.asarray(e) - en[0]) / en[1])


def calibrate(model: str, sha: str, runtime: str, features: np.ndarray, logits: np.ndarray,
              names: tuple[str, ...] = (), k: int = K) -> Calibration:
    """A calibration from the samples' penultimate features and logits: each scored
    against the others (LOO), both scores standardised on that LOO distribution, the
    threshold the largest LOO combined score."""
    bank = normalise(features)
    r = loo_knn(bank, k)
    e = energy(logits)
    knn, en = _standard(r), _standard(e)
    threshold = float(np.max(combine(r, e, knn, en)))
    return Calibration(model=model, sha256=sha, runtime=runtime, bank=bank, knn=knn,
                       energy=en, threshold=threshold, k=k, samples=tuple(names))


# -- the model's penultimate features ------------------------------------------------------

def final_dense(model):
    """The layer that makes the logits: the model's final layer, or, when that is a
    separate Softmax/Activation layer, the layer before it. Found from the Keras graph."""
    from core.models.runtime.keras_private import final_operation, graph, producer

    layer = final_operation(graph(model))
    if layer is not None and type(layer).__name__ in ("Softmax", "Activation"):
        layer = producer(layer.input)
    if layer is None or type(layer).__name__ != "Dense":
        raise ValueError(f"{model.name}: its final layer is not a Dense layer")
    return layer


# Where the model pools its backbone's maps into one vector: Sun et al.'s "penultimate
# layer" of a ResNet is exactly this vector. Measured (bench/domain_check.py): on
# braintumor-xception the pooled 2048 values separate other modalities far better than
# its 128-value hidden Dense (kNN AUROC 0.983 against 0.925; flags 97% against 44%).
POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")


def pooled(model):
    """The last top-level global-pooling layer, or None (a Flatten head: the VGG16)."""
    found = [layer for layer in model.layers if type(layer).__name__ in POOLING]
    return found[-1] if found else None


def feature_tensor(model):
    """The tensor whose values the kNN compares: the pooled backbone output where the
    model has one, else the final Dense layer's input."""
    layer = pooled(model)
    return layer.output if layer is not None else final_dense(model).input


def feature_function(model):
    """fn(*inputs) -> (features, the final Dense layer's input), built and compiled once
    per model (kept on the model, like its forward pass)."""
    from core.models.runtime.keras import as_arguments, compiled, signature
    from core.models.runtime.keras_private import graph

    def build():
        import keras
        import tensorflow as tf

        g = graph(model)
        # One input as one tensor, not a list of one: what as_arguments passes.
        inputs = g.inputs if len(g.inputs) > 1 else g.inputs[0]
        both = keras.Model(inputs, [feature_tensor(model), final_dense(model).input])

        @tf.function(input_signature=signature(model))
        def forward(*x):
            return both(as_arguments(x), training=False)

        return forward

    return compiled(model, "domain-features", build)


def features_and_logits(model, batch: np.ndarray | list[np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(features, logits) for a batch: the logits are the final Dense's pre-activation
    h W + b of its input h, so a softmax head (the VGG16 port) gives logits too."""
    arrays = batch if isinstance(batch, list | tuple) else [batch]
    features, head = feature_function(model)(*[np.asarray(a, dtype=np.float32)
                                                for a in arrays])
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in final_dense(model).get_weights())
    h = np.asarray(head, dtype=np.float64)
    return np.asarray(features, dtype=np.float64), h @ kernel + bias


# -- the check ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainCheck:
    """The answer: in_domain True/False, or None (cannot be checked) with the reason."""

    in_domain: bool | None
    score: float | None
    threshold: float | None
    method: str
    reason: str | None = None
    population: str = "not stated"
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"in_domain": self.in_domain, "score": self.score,
                               "threshold": self.threshold, "method": self.method}
        if self.reason:
            out["reason"] = self.reason
        return out

    def sentence(self) -> str:
        """One line for a caption or a terminal."""
        if self.in_domain is None:
            return f"Domain not checked: {self.reason}"
        where = "inside" if self.in_domain else "OUTSIDE"
        return (f"{where} the domain of its {self.samples} labelled samples "
                f"(score {self.score:.2f}, threshold {self.threshold:.2f}, {self.method}); "
                f"trained on: {self.population}")


def population(card: ModelCard) -> str:
    """Who the model was trained on, as its card states it."""
    return str(card.domain.get("population", "not stated"))


@cache
def _stored(model_id: str) -> Calibration | None:
    path = DOMAIN_DIR / f"{model_id}.json"
    if not path.is_file():
        return None
    return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))


def calibration(card: ModelCard) -> Calibration | str:
    """The stored calibration for a built-in model, or why there is none."""
    if not card.builtin:
        if card.origin == "trained in MedLens":
            return ("no calibration is made for a model trained in this session (its "
                    "card's held-out figures say how it does on its own kind of image)")
        return "an uploaded model has no labelled samples to compare with"
    if not card.samples:
        return f"no labelled samples ship with {card.id} to compare with"
    found = _stored(card.id)
    if found is None:
        return f"no calibration for {card.id} (run bench/domain_check.py --write)"
    if found.sha256 != card.source.get("sha256"):
        return f"the calibration of {card.id} is for another model file"
    return found


def unchecked(card: ModelCard, reason: str) -> DomainCheck:
    return DomainCheck(None, None, None, METHOD, reason=reason, population=population(card))


def check(classifier: Any, model_input: ModelInput) -> DomainCheck:
    """Whether `model_input` is within the domain of `classifier`'s own samples. Kept
    per model and input: a page asks again on every rerun (each widget it has)."""
    found = calibration(classifier.card)
    if isinstance(found, str):
        return unchecked(classifier.card, found)
    key = (getattr(classifier, "fingerprint", id(classifier)), model_input.fingerprint)
    with _checked_lock:
        if key in _checked:
            _checked.move_to_end(key)
            return _checked[key]
    result = check_batch(classifier, model_input.batch)[0]
    with _checked_lock:
        _checked[key] = result
        while len(_checked) > KEPT_CHECKS:
            _checked.popitem(last=False)
    return result


# The answers kept (a few hundred bytes each): a class's worth of recent images.
KEPT_CHECKS = 512
_checked: OrderedDict[tuple, DomainCheck] = OrderedDict()
_checked_lock = threading.Lock()


def check_batch(classifier: Any, batch: np.ndarray | list[np.ndarray]) -> list[DomainCheck]:
    """The check of every image of a prepared batch (an evaluation's), in one pass."""
    card = classifier.card
    found = calibration(card)
    arrays = batch if isinstance(batch, list | tuple) else [batch]
    if isinstance(found, str):
        return [unchecked(card, found)] * len(arrays[0])
    keras_model = classifier.keras_model
    if keras_model is None or classifier.runtime != found.runtime:
        from core.models.loading import load

        keras_model = load(card.id, found.runtime).keras_model
    features, logits = features_and_logits(keras_model, batch)
    return [DomainCheck(in_domain=bool(score <= found.threshold), score=round(float(score), 4),
                        threshold=round(found.threshold, 4), method=METHOD,
                        population=population(card), samples=len(found.samples))
            for score in found.score(features, logits)]


def warning(card: ModelCard, study: Study, result: DomainCheck | None) -> str | None:
    """The one warning beside a prediction: the feature check, then the DICOM modality
    check (the card's `outside_domain`), whichever say so; None where neither does."""
    lines = []
    if result is not None and result.in_domain is False:
        lines.append(f"{study.name} looks unlike the images {card.id} was trained on: its "
                     f"domain score {result.score:.2f} is above the threshold "
                     f"{result.threshold:.2f} set on its {result.samples} labelled samples "
                     f"({result.population}); its output here is outside what it learnt.")
    modality = card.outside_domain(study)
    if modality:
        lines.append(modality)
    return " ".join(lines) or None


# -- calibration from the samples (bench/domain_check.py --write, the slow test) ----------

def prepared(card: ModelCard, study: Study) -> ModelInput:
    """A study as this model's input exactly as a user's: its default image and window."""
    return card.prepare(study, frame=study.default_index(None))


def runtime_for(card: ModelCard) -> str:
    """The runtime whose Keras graph gives the features: the card's own, or the Keras
    port of an ONNX file."""
    return card.runtime if card.runtime == "keras" else "keras"


def calibrate_model(card: ModelCard, k: int = K) -> Calibration:
    """The calibration of a built-in model from its labelled samples (each read through
    open_study and prepared as a user's study is)."""
    from core.models.loading import load
    from core.models.samples import sample_batch

    batch, found = sample_batch(card)
    runtime = runtime_for(card)
    model = load(card.id, runtime).keras_model
    features, logits = features_and_logits(model, batch)
    return calibrate(card.id, card.source["sha256"], runtime, features, logits,
                     tuple(s.name for s in found), k)
