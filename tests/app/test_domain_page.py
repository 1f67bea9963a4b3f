"""Explain shows the domain check beside the prediction (AppTest, the real Xception): a
chest X-ray given to braintumor-xception gets the out-of-domain warning; one of its own
brain MRI samples gets none, only the quiet caption with its score and population."""

from __future__ import annotations

from tests.app.pages import displayed
from tests.conftest import app_page


def texts(elements) -> list[str]:
    return [displayed(e.value) for e in elements]


def test_explain_warns_on_a_chest_x_ray_given_to_the_brain_model(chest_samples,
                                                                 brain_samples):
    at = app_page("views/explain.py")
    assert at.selectbox[0].value == "braintumor-xception"
    chest = next(s for s in chest_samples if s.name == "NORMAL2-IM-1427-0001.jpeg")
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].set_value((chest.name, chest.path.read_bytes(), "image/jpeg")).run()
    assert not at.exception
    warned = [w for w in texts(at.warning) if "looks unlike the images" in w]
    assert len(warned) == 1
    assert warned[0].startswith(f"{chest.name} looks unlike the images braintumor-xception")
    assert any(c.startswith("OUTSIDE the domain of its 17 labelled samples")
               for c in texts(at.caption))

    at.radio[0].set_value("Built-in sample").run()
    sample = next(s for s in at.selectbox if s.label == "Sample")
    sample.set_value(brain_samples[0]).run()
    assert not at.exception
    assert not [w for w in texts(at.warning) if "looks unlike" in w]
    inside = [c for c in texts(at.caption) if c.startswith("inside the domain of its 17")]
    assert len(inside) == 1 and "trained on: not stated by the package" in inside[0]
