"""Activation maximisation on the real braintumor-xception (a nested Xception backbone):
the glioma score and a channel of xception/block4_sepconv2_act, each raised above every
one of the 17 built-in samples, as a job with progress. Prints the figures (-s)."""

from __future__ import annotations

import numpy as np
import pytest

from core.explain.backend.graph import score_model
from core.inside.maximise import ChannelUnit, ClassUnit, input_range, unit_model, unit_values

STEPS = 100
LAYER = "xception/block4_sepconv2_act"


@pytest.fixture(scope="module")
def sample_batch(xception, brain_samples):
    from core.models.inputs import prepare
    from core.studies import open_study

    return np.stack([prepare(open_study(s.path), xception.card.input_spec).array
                     for s in brain_samples])


@pytest.mark.parametrize("unit", [ClassUnit(0, "glioma"), ChannelUnit(LAYER, None)])
def test_maximise_beats_every_sample_on_the_real_xception(xception, sample_batch, unit):
    from core.jobs import Executor, maximise_job
    from core.jobs.kinds import RUNNERS

    assert xception.card.labels[0] == "glioma"
    if isinstance(unit, ChannelUnit):  # the channel the samples excite most on average
        maps = np.asarray(score_model(xception.keras_model, LAYER)(sample_batch)[0])
        unit = ChannelUnit(LAYER, int(np.argmax(maps.mean(axis=(0, 1, 2)))))
        # the unit's own probe measures the same means
        np.testing.assert_allclose(
            unit_values(unit_model(xception.keras_model, unit), sample_batch),
            maps[..., unit.channel].mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    seen: list[float] = []
    # grey, as the page runs it for these grey scans (one channel three times)
    job = maximise_job(xception, unit, steps=STEPS, seed=0, samples=sample_batch, grey=True)
    result = Executor(RUNNERS).run(job, listener=lambda h: seen.append(h.progress))
    low, high = input_range(xception.card.input_spec.scale)
    assert result.image.shape == (150, 150, 3) and low <= result.image.min()
    np.testing.assert_array_equal(result.image[..., 0], result.image[..., 1])
    assert result.image.max() <= high
    print(f"\n{unit.title}: start {result.start:.3f}, result {result.activation:.3f}, "
          f"17 samples max {result.samples.max():.3f} mean {result.samples.mean():.3f} "
          f"sd {result.samples.std():.3f}, "
          f"{result.seconds:.1f} s for {result.steps} steps")
    assert result.samples.shape == (17,)
    assert result.activation > result.samples.max() > result.samples.mean()
    assert seen[-1] == 1.0 and len(result.history) == STEPS
