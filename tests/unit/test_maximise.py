"""core.inside.maximise on a tiny CNN trained here (a nested backbone, as Xception's):
activation maximisation raises a class score and a channel far above what the training
images make them do (measured), reports each step, stops when cancelled, and runs as a
job."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.explain.errors import ExplainError
from core.inside.maximise import ChannelUnit, ClassUnit, maximise, unit_model, unit_values
from core.progress import Cancelled

STEPS = 40


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """24x24 grey images in [0, 1]: noise with two bars, horizontal (class 0) or vertical
    (class 1), anywhere: a pattern a unit can be shown more of than any image has."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, 24, 24, 1)).astype(np.float32)
    y = np.arange(n) % 2
    for i, label in enumerate(y):
        for _ in range(2):
            at, start = rng.integers(2, 20), rng.integers(0, 12)
            bar = (slice(at, at + 2), slice(start, start + 12))
            x[i][bar if label == 0 else bar[::-1]] = rng.uniform(0.7, 1.0)
    return x, y


@pytest.fixture(scope="module")
def trained():
    import keras

    keras.utils.set_random_seed(0)
    inner_in = keras.Input((24, 24, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inner_in)
    h = keras.layers.MaxPooling2D(name="pool")(h)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    x_in = keras.Input((24, 24, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(x_in))
    model = keras.Model(x_in, keras.layers.Dense(2, activation="softmax", name="head")(pooled))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = images(96, 0)
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.9  # it learnt the task
    return model, x


def test_unit_values_are_logits_and_channel_means(trained):
    import keras

    model, x = trained
    logits = unit_values(unit_model(model, ClassUnit(1)), x[:8])
    head = model.get_layer("head")
    pooled = keras.Model(model.input, head.input)(x[:8])
    w, b = head.get_weights()
    np.testing.assert_allclose(logits, (np.asarray(pooled) @ w + b)[:, 1], rtol=1e-4,
                               atol=1e-5)
    backbone = model.get_layer("backbone")
    conv2 = keras.Model(backbone.input, backbone.get_layer("conv2").output)(x[:8])
    means = unit_values(unit_model(model, ChannelUnit("backbone/conv2", 3)), x[:8])
    np.testing.assert_allclose(means, np.asarray(conv2)[..., 3].mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("unit", [ClassUnit(0), ChannelUnit("backbone/conv2", None)])
def test_maximise_raises_the_unit_far_above_the_samples(trained, unit):
    model, x = trained
    if isinstance(unit, ChannelUnit):  # the channel real images excite most
        means = [unit_values(unit_model(model, ChannelUnit("backbone/conv2", c)), x).mean()
                 for c in range(8)]
        unit = ChannelUnit("conv2", int(np.argmax(means)))  # a bare name resolves too
    seen: list[tuple[float, str]] = []
    result = maximise(model, unit, steps=STEPS, seed=0, samples=x, value_range=(0.0, 1.0),
                      progress=lambda done, text: seen.append((done, text)))
    assert result.image.shape == (24, 24, 1) and result.image.dtype == np.float32
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.picture.shape == (24, 24, 3) and result.picture.dtype == np.uint8
    assert result.samples.shape == (96,)
    print(f"\n{unit}: start {result.start:.3f}, result {result.activation:.3f}, samples "
          f"max {result.samples.max():.3f} mean {result.samples.mean():.3f}, "
          f"{result.seconds:.1f} s for {result.steps} steps")
    assert result.activation > max(result.samples.max(), result.start)
    assert result.activation - result.samples.mean() > 2 * (result.samples.max()
                                                            - result.samples.mean())
    # The unit's value on the returned image is the one measured (not the last step's).
    probe = unit_model(model, result.unit)
    assert result.activation == pytest.approx(float(unit_values(probe, result.image[None])[0]))
    assert [round(d * STEPS) for d, _ in seen] == list(range(1, STEPS + 1))
    assert len(result.history) == STEPS and "step 40 of 40" in seen[-1][1]
    assert result.activation == max(result.history)  # the best step's image is kept


def test_the_same_seed_gives_the_same_image(trained):
    model, _ = trained
    a = maximise(model, ClassUnit(1), steps=5, seed=3, value_range=(0.0, 1.0))
    b = maximise(model, ClassUnit(1), steps=5, seed=3, value_range=(0.0, 1.0))
    c = maximise(model, ClassUnit(1), steps=5, seed=4, value_range=(0.0, 1.0))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    assert a.samples.size == 0


def test_cancel_stops_the_ascent_at_its_next_step(trained):
    model, _ = trained
    steps: list[float] = []

    def progress(done: float, text: str) -> None:
        steps.append(done)
        if len(steps) == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        maximise(model, ClassUnit(0), steps=STEPS, value_range=(0.0, 1.0), progress=progress)
    assert len(steps) == 3


def test_bad_units_are_one_line_refusals(trained):
    model, _ = trained
    for unit, words in [(ClassUnit(2), "class 2 is out of range"),
                        (ChannelUnit("backbone/conv2", 8), "channel 8 is out of range"),
                        (ChannelUnit("nope", 0), "no spatial layer named 'nope'")]:
        with pytest.raises(ExplainError, match=words):
            maximise(model, unit, steps=1, value_range=(0.0, 1.0))


def test_a_model_with_a_second_input_holds_it_fixed():
    import keras

    keras.utils.set_random_seed(1)
    image, meta = keras.Input((8, 8, 1)), keras.Input((3,))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="c")(image))
    model = keras.Model([image, meta], keras.layers.Dense(2)(
        keras.layers.Concatenate()([pooled, meta])))
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    held = np.array([1.0, -2.0, 0.5], np.float32)
    probe = unit_model(model, ClassUnit(1), fixed=[held])
    expected = np.asarray(model([x, np.repeat(held[None], 4, 0)]))[:, 1]
    np.testing.assert_allclose(unit_values(probe, x), expected, rtol=1e-5, atol=1e-6)
    result = maximise(model, ClassUnit(1), steps=3, value_range=(0.0, 1.0), fixed=[held])
    assert result.image.shape == (8, 8, 1)


def test_maximise_runs_as_a_job_with_progress(trained):
    from core.jobs import RUNNERS, Executor, maximise_job

    model, x = trained
    classifier = SimpleNamespace(
        card=SimpleNamespace(id="tiny", input_spec=SimpleNamespace(scale="unit")),
        keras_model=model, fingerprint="tiny-1")
    job = maximise_job(classifier, ClassUnit(0, "top-left"), steps=4, samples=x[:4])
    assert job.spec.params["range"] == [0.0, 1.0] and job.spec.params["unit"] == "class"
    assert job.key != maximise_job(classifier, ClassUnit(1), steps=4, samples=x[:4]).key
    seen: list[float] = []
    result = Executor(RUNNERS).run(job, listener=lambda h: seen.append(h.progress))
    assert result.steps == 4 and result.unit == ClassUnit(0, "top-left")
    assert result.samples.shape == (4,) and seen[-1] == 1.0
    channel = maximise_job(classifier, ChannelUnit("backbone/conv2", 2), steps=2)
    assert channel.spec.params["unit"] == "channel" and channel.spec.params["channel"] == 2
    assert Executor(RUNNERS).run(channel).unit == ChannelUnit("backbone/conv2", 2)


def test_grey_keeps_an_rgb_models_image_grey():
    """An RGB model shown grey studies (one channel three times, as the tumour Xception
    is): with grey=True the ascent runs on one channel, so the image stays grey."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    grey = np.repeat(np.random.default_rng(0).random((6, 16, 16, 1), np.float32), 3, -1)
    result = maximise(model, ClassUnit(1), steps=3, samples=grey, value_range=(0.0, 1.0),
                      grey=True)
    assert result.image.shape == (16, 16, 3)
    np.testing.assert_array_equal(result.image[..., 0], result.image[..., 2])
    # measured on the samples as the model sees them (their first channel, repeated)
    np.testing.assert_allclose(result.samples, unit_values(unit_model(model, ClassUnit(1)),
                                                           grey), rtol=1e-5, atol=1e-6)
    coloured = maximise(model, ClassUnit(1), steps=3, value_range=(0.0, 1.0))
    assert not np.array_equal(coloured.image[..., 0], coloured.image[..., 2])


def test_a_segmenters_class_unit_is_its_mean_score_over_the_pixels():
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    scores = keras.layers.Conv2D(3, 3, padding="same", name="scores")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scores))
    x = np.random.default_rng(1).random((4, 8, 8, 1), np.float32)
    logits = keras.Model(inputs, scores)(x)
    values = unit_values(unit_model(model, ClassUnit(2)), x)
    np.testing.assert_allclose(values, np.asarray(logits)[..., 2].mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
