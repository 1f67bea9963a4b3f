"""Models: cards, where their files are, how a study becomes their input, and one
`Classifier` to run any of them (Keras or ONNX, built-in or the user's own).

- `cards`: ModelCard, the built-in cards, INTENDED_USE.
- `registry`: model files inside installed packages, sha256.
- `inputs`: InputSpec, ModelInput, `prepare` (study -> model input, every step recorded).
- `metadata`: a second input of patient metadata (the skin model).
- `outputs`: the one softmax and the one predicted-class rule.
- `classifier`: Classifier, Prediction, `load`; `segmenter`: Segmenter (a label per pixel).
- `runtime/`: the one Keras loader and compiled forward pass, the one ONNX run path, and
  every private-Keras use (`runtime/keras_private.py`).
- `user`: the user's own .keras/.onnx file; `ports`: the VGG16's Keras port;
  `architecture`: layer tables; `samples`: the labelled images the packages ship.
"""

from core.models.cards import (
    INTENDED_USE,
    USER_PREFIX,
    ModelCard,
    ModelError,
    card,
    cards,
)
from core.models.classifier import Classifier, Prediction, check_runtime
from core.models.loading import load
from core.models.registry import model_file, package_path, sha256
from core.models.segmenter import Segmenter

__all__ = [
    "INTENDED_USE", "USER_PREFIX", "Classifier", "ModelCard", "ModelError", "Prediction",
    "Segmenter",
    "card", "cards", "check_runtime", "load", "model_file", "package_path", "sha256",
]
