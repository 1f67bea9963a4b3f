"""The kinds of long work, each a job builder (what the spec holds) and a runner (what
the worker does): explain, faithfulness, sanity, compare, evaluate, trust, predict,
segment and maximise.

A builder takes what a page or the CLI has in hand (a loaded classifier, a prepared
model input, a study, a labelled set) and returns a `Job`; its spec names everything the
result depends on, and nothing it does not (a colormap, an opacity, which other methods
are shown), so a widget that changes only the picture never restarts the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from core.compare import compare
from core.evaluate import LabelledSet, evaluate, evaluate_models
from core.evaluate.trust import trust as trust_over_set
from core.explain import explain_input
from core.explain import metrics as trust
from core.inside.features import layer_stats, separation
from core.inside.maximise import ChannelUnit, ClassUnit, input_range, maximise
from core.jobs.spec import Job
from core.models import Classifier, ModelCard
from core.models.inputs import ModelInput
from core.models.samples import all_samples, sample_batch, samples
from core.progress import Progress, report
from core.segment.explain import explain_region
from core.segment.metrics import score
from core.segment.run import segment
from core.studies import Study
from core.train.config import TrainingConfig
from core.train.data import TrainingData
from core.train.fit import Trained, train
from core.train.live import live
from core.train.sanity import data_randomisation

# -- explain ------------------------------------------------------------------------------


def explain_job(classifier: Classifier, model_input: ModelInput, method: str,
                target: str | None = None, layer: str | None = None,
                options: dict[str, Any] | None = None) -> Job:
    """One map of `method` for one model input (an `Explanation`)."""
    params = {"model": classifier.card.id, "method": method, "target": target,
              "layer": layer, "options": dict(sorted((options or {}).items()))}
    return Job.make("explain", params, model=classifier, input=model_input)


def _explain(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return explain_input(job.inputs["model"], job.inputs["input"], p["method"], p["target"],
                         p["layer"], progress=progress, **p["options"])


def faithfulness_job(classifier: Classifier, model_input: ModelInput, explained: Job,
                     explanation: Any, baseline: float,
                     settings: dict[str, Any] | None = None) -> Job:
    """ROAD, deletion and insertion of the map that `explained` made (its key is in the
    spec: another map is another job), against random maps at the method's resolution
    (the CAM layer's grid, RISE's cells, occlusion's patch positions, else smooth noise)."""
    shape = tuple(explanation.input_map.shape[-2:])
    grid = trust.layer_grid(classifier.keras_model, explanation.layer)
    at = trust.resolution(explanation.method, grid, explanation.info.get("options"), shape)
    params = {"model": classifier.card.id, "map": explained.key, "target": explanation.target,
              "baseline": baseline, "resolution": at,
              "settings": dict(sorted((settings or {}).items()))}
    return Job.make("faithfulness", params, model=classifier, input=model_input,
                    map=explanation.input_map)


def _faithfulness(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return trust.faithfulness(job.inputs["model"], job.inputs["input"].inputs,
                              job.inputs["map"], target=p["target"], baseline=p["baseline"],
                              resolution=p["resolution"], progress=progress, **p["settings"])


def sanity_job(classifier: Classifier, model_input: ModelInput, method: str, target: int,
               layer: str | None, max_steps: int | None,
               options: dict[str, Any] | None = None) -> Job:
    """The cascading-randomisation check of `method` for one input."""
    params = {"model": classifier.card.id, "method": method, "target": target, "layer": layer,
              "max_steps": max_steps, "options": dict(sorted((options or {}).items()))}
    return Job.make("sanity", params, model=classifier, input=model_input)


def _sanity(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    classifier = job.inputs["model"]
    return trust.sanity_check(classifier.keras_model or classifier, job.inputs["input"].batch,
                              p["method"], target=p["target"], layer=p["layer"],
                              progress=progress, max_steps=p["max_steps"], **p["options"])


def maximise_job(classifier: Classifier, unit: ClassUnit | ChannelUnit, steps: int,
                 seed: int = 0, samples: Any = None,
                 fixed: Sequence[Any] | None = None, grey: bool = False) -> Job:
    """Activation maximisation of one unit (a `core.inside.maximise.Maximised`): a class
    score or a channel, from a seeded random image in the model's input range, measured
    against `samples` (N, h, w, c) in the model's input scale (the built-in samples);
    `grey`: one channel repeated to an RGB model's three, as grey studies are given."""
    kind = "class" if isinstance(unit, ClassUnit) else "channel"
    params = {"model": classifier.card.id, "unit": kind, **asdict(unit), "steps": int(steps),
              "seed": int(seed), "range": list(input_range(classifier.card.input_spec.scale)),
              "grey": bool(grey)}
    return Job.make("maximise", params, model=classifier, samples=samples,
                    fixed=None if fixed is None else list(fixed))


def _maximise(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    unit = (ClassUnit(p["index"], p["label"]) if p["unit"] == "class"
            else ChannelUnit(p["layer"], p["channel"]))
    return maximise(job.inputs["model"].keras_model, unit, steps=p["steps"], seed=p["seed"],
                    progress=progress, samples=job.inputs["samples"],
                    value_range=tuple(p["range"]), fixed=job.inputs["fixed"],
                    grey=p["grey"])


# -- several models, several images -----------------------------------------------------------


def compare_job(classifiers: Sequence[Classifier], study: Study, method: str,
                target: str | None = None, frame: int | None = None, plane: str | None = None,
                metadata: dict[str, Any] | None = None,
                options: dict[str, Any] | None = None) -> Job:
    """2 to 4 models on one study image, side by side (a `core.compare.Comparison`)."""
    params = {"models": [c.card.id for c in classifiers], "method": method, "target": target,
              "frame": frame, "plane": plane, "metadata": metadata,
              "options": dict(sorted((options or {}).items()))}
    return Job.make("compare", params, models=list(classifiers), study=study)


def _compare(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return compare(job.inputs["models"], job.inputs["study"], p["method"], p["target"],
                   p["frame"], p["plane"], p["metadata"], progress=progress, **p["options"])


def evaluate_job(classifiers: Sequence[Classifier], labelled: LabelledSet,
                 metadata: dict[str, dict[str, Any] | None] | None = None,
                 only_known_labels: bool = False) -> Job:
    """One model on a labelled set (an `Evaluation`), or several (a `Scoreboard`)."""
    params = {"models": [c.card.id for c in classifiers], "metadata": metadata,
              "only_known_labels": only_known_labels}
    return Job.make("evaluate", params, models=list(classifiers), set=labelled)


def _evaluate(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    models, labelled = job.inputs["models"], job.inputs["set"]
    if len(models) == 1:
        meta = (p["metadata"] or {}).get(models[0].card.id)
        return evaluate(models[0], labelled, progress, meta, p["only_known_labels"])
    return evaluate_models(models, labelled, progress, p["metadata"], p["only_known_labels"])


def trust_job(classifier: Classifier, labelled: LabelledSet, methods: Sequence[str],
              seeds: int, percentiles: Sequence[int], limit: int | None = None) -> Job:
    """ROAD of each method's maps over a labelled set (a `core.evaluate.trust.Trust`):
    which method to believe for this model."""
    params = {"model": classifier.card.id, "methods": list(methods), "seeds": int(seeds),
              "percentiles": [int(p) for p in percentiles], "limit": limit}
    return Job.make("trust", params, model=classifier, set=labelled)


def _trust(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return trust_over_set(job.inputs["model"], job.inputs["set"], p["methods"], progress,
                          p["seeds"], p["percentiles"], p["limit"])


def predict_job(classifier: Classifier, model_inputs: Sequence[ModelInput],
                names: Sequence[str]) -> Job:
    """A batch of prepared inputs through one model: a `Prediction` per input."""
    return Job.make("predict", {"model": classifier.card.id, "names": list(names)},
                    model=classifier, inputs=list(model_inputs))


def _predict(job: Job, progress: Progress) -> Any:
    classifier, inputs = job.inputs["model"], job.inputs["inputs"]
    out = []
    for i, model_input in enumerate(inputs, start=1):
        out.append(classifier.predict(model_input))
        report(progress, i / len(inputs), f"{classifier.card.id}: {i} of {len(inputs)}")
    return out


# -- segment ------------------------------------------------------------------------------


def segment_job(segmenter: Classifier, study: Study, plane: str | None = None,
                indices: Sequence[int] | None = None) -> Job:
    """A study's mask by a segmentation model (a `Segmentation`): every slice in `plane`
    (the model's own by default) or only `indices`. Keyed by the model and the study's
    content, so a mask is computed once per volume and scrolling reuses it."""
    params = {"model": segmenter.card.id, "plane": plane,
              "indices": None if indices is None else [int(i) for i in indices]}
    return Job.make("segment", params, model=segmenter, study=study)


def _segment(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return segment(job.inputs["model"], job.inputs["study"], plane=p["plane"],
                   indices=p["indices"], progress=progress)


def score_job(segmented: Job, prediction: Any, truth: Any) -> Job:
    """A model's mask (the result of `segmented`) against a ground truth: Dice, IoU, HD95
    and the per-slice Dice in every plane (`Scores`), computed once per pair."""
    params = {"mask": segmented.key, "truth": truth.fingerprint}
    return Job.make("score", params, prediction=prediction, truth=truth)


def _score(job: Job, progress: Progress) -> Any:
    return score(job.inputs["prediction"], job.inputs["truth"])


def explain_region_job(segmenter: Classifier, model_input: ModelInput, method: str, label: int,
                       region: str = "predicted", box: Sequence[int] | None = None,
                       layer: str | None = None,
                       options: dict[str, Any] | None = None) -> Job:
    """One slice's map of `method` for a segmentation's `label` over `region` (a
    `RegionExplanation`: Seg-Grad-CAM for the CAM methods)."""
    params = {"model": segmenter.card.id, "method": method, "label": int(label),
              "region": region, "box": None if box is None else [int(v) for v in box],
              "layer": layer, "options": dict(sorted((options or {}).items()))}
    return Job.make("explain-region", params, model=segmenter, input=model_input)


def _explain_region(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return explain_region(job.inputs["model"], job.inputs["input"], p["method"], p["label"],
                          p["region"], p["box"], p["layer"], progress=progress, **p["options"])


# -- training (on the trainer: its own bounded slots, see core.jobs.trainer) --------------


def train_job(config: TrainingConfig, data: TrainingData | None = None,
              owner: str = "", run: str = "") -> Job:
    """One training run of `config` (on `data`, else its built-in task): a `Trained`.
    `owner` (a session) and `run` (a click) keep each student's runs their own: the same
    config asked by two students is two runs, each in the queue with its own place."""
    params = {"config": config.to_dict(), "owner": owner, "run": run}
    return Job.make("train", params, **({"data": data} if data is not None else {}))


def _train(job: Job, progress: Progress) -> Any:
    config = TrainingConfig.from_dict(job.spec.params["config"])
    return train(config, job.inputs.get("data"), progress=progress, live=live(job.key))


def data_randomisation_job(trained: Trained, method: str, data: TrainingData | None = None,
                           layer: str | None = None,
                           options: dict[str, Any] | None = None) -> Job:
    """The data-randomisation test of `method` on a model trained in MedLens: its
    shuffled-label twin is trained (a training run: it queues on the trainer), then the
    two models' maps of the held-out images are compared."""
    params = {"model": trained.card.id, "method": method, "layer": layer,
              "options": dict(sorted((options or {}).items()))}
    return Job.make("data-randomisation", params, trained=trained,
                    **({"data": data} if data is not None else {}))


def _data_randomisation(job: Job, progress: Progress) -> Any:
    p = job.spec.params
    return data_randomisation(job.inputs["trained"], p["method"], data=job.inputs.get("data"),
                              layer=p["layer"], progress=progress, **p["options"])


# -- inside ----------------------------------------------------------------------------------


def inside_stats_job(owner: Any, card: ModelCard, layers: Sequence[str]) -> Job:
    """Mean, sparsity and dead channels of `layers` over the model's labelled samples (the
    other models' where it has none), and, with its own samples, how well each layer's
    pooled features separate the classes: (list[LayerStats], separation rows or [])."""
    params = {"model": card.id, "layers": list(layers)}
    return Job.make("inside-stats", params, model=owner)


def _inside_stats(job: Job, progress: Progress) -> Any:
    owner, p = job.inputs["model"], job.spec.params
    model = getattr(owner, "keras_model", None) or owner.model
    card = owner.card
    own = samples(card)
    report(progress, 0.0, "reading the samples")
    batch, found = sample_batch(card, own or all_samples())
    stats = layer_stats(model, batch, p["layers"] or None, progress=progress)
    if not own:
        return stats, []
    return stats, separation(model, batch, np.array([s.label for s in found]),
                             p["layers"] or None, with_input=True)


TRAIN_RUNNERS: dict[str, Callable[[Job, Progress], Any]] = {
    "train": _train, "data-randomisation": _data_randomisation}

RUNNERS: dict[str, Callable[[Job, Progress], Any]] = {
    "explain": _explain, "faithfulness": _faithfulness, "sanity": _sanity,
    "compare": _compare, "evaluate": _evaluate, "trust": _trust, "predict": _predict,
    "segment": _segment, "score": _score, "explain-region": _explain_region,
    "inside-stats": _inside_stats, "maximise": _maximise,
}
