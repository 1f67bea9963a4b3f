"""Evidence whether to trust a map: does it follow the model (`faithfulness`, with ROAD
as its headline in `road`), does it change when the model does (`sanity`), does it find
the lesion (`localisation`: the pointing games against a mask), and how far two maps
agree (`agreement`)."""

from core.explain.metrics.agreement import TOP_FRACTION, agreement, constant, spearman, top_region
from core.explain.metrics.faithfulness import (
    BLUR_KERNEL,
    BLUR_SIGMA,
    INTERACTIVE,
    Faithfulness,
    faithfulness,
)
from core.explain.metrics.localisation import (
    POINTING_TOLERANCE,
    Localisation,
    energy_pointing_game,
    localisation,
    localisation_report,
    pointing_game,
    random_hit,
    uniform_energy,
)
from core.explain.metrics.road import (
    PERCENTILES,
    SEEDS,
    VERDICTS,
    Road,
    RoadReport,
    bootstrap_mean,
    impute,
    layer_grid,
    resolution,
    road_report,
    verdict,
)
from core.explain.metrics.sanity import SanityCheck, sanity_check

__all__ = [
    "PERCENTILES", "SEEDS", "VERDICTS", "Road", "RoadReport", "bootstrap_mean", "impute",
    "layer_grid", "resolution", "road_report", "verdict",
    "BLUR_KERNEL", "BLUR_SIGMA", "INTERACTIVE", "POINTING_TOLERANCE", "TOP_FRACTION",
    "Faithfulness", "Localisation", "SanityCheck", "agreement", "constant", "faithfulness",
    "localisation", "sanity_check", "spearman", "top_region",
    "energy_pointing_game", "localisation_report", "pointing_game", "random_hit",
    "uniform_energy",
]
