"""`medlens explain --method attention-rollout|attention-gradient` on a ViT trained in
MedLens and saved with its card (as `medlens train --out` and the Train page write it),
and the one-line refusal (exit 2) for the built-in Xception, which has no attention."""

from __future__ import annotations

import json

import pytest

from core.models.samples import samples
from core.train.config import default_config
from core.train.fit import train
from core.train.store import save
from tests.cli import medlens

METHODS = ("attention-rollout", "attention-gradient")


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    """A small ViT trained for one epoch on the built-in tissue patches, with its card."""
    trained = train(default_config("vit", epochs=1, options={"dim": 16, "depth": 1,
                                                             "heads": 2, "mlp": 32}))
    model, _ = save(trained, tmp_path_factory.mktemp("vit"))
    return model, samples(trained.card)[0].path


@pytest.mark.parametrize("method", METHODS)
def test_a_carded_vit_is_explained_by_its_attention(carded, method, tmp_path):
    model, picture = carded
    run = medlens("explain", "--model-file", model, "--method", method, picture,
                  "--out", tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["method"] == method and payload["layer"] is None
    assert payload["blocks"] == 1 and payload["heads"] == 2
    assert (tmp_path / f"{picture.stem}.{method}.npy").is_file()


@pytest.mark.parametrize("method", METHODS)
def test_the_builtin_xception_is_refused_in_one_line(method, tmp_path):
    picture = samples(default_card())[0].path
    run = medlens("explain", "--model", "braintumor-xception", "--method", method, picture,
                  "--out", tmp_path / "out")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == ("medlens: model 'braintumor-xception' has no attention layers: "
                          "attention methods need a ViT (MultiHeadAttention), such as one "
                          "trained on the Train page\n")
    assert not (tmp_path / "out").exists()


def default_card():
    from core.models import card

    return card("braintumor-xception")
