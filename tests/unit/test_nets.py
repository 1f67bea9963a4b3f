"""The network builders in core.nets (cnn, transfer, vit, unet) and the catalogue of
architectures: shapes, probabilities, the ViT's attention read back against an
independent computation, the transfer model's frozen and copied backbone, and safe-mode
reloading."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import numpy as np
import pytest

from core.nets import cnn as cnn_module
from core.nets import transfer as transfer_module
from core.nets import vit as vit_module
from core.nets.catalogue import ARCHITECTURES, KINDS, architecture, parameters
from tests.conftest import ROOT

keras = pytest.importorskip("keras")

OWN = ("cnn", "transfer", "unet", "vit")


def present(name: str) -> bool:
    """Whether an architecture's module exists in this checkout (helpers write some)."""
    module = ARCHITECTURES[name].builder.split(":")[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return False
        raise
    return True


@pytest.fixture(scope="module")
def source():
    """An Xception backbone as core.train passes it in (here randomly initialised, at
    another input size than the model's, as the shipped 150x150 one is)."""
    keras.utils.set_random_seed(1)
    return keras.applications.Xception(weights=None, include_top=False,
                                       input_shape=(75, 75, 3))


def images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape, 1), dtype=np.float32)


def build(name: str, source, size=None, classes: int = 3, **options):
    arch = architecture(name)
    if "backbone" in arch.needs:
        options["backbone"] = source
    return arch.build(size or arch.size, classes, **options)


@pytest.mark.parametrize("name", OWN)
def test_each_builder_builds_at_its_default_size(name, source):
    model = build(name, source)
    arch = architecture(name)
    x = images(2, arch.size)
    probabilities = np.asarray(model.predict(x, verbose=0))
    expected = (2, *arch.size, 3) if arch.data == "masks" else (2, 3)
    assert probabilities.shape == expected
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert model.get_layer("logits") and model.get_layer("probabilities")
    print(f"{name}: {parameters(model)} parameters, {parameters(model, trainable=True)} "
          "trainable")
    assert parameters(model) == model.count_params()


@pytest.mark.parametrize("name", OWN)
def test_front_layers_act_on_the_input_first(name, source):
    """A front layer that blanks the image: every input then gives the same output."""
    size = (72, 72) if name == "transfer" else (16, 16)
    front = [keras.layers.Rescaling(0.0, offset=0.5, name="blank")]
    options = {"patch": 4} if name == "vit" else {"depth": 2} if name == "unet" else {}
    model = build(name, source, size=size, front=front, **options)
    assert model.layers[1].name == "blank"
    out = np.asarray(model.predict(images(2, size), verbose=0))
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    plain = build(name, source, size=size, **options)
    out = np.asarray(plain.predict(images(2, size), verbose=0))
    assert np.abs(out[0] - out[1]).max() > 1e-6


def test_cnn_layers_are_named_blocks():
    model = cnn_module.cnn((32, 32, 1), 2, blocks=2, filters=4)
    names = [layer.name for layer in model.layers]
    assert names[1:6] == ["block1_conv", "block1_pool", "block2_conv", "block2_pool",
                          "flatten"]
    assert model.get_layer(cnn_module.cam_layer(2)).output.shape == (None, 16, 16, 8)
    with pytest.raises(ValueError, match="too small"):
        cnn_module.cnn((4, 4, 1), 2, blocks=3)


# ViT


def _layer_norm(x: np.ndarray, layer) -> np.ndarray:
    gamma, beta = (np.asarray(w) for w in layer.get_weights())
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def small_vit():
    keras.utils.set_random_seed(2)
    model = vit_module.vit((16, 16, 1), 3, patch=4, dim=16, depth=2, heads=2, mlp=32)
    # Sharper queries and keys than the initialiser gives, so the scores are far from
    # uniform and a wrong recomputation cannot agree by chance.
    attention = model.get_layer("block1_attention")
    for dense in (attention.query_dense, attention.key_dense):
        kernel, bias = dense.get_weights()
        dense.set_weights([kernel * 6.0, bias])
    return model


def test_vit_attention_scores_equal_softmax_of_qk(small_vit):
    """Block 1, Eq. 5 of Vaswani et al. 2017: softmax(Q K^T / sqrt(d_k)), with Q and K
    from the block's LayerNorm of the embedded tokens, recomputed in numpy from the
    layers' own weights."""
    model = small_vit
    x = images(3, (16, 16))
    scores = vit_module.attention_scores(model, x)
    assert len(scores) == 2
    rows, cols = vit_module.patch_grid(model)
    assert (rows, cols) == (4, 4)
    tokens = 1 + rows * cols
    for s in scores:
        assert s.shape == (3, 2, tokens, tokens)
        np.testing.assert_allclose(s.sum(axis=-1), 1.0, atol=1e-5)

    embedded = keras.Model(model.input, model.get_layer("position").output)
    z = np.asarray(embedded.predict(x, verbose=0), dtype=np.float64)
    h = _layer_norm(z, model.get_layer("block1_norm1"))
    attention = model.get_layer("block1_attention")
    wq, bq = (np.asarray(w, dtype=np.float64) for w in attention.query_dense.get_weights())
    wk, bk = (np.asarray(w, dtype=np.float64) for w in attention.key_dense.get_weights())
    q = np.einsum("ntd,dhk->nthk", h, wq) + bq
    k = np.einsum("ntd,dhk->nthk", h, wk) + bk
    expected = _softmax(np.einsum("nqhk,nshk->nhqs", q, k) / np.sqrt(q.shape[-1]))
    assert expected.max(axis=-1).mean() > 3.0 / tokens  # far from uniform
    np.testing.assert_allclose(scores[0], expected, atol=2e-5)


def test_vit_token_zero_is_the_class_token(small_vit):
    """The class token is prepended: the position layer's first token is the same for
    every image (no patch reaches it before attention)."""
    embedded = keras.Model(small_vit.input, small_vit.get_layer("position").output)
    z = np.asarray(embedded.predict(images(2, (16, 16)), verbose=0))
    np.testing.assert_allclose(z[0, 0], z[1, 0])
    assert np.abs(z[0, 1:] - z[1, 1:]).max() > 1e-4


def test_vit_refuses_a_size_not_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match="multiple of the patch"):
        vit_module.vit((30, 30, 1), 2, patch=8)
    with pytest.raises(ValueError, match="no ViT attention"):
        vit_module.attention_scores(cnn_module.cnn((16, 16, 1), 2, blocks=1),
                                    images(1, (16, 16)))


# Transfer


def _backbone_layers(model):
    return [layer for layer in model.layers if layer.weights]


def test_transfer_copies_the_backbone_weights(source):
    model = transfer_module.transfer((71, 71, 1), 2, backbone=source)
    net = model.get_layer("xception")
    assert net.input.shape[1:] == (71, 71, 3)
    pairs = list(zip(_backbone_layers(source), _backbone_layers(net), strict=True))
    assert len(pairs) == 80  # every conv, separable conv and BatchNorm of Xception
    for old, new in pairs:
        for a, b in zip(old.get_weights(), new.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_transfer_refuses_what_is_not_an_xception():
    other = cnn_module.cnn((32, 32, 3), 2)
    with pytest.raises(ValueError, match="not an Xception"):
        transfer_module.transfer((71, 71, 1), 2, backbone=other)
    with pytest.raises(ValueError, match="too small"):
        transfer_module.transfer((64, 64, 1), 2, backbone=other)


def _fit_once(model) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    x = images(4, (71, 71), seed=3)
    model.fit(x, np.array([0, 1, 0, 1]), batch_size=4, epochs=1, verbose=0)


def _snapshot(net) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()]
            for layer in _backbone_layers(net)}


def _changed(before, after) -> set[str]:
    return {name for name in before
            if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name],
                                                             strict=True))}


def test_frozen_backbone_does_not_change_in_training(source):
    model = transfer_module.transfer((71, 71, 1), 2, backbone=source)
    net = model.get_layer("xception")
    assert not net.trainable_weights
    assert transfer_module.unfrozen_blocks(model) == []
    before, head = _snapshot(net), [np.array(w) for w in model.get_layer("logits").weights]
    _fit_once(model)
    assert _changed(before, _snapshot(net)) == set()  # BatchNorm statistics included
    after = model.get_layer("logits").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(head, after, strict=True))


def test_unfreeze_one_trains_block14_only(source):
    model = transfer_module.transfer((71, 71, 1), 2, backbone=source, unfreeze=1)
    assert transfer_module.unfrozen_blocks(model) == ["block14"]
    net = model.get_layer("xception")
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert not layer.trainable
    before = _snapshot(net)
    _fit_once(model)
    changed = _changed(before, _snapshot(net))
    assert changed == {"block14_sepconv1", "block14_sepconv2"}
    two = transfer_module.transfer((71, 71, 1), 2, backbone=source, unfreeze=2)
    assert transfer_module.unfrozen_blocks(two) == ["block13", "block14"]
    # Block 13's residual 1x1 convolution unfreezes with block 13.
    residual = [layer for layer in two.get_layer("xception").layers
                if isinstance(layer, keras.layers.Conv2D) and layer.trainable
                and not layer.name.startswith("block")]
    assert len(residual) == 1 and residual[0].kernel.shape[:2] == (1, 1)


# Saving


@pytest.mark.parametrize("name", ("cnn", "transfer", "vit"))
def test_saved_models_reload_in_safe_mode(name, source, tmp_path):
    options = {"unfreeze": 1} if name == "transfer" else {}
    size = (71, 71) if name == "transfer" else (16, 16)
    options |= {"patch": 4, "dim": 16, "depth": 2, "mlp": 32} if name == "vit" else {}
    model = build(name, source, size=size, classes=2, **options)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    x = images(3, size, seed=4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    if name == "transfer":
        assert transfer_module.unfrozen_blocks(loaded) == ["block14"]
    if name == "vit":
        for a, b in zip(vit_module.attention_scores(model, x),
                        vit_module.attention_scores(loaded, x), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_load_keras_registers_the_nets_layers(tmp_path):
    """A fresh process that has never imported core.nets loads a saved ViT through
    MedLens' one loader, in safe mode."""
    model = vit_module.vit((16, 16, 1), 2, patch=4, dim=16, depth=1, mlp=16)
    path = tmp_path / "vit.keras"
    model.save(path)
    x = images(2, (16, 16), seed=5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "p.npy", model.predict(x, verbose=0))
    code = (
        "import sys, numpy as np\n"
        "from core.models.runtime.keras import load_keras\n"
        "assert 'core.nets.blocks' not in sys.modules\n"
        f"m = load_keras(r'{path}', 'vit')\n"
        f"x = np.load(r'{tmp_path / 'x.npy'}'); p = np.load(r'{tmp_path / 'p.npy'}')\n"
        "np.testing.assert_allclose(m.predict(x, verbose=0), p, atol=1e-6)\n"
        "print('loaded')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout


# Catalogue


def test_catalogue_names_every_architecture():
    assert set(ARCHITECTURES) == {"cnn", "transfer", "unet", "vit", "recurrent", "cnn3d",
                                  "dcgan"}
    for name, arch in ARCHITECTURES.items():
        assert arch.name == name and arch.data in KINDS and arch.title and arch.task
        assert len(arch.size) == (3 if arch.data == "volumes" else 2)
        assert "http" in arch.paper and ":" in arch.builder


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_catalogue_options_match_the_builder(name):
    """Each option is a keyword of the builder with the same default, and the about
    text is a few plain sentences."""
    if not present(name):
        pytest.skip(f"{ARCHITECTURES[name].builder} is not in this checkout")
    arch = architecture(name)
    module, function = arch.builder.split(":")
    signature = inspect.signature(getattr(importlib.import_module(module), function))
    for option_name, option in arch.options.items():
        assert signature.parameters[option_name].default == option.default, option_name
        option.check(option_name, option.default)
    for need in arch.needs:
        assert need in signature.parameters
    assert "front" in signature.parameters
    assert 3 <= arch.about.count(". ") + 1 <= 7


def test_catalogue_errors_are_one_line(source):
    with pytest.raises(ValueError, match="known: cnn, transfer") as caught:
        architecture("resnet")
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="unknown cnn option 'width'"):
        architecture("cnn").build((32, 32), 2, width=3)
    with pytest.raises(ValueError, match="blocks: 9 is above 5"):
        architecture("cnn").build((32, 32), 2, blocks=9)
    with pytest.raises(ValueError, match="transfer: needs backbone"):
        architecture("transfer").build((72, 72), 2)
    with pytest.raises(ValueError, match="not a multiple"):
        architecture("vit").build((30, 30), 2)


def test_catalogue_builds_options_given_as_text():
    """A CLI or a page hands options over as text: they are checked into their types."""
    model = architecture("cnn").build((16, 16, 1), 2, blocks="2", filters="4",
                                      dropout="0.5")
    assert model.get_layer("block2_conv").filters == 8
    assert model.get_layer("dropout").rate == 0.5


@pytest.mark.parametrize("name", ("recurrent", "cnn3d", "dcgan"))
def test_catalogue_builds_the_other_helpers_architectures(name):
    if not present(name):
        pytest.skip(f"{ARCHITECTURES[name].builder} is not in this checkout")
    arch = architecture(name)
    model = arch.build(arch.size, 2)
    assert parameters(model) > 0


def test_catalogue_default_tasks_exist_and_fit():
    """Each architecture's default task is a built-in task of its kind of data, at the
    same default size."""
    try:
        data = importlib.import_module("core.train.data")
    except ModuleNotFoundError as exc:
        if exc.name != "core.train.data":
            raise
        pytest.skip("core.train.data is not in this checkout")
    for arch in ARCHITECTURES.values():
        task = data.task(arch.task)
        assert task.kind == arch.data, arch.name
        if arch.name != "transfer":  # Xception needs 71x71 at least: the task is made larger
            assert tuple(task.default_size) == arch.size, arch.name
