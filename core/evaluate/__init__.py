"""How well a model does on a labelled set: accuracy, per-class scores, the confusion
matrix, one-vs-rest ROC curves and calibration, in numpy.

- `sets`: labelled sets (built-in samples, folders, zips, uploads) and label matching;
- `metrics`: the classification measures;
- `run`: a model on a set (`evaluate`), several (`evaluate_models`), one image explained;
- `text`: the terminal summary;
- `trust`: which explanation method to believe for a model (ROAD per method over a set).

Reading a set never imports TensorFlow: it is checked before a model is loaded.
"""

from core.evaluate.metrics import (
    BINS,
    ClassScores,
    Reliability,
    class_scores,
    confusion_matrix,
    reliability,
    roc_auc,
    roc_curve,
)
from core.evaluate.run import BATCH, Evaluation, Scoreboard, evaluate, evaluate_models, explain_row
from core.evaluate.sets import (
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    MAX_SET_BYTES,
    SET_LIMITS,
    EvaluationError,
    LabelledImage,
    LabelledSet,
    Skipped,
    from_files,
    from_folder,
    from_samples,
    from_zip,
    match_labels,
    open_set,
)
from core.evaluate.text import summary
from core.evaluate.trust import MethodTrust, Trust, trust

__all__ = [
    "BATCH", "BINS", "MAX_IMAGES", "MAX_IMAGE_BYTES", "MAX_SET_BYTES", "ClassScores",
    "Evaluation", "EvaluationError", "LabelledImage", "LabelledSet", "MethodTrust",
    "Reliability", "Trust",
    "SET_LIMITS", "Scoreboard", "Skipped", "class_scores", "confusion_matrix", "evaluate",
    "evaluate_models", "explain_row", "from_files", "from_folder", "from_samples",
    "from_zip", "match_labels", "open_set", "reliability", "roc_auc", "roc_curve", "summary",
    "trust",
]
