"""The Train page through AppTest: what will be trained (the architecture in words, its
parameters, the split per class, a batch as the model sees it), a run to its end (curves,
held-out figures, the model added to the session, its download), the GAN's samples, and
a bad upload (one line)."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.app.pages import displayed
from tests.app.waiting import settle
from tests.conftest import app_page

pytestmark = pytest.mark.app


def train_page():
    return app_page("views/train.py")


def texts(at) -> str:
    return "\n".join(displayed(x.value) for x in [*at.caption, *at.markdown, *at.info,
                                                  *at.success])


def small(at, arch: str, epochs: int = 1) -> None:
    at.number_input(key=f"train_epochs_{arch}").set_value(epochs)


def test_what_will_be_trained_is_shown_before_training():
    at = settle(train_page())
    assert not at.error and not at.exception
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train_arch").value == "cnn"
    assert int(at.metric[0].value.replace(",", "")) > 1000  # parameters
    split = at.dataframe[0].value
    assert list(split.columns) == ["label", "train", "validation", "test"]
    assert (split["train"] > 0).all() and (split["test"] > 0).all()
    # The preview batch: 16 images as the model's first layers see them.
    assert sum(len(e.proto.imgs) for e in at.get("image")) == 16


def test_a_run_trains_and_joins_the_session():
    at = train_page()
    at.run()
    small(at, "cnn")
    at.button[0].click()  # Train
    at = settle(at)
    assert not at.error and not at.exception
    assert "Training finished: 1 epochs" in texts(at)
    models = at.session_state["user_models"]
    (trained_id,) = [i for i in models if i.startswith("user:cnn-")]
    assert f"{trained_id} is now offered on Explain, Compare and Evaluate" in texts(at)
    assert at.get("plotly_chart")  # the curves
    assert any(m.label.startswith("Held-out accuracy") for m in at.metric)
    assert at.get("download_button")


def test_a_second_run_is_the_one_shown():
    at = train_page()
    at.run()
    small(at, "cnn")
    at.button[0].click()
    at = settle(at)
    at.number_input(key="train_seed_cnn").set_value(1)
    at.button[0].click()  # Train again, another seed
    at = settle(at)
    assert not at.error and not at.exception
    assert at.selectbox(key="train_run_shown").value == 1  # the second run, not the first
    assert "Training finished: 1 epochs" in texts(at)


def test_the_gan_shows_its_samples():
    at = train_page()
    at.run()
    at.selectbox(key="train_arch").set_value("dcgan")
    at.run()
    small(at, "dcgan", epochs=2)
    at.button[0].click()
    at = settle(at)
    assert not at.error and not at.exception
    captions = [displayed(img.caption) for e in at.get("image") for img in e.proto.imgs]
    assert "generated after epoch 2" in captions


def test_a_zip_without_label_folders_is_one_line():
    at = train_page()
    at.run()
    at.selectbox(key="train_data_cnn").set_value("Your labelled set (.zip)")
    at.run()
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("loose.png", b"not an image in a folder")
    at.file_uploader[0].set_value(("set.zip", data.getvalue(), "application/zip"))
    at.run()
    assert len(at.error) == 1 and "set.zip" in displayed(at.error[0].value)
    assert not at.exception


@pytest.fixture(scope="module")
def trained_cnn():
    """A narrow CNN trained on the tissue patches, as the Train page leaves it."""
    from core.train.config import default_config
    from core.train.fit import train

    return train(default_config("cnn", epochs=2,
                                options={"filters": 8, "blocks": 2, "dense": 16}))


def test_a_trained_model_is_evaluated_on_its_held_out_images(trained_cnn):
    model_id = trained_cnn.card.id
    at = app_page("views/evaluate.py",
                  session_state={"user_models": {model_id: trained_cnn.classifier}})
    next(m for m in at.multiselect if m.label == "Models").set_value([model_id]).run()
    assert f"The built-in samples of {model_id}" in "\n".join(displayed(c.value)
                                                              for c in at.caption)
    at = settle(next(b for b in at.button if b.label == "Evaluate").click())
    assert not at.error and not at.exception
    shown = "\n".join(displayed(x.value) for x in [*at.markdown, *at.caption])
    assert "Confusion matrix" in shown and at.get("plotly_chart")
    labels = set(trained_cnn.card.labels)
    assert any(labels & set(map(str, d.value.iloc[:, 0])) for d in at.dataframe)


def test_a_trained_model_is_compared_with_a_built_in_one(trained_cnn):
    model_id = trained_cnn.card.id
    at = app_page("views/compare.py",
                  session_state={"user_models": {model_id: trained_cnn.classifier}})
    at.multiselect(key="compare_models").set_value(["braintumor-xception", model_id]).run()
    # The chosen models' samples: the tumour slices and the trained model's patches.
    offered = at.selectbox(key="compare_sample").options
    assert any("matter" in o for o in offered) and any(".jpg" in o for o in offered)
    from core.models.samples import samples

    patch = samples(trained_cnn.card)[0]
    at = settle(at.selectbox(key="compare_sample").set_value(patch))
    assert not at.error and not at.exception
    captions = [displayed(img.caption) for e in at.get("image") for img in e.proto.imgs]
    assert sum(model_id in c for c in captions) >= 1, captions
