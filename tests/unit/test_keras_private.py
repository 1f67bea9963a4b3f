"""Every private-Keras use lives in core/models/runtime/keras_private.py, and what it
relies on is still there in the installed Keras."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "core" / "models" / "runtime" / "keras_private.py"

# `keras.src`, or a private Keras attribute read as one (`x._functional`) or by name
# (getattr(x, "_keras_history")). A function of our own that happens to share a name
# (core/studies/dicom.py's `_functional(ds, ...)`, DICOM functional groups) is neither.
PRIVATE = re.compile(
    r"keras\.src\b"
    r"|(?:\.|[\"'])(?:_keras_history|_inbound_nodes|_functional|_run_through_graph"
    r"|_layers|_nodes|make_node_key)\b"
)


def private_uses(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each private-Keras use in a file's text."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if PRIVATE.search(line)]


def test_the_scan_finds_private_uses():
    text = ("from keras.src.ops.function import make_node_key\n"
            "graph = model._functional\n"
            "history = getattr(tensor, '_keras_history', None)\n"
            "rows = _functional(ds, 'PixelMeasuresSequence', 0)\n"
            "layers = model.layers\n")
    assert [number for number, _ in private_uses(text)] == [1, 2, 3]


def test_no_private_keras_outside_keras_private():
    found = [f"{path.relative_to(ROOT)}:{number}: {line}"
             for path in sorted((ROOT / "core").rglob("*.py")) if path != OWNER
             for number, line in private_uses(path.read_text(encoding="utf-8"))]
    assert not found, ("private Keras API outside core/models/runtime/keras_private.py "
                       "(route it through that module):\n" + "\n".join(found))
    # The owner does use them: the scan is looking at the right names.
    assert private_uses(OWNER.read_text(encoding="utf-8"))


def test_keras_still_has_what_keras_private_uses():
    from core.models.runtime import keras_private

    assert keras_private.check() == []


def test_check_names_what_a_keras_release_moved(monkeypatch):
    """As if a Keras release bound ReLU where Guided Backprop's swap no longer reaches it
    (its map would silently become plain saliency): check() names it."""
    from keras.src.activations import activations
    from keras.src.backend import nn as backend_nn

    from core.models.runtime import keras_private

    class Bound:
        def __init__(self, inner, **fixed):
            self.inner, self.fixed = inner, fixed

        def __getattr__(self, name):
            return self.fixed[name] if name in self.fixed else getattr(self.inner, name)

    # keras.activations.relu reads `backend.nn.relu` when it runs: bind it once instead.
    monkeypatch.setattr(activations, "backend", Bound(activations.backend,
                                                      nn=Bound(backend_nn, relu=backend_nn.relu)))
    assert keras_private.check() == [
        "keras.src.backend.nn.relu (as keras.activations.relu calls it)"]
