"""Explanations: which parts of the image drove the model's score for a class.

`explain(model, x, method, target, layer, **options)` is the one entry point
(`core.explain.api`); `METHODS` names every method (`registry`). The layout:

- `errors`: ExplainError, in a module of its own so that nothing imports in a circle;
- `method`: Method, Option (options as data), Attribution, the helpers that build inputs;
- `targets`: what is explained, as objects (a class, the predicted class, a region of a
  segmentation: Seg-Grad-CAM's label logits summed over pixels);
- `backend/`: a Keras model by layer path and as class scores with compiled gradients;
- `methods/`: one module per method, by family: `cam/`, `gradient/`, `perturbation/`;
- `maps`: normalising and resizing maps; `overlay`: a map drawn on the study;
- `metrics/`: faithfulness (deletion/insertion), sanity (cascading randomisation),
  localisation (pointing game, energy-based pointing game, IoU), agreement (between two
  maps);
- `costs`: what each method costs, as a multiple of one forward pass.
"""

from core.explain.api import (
    Explanation,
    attribute,
    black,
    explain,
    explain_input,
    explainable,
)
from core.explain.backend.graph import (
    last_spatial_layer,
    resolve_layer,
    segmentation_layers,
    spatial_layers,
)
from core.explain.backend.scores import ForwardModel, ScoreModel, as_score_model
from core.explain.errors import ExplainError
from core.explain.method import Attribution, Method, Option
from core.explain.registry import METHOD_TITLES, METHODS, find_method
from core.explain.targets import ClassTarget, PredictedClass, RegionTarget

__all__ = [
    "METHODS", "METHOD_TITLES", "Attribution", "ClassTarget", "ExplainError", "Explanation",
    "ForwardModel", "Method", "Option", "PredictedClass", "RegionTarget", "ScoreModel",
    "as_score_model", "attribute", "black", "explain", "explain_input", "explainable",
    "find_method", "last_spatial_layer", "resolve_layer", "segmentation_layers",
    "spatial_layers",
]
