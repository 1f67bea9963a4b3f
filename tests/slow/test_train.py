"""Training in MedLens, end to end on real data: a small CNN trained on the built-in tissue
patches is explained with Grad-CAM, evaluated on its held-out images, saved with its card
and loaded again with identical predictions; the same config and seed give the same
curve; stop keeps the best checkpoint; the trainer queues runs beyond its slots; the
data-randomisation test runs its twin."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from core.evaluate import evaluate
from core.evaluate.sets import from_folder
from core.explain import explain_input
from core.jobs import TRAIN_RUNNERS, Executor, train_job
from core.models.samples import samples
from core.models.user import load_carded
from core.studies import open_study
from core.train.config import default_config
from core.train.fit import train
from core.train.live import Live, live
from core.train.sanity import data_randomisation
from core.train.store import save
from tests.cli import medlens

# Small enough for CI: the default task at 32x32, three epochs of a narrow CNN.
SMALL = {"epochs": 3, "options": {"filters": 8, "blocks": 2, "dense": 32}}


def small_config(**given):
    return default_config("cnn", **{**SMALL, **given})


@pytest.fixture(scope="module")
def trained():
    return train(small_config())


def test_a_small_cnn_learns_the_tissue_patches(trained):
    curves = trained.history
    assert set(curves) >= {"loss", "accuracy", "val_loss", "val_accuracy", "val_f1"}
    assert len(curves["loss"]) == trained.epochs_run == 3
    assert curves["loss"][-1] < curves["loss"][0]
    chance = 1 / len(trained.card.labels)
    # Measured: see the closing note; far above chance on images it never saw.
    assert trained.test["accuracy"] > chance + 0.2
    assert trained.card.origin == "trained in MedLens"
    assert "not for diagnosis" in trained.card.intended_use
    assert trained.card.source["seed"] == 0 and trained.card.source["split"]["test"]


def test_explain_evaluate_and_reload_the_trained_model(trained, tmp_path):
    classifier = trained.classifier
    found = samples(classifier.card)
    assert found and {s.label for s in found} <= set(classifier.card.labels)
    study = open_study(found[0].path, name=found[0].name)
    model_input = classifier.card.prepare(study)
    explanation = explain_input(classifier, model_input, "gradcam")
    assert explanation.map.shape == model_input.array.shape[:2]
    assert float(explanation.map.max()) > 0

    labelled = from_folder(found[0].path.parents[1])
    scored = evaluate(classifier, labelled)
    assert scored.to_dict()["accuracy"] is not None

    model, card = save(trained, tmp_path / "out")
    reloaded = load_carded(model, card)
    batch = np.stack([classifier.card.prepare(open_study(s.path, name=s.name)).array
                      for s in found[:8]])
    assert np.array_equal(reloaded.probabilities(batch), classifier.probabilities(batch))
    assert reloaded.card.id == trained.card.id


def test_a_reloaded_model_can_still_be_randomisation_tested(trained, tmp_path):
    from core.train.sanity import from_card

    reloaded = load_carded(*save(trained, tmp_path / "out"))
    again = from_card(reloaded)
    assert again is not None and again.config == trained.config
    assert np.array_equal(again.test_images, trained.test_images)
    assert np.array_equal(again.test_labels, trained.test_labels)
    from core import models

    assert from_card(models.load("braintumor-xception")) is None


def test_a_card_for_another_file_is_refused(trained, tmp_path):
    model, card = save(trained, tmp_path / "out")
    raw = json.loads(card.read_text())
    raw["source"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="card is for another file"):
        load_carded(model, raw)
    with pytest.raises(ValueError, match="not a MedLens model card"):
        load_carded(model, b"{not json")


def test_the_same_seed_gives_the_same_curve(trained):
    again = train(small_config())
    for key, values in trained.history.items():
        # Op determinism on, one run at a time: measured identical on this CPU.
        assert np.allclose(values, again.history[key], atol=1e-5), key


def test_stop_keeps_the_best_checkpoint_so_far():
    record = Live()
    config = small_config(epochs=20)
    reports = []

    def progress(done, text):
        reports.append(done)
        if len(record.epochs) >= 2:
            record.stop()

    stopped = train(config, progress=progress, live=record)
    assert stopped.stopped and stopped.epochs_run < 20
    assert stopped.best_epoch is not None and stopped.best_epoch <= stopped.epochs_run
    assert record.snapshot()["phase"] == "stopped"
    assert reports == sorted(reports)


def test_the_trainer_queues_runs_beyond_its_slots():
    slots = Executor(TRAIN_RUNNERS, workers=1)
    first = slots.submit(train_job(small_config(epochs=1), owner="a", run="1"))
    second = slots.submit(train_job(small_config(epochs=1), owner="b", run="1"))
    assert first.key != second.key  # the same config by two students is two runs
    assert slots.position(second) == 1
    first.outcome(timeout=600)
    second.outcome(timeout=600)
    assert live(second.key).snapshot()["phase"] == "done"
    slots.shutdown()


def test_data_randomisation_compares_the_twin(trained):
    tested = data_randomisation(trained, "gradcam", images=4)
    assert tested.twin_id != trained.card.id
    assert tested.trained_maps.shape == tested.twin_maps.shape
    assert len(tested.spearman) == 4
    assert tested.verdict in ("pass", "fail", "inconclusive")
    out = tested.to_dict()
    assert out["twin_test"]["accuracy"] is not None


def test_cli_train_writes_the_model_and_its_card(tmp_path):
    run = medlens("train", "--arch", "cnn", "--epochs", "1", "--option",
                  "filters=4,blocks=2,dense=16", "--out", str(tmp_path / "m"), "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert {"arch", "params", "epochs_run", "history", "test", "seconds"} <= set(out)
    assert out["epochs_run"] == 1 and out["arch"] == "cnn"
    assert (tmp_path / "m" / "model.keras").is_file()
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["source"]["command"].startswith("medlens train --arch cnn")
    picture = tmp_path / "patch.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8)).save(picture)
    # --model-file reads the card beside the file: no --labels.
    predicted = medlens("predict", "--model-file", str(tmp_path / "m" / "model.keras"),
                        str(picture), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert set(json.loads(predicted.stdout)[0]["probabilities"]) == set(card["labels"])


@pytest.mark.parametrize("args, words", [
    (["--arch", "nope", "--out", "x"], "nope"),
    (["--arch", "cnn", "--out", "x", "--epochs", "0"], "epochs"),
    (["--arch", "cnn", "--out", "x", "--option", "filters"], "KEY=VALUE"),
    (["--arch", "cnn", "--out", "x", "--option", "depth=3"], "depth"),
    (["--arch", "cnn", "--out", "x", "--data", "builtin:nope"], "nope"),
    (["--arch", "cnn", "--out", "x", "--data", "/no/such/set"], "no such"),
    (["--arch", "cnn", "--out", "x", "--image-size", "32"], "image-size"),
    (["--arch", "cnn"], "--out"),
])
def test_cli_train_bad_input_is_one_line(args, words, tmp_path):
    run = medlens("train", *[a.replace("x", str(tmp_path / "x")) if a == "x" else a
                             for a in args])
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr


def test_cli_train_list():
    run = medlens("train", "--list", "--json")
    assert run.returncode == 0
    listed = json.loads(run.stdout)
    assert {a["name"] for a in listed["architectures"]} == {
        "cnn", "transfer", "unet", "vit", "recurrent", "cnn3d", "dcgan"}
    assert any(t["name"] == "builtin:tumour-samples" for t in listed["tasks"])


def test_two_runs_at_once_give_the_same_curve():
    """Two slots on a class server: the seed still fixes each run (its weights are drawn
    under one lock, its batches by its own generator), whatever runs beside it."""
    results = {}

    def run(name):
        results[name] = train(small_config(epochs=1))

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, values in results["a"].history.items():
        assert np.allclose(values, results["b"].history[key], atol=1e-5), key


# Every architecture from the CLI, one epoch on a small built-in task (the transfer model
# on the 17 tumour samples: its Xception backbone is slow on this CPU).
EVERY = {
    "cnn": ["--data", "builtin:tumour-samples", "--image-size", "32x32"],
    "transfer": ["--data", "builtin:tumour-samples", "--image-size", "72x72"],
    "unet": ["--option", "filters=4,depth=2"],
    "vit": ["--data", "builtin:tumour-samples", "--option", "depth=1,dim=16,patch=8"],
    "recurrent": ["--option", "units=8,filters=4,blocks=2"],
    "cnn3d": ["--option", "filters=4,blocks=2"],
    "dcgan": ["--option", "filters=8,latent=16"],
}


@pytest.mark.parametrize("arch", list(EVERY))
def test_every_architecture_trains_from_the_cli(arch, tmp_path):
    run = medlens("train", "--arch", arch, "--epochs", "1", *EVERY[arch],
                  "--out", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["arch"] == arch and out["epochs_run"] == 1 and out["params"] > 0
    assert all(len(v) == 1 and np.isfinite(v[0]) for v in out["history"].values())
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["intended_use"].startswith("Trained in MedLens for teaching")
    assert card["source"]["sha256"] and card["source"]["config"]["arch"] == arch
