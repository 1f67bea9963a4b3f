"""A ViT's attention: rollout (Abnar & Zuidema 2020) against an independent numpy
implementation, gradient-weighted rollout (Chefer et al. 2021) from a block-by-block pass
whose logits equal the model's own, both maps localising a planted object better than
chance on a ViT trained here, mean attention distance against a brute-force loop, slice
attention of a recurrent model, and the one-line refusal for a model without attention.

The task: 16x16 noise images, class 1 with a bright 4x4 square somewhere, class 0 without.
A ViT (patch 4, depth 2) trained for a few seconds tells them apart (held-out accuracy
measured 0.995 on 200 images). Map energy inside the square over 40 held-out class-1
images, as a fraction of each map's energy (chance: the square's area, 0.0625), measured:
rollout 0.173 (min 0.101), gradient-weighted 0.302 (min 0.120).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.explain import METHODS, ExplainError, attribute, explain, explainable
from core.explain.backend.scores import as_score_model
from core.explain.maps import normalise, resize_maps
from core.explain.methods.attention.base import attention_gradients, block_by_block
from core.inside import attention as inside
from core.nets.vit import attention_scores, vit
from tests.cli import medlens

pytestmark = pytest.mark.unit

SIZE, PATCH, SQUARE = 16, 4, 4
ATTENTION_METHODS = ("attention-rollout", "attention-gradient")


def planted(n: int, seed: int):
    """(x, labels, squares): noise, and on class 1 a bright SQUARE x SQUARE square."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2, 0.1, (n, SIZE, SIZE, 1)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    squares = np.zeros((n, SIZE, SIZE), bool)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, SIZE - SQUARE + 1, 2)
        x[i, r:r + SQUARE, c:c + SQUARE] += 0.8
        squares[i, r:r + SQUARE, c:c + SQUARE] = True
    return x, labels, squares


@pytest.fixture(scope="module")
def trained():
    import keras

    keras.utils.set_random_seed(0)
    x, labels, _ = planted(2000, 0)
    model = vit((SIZE, SIZE, 1), 2, patch=PATCH, dim=32, depth=2, heads=2, mlp=64,
                dropout=0.0)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=64, epochs=5, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out():
    return planted(200, 1)


def test_the_vit_learnt_the_task(trained, held_out):
    x, labels, _ = held_out
    accuracy = (trained.predict(x, verbose=0).argmax(axis=1) == labels).mean()
    assert accuracy > 0.9  # measured 0.995


def numpy_rollout(scores: list[np.ndarray], image: int) -> np.ndarray:
    """Abnar & Zuidema's rollout written out: A~ = 0.5 mean_h(A) + 0.5 I per block,
    R = A~_L ... A~_1, the class token's row over the patches on the 4x4 grid."""
    tokens = scores[0].shape[-1]
    joint = np.eye(tokens)
    for block in scores:
        mixed = 0.5 * block[image].astype(np.float64).mean(axis=0) + 0.5 * np.eye(tokens)
        joint = mixed @ joint
    return joint[0, 1:].reshape(SIZE // PATCH, SIZE // PATCH)


def test_rollout_equals_an_independent_numpy_rollout(trained, held_out):
    x = held_out[0][:6]
    scores = attention_scores(trained, x)
    method = METHODS["attention-rollout"]
    raw = method.attribute(as_score_model(trained), [x], np.full(6, -1), None, None).maps
    for i in range(6):
        expected = numpy_rollout(scores, i)
        np.testing.assert_allclose(raw[i], expected, atol=1e-6)
        np.testing.assert_allclose(inside.rollout(inside.attention_maps(trained, x[i])),
                                   expected, atol=1e-6)
    # The API: the same maps, resized to the input and divided by their peak.
    expected = normalise(resize_maps(np.stack([numpy_rollout(scores, i) for i in range(6)]),
                                     SIZE, SIZE))
    np.testing.assert_allclose(explain(trained, x, "attention-rollout"), expected, atol=1e-5)


def test_the_block_by_block_pass_is_the_models_own(trained, held_out):
    import keras

    x = held_out[0][:8]
    attentions, logits = block_by_block(trained)(x)
    probabilities = np.asarray(keras.ops.softmax(logits))
    np.testing.assert_allclose(probabilities, trained(x, training=False), atol=1e-5)
    scores = keras.Model(trained.inputs[0], trained.get_layer("logits").output)(x)
    np.testing.assert_allclose(logits, scores, atol=1e-5)
    for mine, read in zip(attentions, attention_scores(trained, x), strict=True):
        np.testing.assert_allclose(mine, read, atol=1e-6)
    attention, gradients, found = attention_gradients(trained, x, np.full(8, -1))
    np.testing.assert_allclose(found, scores, atol=1e-5)
    assert attention.shape == gradients.shape == (8, 2, 2, 17, 17)


def test_gradient_rollout_is_finite_non_negative_and_follows_the_target(trained, held_out):
    x = held_out[0][np.flatnonzero(held_out[1] == 1)[:4]]
    for image in x:
        one = inside.gradient_rollout(trained, image, 1)
        other = inside.gradient_rollout(trained, image, 0)
        assert one.shape == other.shape == (4, 4)
        assert np.isfinite(one).all() and (one >= 0).all() and one.max() > 0
        assert not np.allclose(one, other)
    result = attribute(trained, x, "attention-gradient")
    assert result.info["target"] == [1, 1, 1, 1]  # the predicted class, found in its pass
    assert result.maps.shape == (4, SIZE, SIZE)


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_the_maps_localise_the_planted_square(trained, held_out, method):
    """The fraction of each map's energy inside the square, over 40 held-out class-1
    images, against the square's share of the image (what a map blind to it would get)."""
    x, labels, squares = held_out
    rows = np.flatnonzero(labels == 1)[:40]
    maps = explain(trained, x[rows], method, target=[1] * len(rows))
    inside_square = (maps * squares[rows]).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    chance = squares[rows].mean()
    assert chance == pytest.approx((SQUARE / SIZE) ** 2)
    # Measured: rollout 0.173 and gradient-weighted 0.302 on average (chance 0.0625).
    print(f"\n{method}: {inside_square.mean():.3f} of the map's energy inside the square "
          f"on average (min {inside_square.min():.3f}, {int((inside_square > chance).sum())}"
          f"/{len(rows)} above chance {chance:.4f})")
    assert inside_square.mean() > 2 * chance
    assert (inside_square > chance).mean() > 0.9


def test_token_maps_per_layer_and_head(trained, held_out):
    attention = inside.attention_maps(trained, held_out[0][0])
    assert attention.shape == (2, 2, 17, 17)
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, atol=1e-5)
    head = inside.token_map(attention, 1, 0)
    np.testing.assert_array_equal(head, attention[1, 0, 0, 1:].reshape(4, 4))
    mean = inside.token_map(attention, 0, None, token=5)
    np.testing.assert_allclose(mean, attention[0, :, 5, 1:].mean(axis=0).reshape(4, 4))


def test_mean_distance_equals_a_brute_force_loop(trained, held_out):
    attention = inside.attention_maps(trained, held_out[0][1])
    found = inside.mean_distance(trained, attention, PATCH)
    assert found.shape == (2, 2)
    rows = cols = SIZE // PATCH
    expected = np.zeros((2, 2))
    for layer in range(2):
        for head in range(2):
            total = 0.0
            for q in range(rows * cols):
                weights = attention[layer, head, 1 + q, 1:].astype(np.float64)
                weights /= weights.sum()
                for k in range(rows * cols):
                    dr, dc = q // cols - k // cols, q % cols - k % cols
                    total += weights[k] * np.hypot(dr, dc) * PATCH
            expected[layer, head] = total / (rows * cols)
    np.testing.assert_allclose(found, expected, rtol=1e-5)
    farthest = np.hypot(rows - 1, cols - 1) * PATCH
    assert (found >= 0).all() and (found <= farthest).all()
    # A head that looks only at its own patch is at distance 0; only at the opposite
    # corner, at the farthest.
    own = np.zeros((1, 1, 17, 17))
    own[..., 1:, 1:] = np.eye(16)
    assert inside.mean_distance((4, 4), own, PATCH)[0, 0] == 0
    corner = np.zeros((1, 1, 17, 17))
    corner[0, 0, 1, 16] = 1.0
    corner[0, 0, 16, 1] = 1.0
    # Only two queries look (the others have no weight on the patches): mean over all 16.
    assert inside.mean_distance((4, 4), corner, PATCH)[0, 0] == pytest.approx(
        2 * farthest / 16)


def test_slice_attention_of_a_recurrent_model_sums_to_one():
    from core.nets.recurrent import recurrent, slice_weights

    model = recurrent((6, 8, 8, 1), 2, units=4, filters=4, blocks=1)
    volume = np.random.default_rng(0).random((6, 8, 8, 1)).astype(np.float32)
    weights = inside.slice_attention(model, volume)
    assert weights.shape == (6,) and (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(weights, slice_weights(model, volume[None])[0], atol=1e-6)
    assert inside.attention_kind(model) == "slices" and inside.has_attention(model) is None


@pytest.fixture(scope="module")
def cnn():
    from core.nets.cnn import cnn as build

    return build((SIZE, SIZE, 1), 2, blocks=1, filters=4, dense=8)


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_a_cnn_is_refused_in_one_line(cnn, held_out, method, tmp_path):
    with pytest.raises(ExplainError) as refused:
        explain(cnn, held_out[0][:2], method)
    line = str(refused.value)
    assert "\n" not in line and "has no attention layers" in line and "ViT" in line
    assert METHODS[method].refusal(cnn) == line
    assert inside.has_attention(cnn) == line and inside.attention_kind(cnn) is None
    with pytest.raises(ExplainError, match="no slice attention"):
        inside.slice_attention(cnn, np.zeros((2, SIZE, SIZE, 1), np.float32))

    from core.models.user import load_user_model

    cnn.save(tmp_path / "cnn.keras")
    classifier = load_user_model(tmp_path / "cnn.keras", "a,b")
    with pytest.raises(ExplainError, match=f"^model '{classifier.card.id}' has no attention "
                                           "layers: attention methods need a ViT"):
        explainable(classifier, method)
    assert explainable(classifier, "gradcam") is classifier


def test_the_vit_is_accepted_by_explainable(trained, tmp_path):
    from core.models.user import load_user_model

    trained.save(tmp_path / "vit.keras")
    classifier = load_user_model(tmp_path / "vit.keras", "none,square")
    for method in ATTENTION_METHODS:
        assert explainable(classifier, method) is classifier
    assert inside.attention_kind(classifier) == "vit"


def test_the_cli_explains_a_vit_and_refuses_a_cnn(trained, cnn, held_out, tmp_path):
    from PIL import Image

    trained.save(tmp_path / "vit.keras")
    cnn.save(tmp_path / "cnn.keras")
    picture = tmp_path / "square.png"
    image = np.clip(held_out[0][np.flatnonzero(held_out[1] == 1)[0], ..., 0], 0, 1)
    Image.fromarray((image * 255).astype(np.uint8)).save(picture)
    for method in ATTENTION_METHODS:
        run = medlens("explain", "--model-file", tmp_path / "vit.keras", "--labels",
                      "none,square", "--method", method, picture, "--out", tmp_path / "out",
                      "--json")
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "out" / f"square.{method}.npy").is_file()
        refused = medlens("explain", "--model-file", tmp_path / "cnn.keras", "--labels",
                          "a,b", "--method", method, picture, "--out", tmp_path / "no")
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and "has no attention layers" in refused.stderr
        assert not (tmp_path / "no").exists()
