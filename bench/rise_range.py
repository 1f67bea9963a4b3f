"""RISE on braintumor-xception: each map's dynamic range (max - min, 1st..99th percentile,
at the model input; core.explain.maps.dynamic_range) and its deletion/insertion AUCs
against random maps (16 steps, 2 random maps).

    PYTHONPATH=. .venv/bin/python bench/rise_range.py Te-me_0016.jpg Te-gl_0010.jpg
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core import models  # noqa: E402
from core.explain import black, explain_input  # noqa: E402
from core.explain.maps import dynamic_range  # noqa: E402
from core.explain.metrics.faithfulness import faithfulness  # noqa: E402
from core.models.inputs import prepare  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import open_study  # noqa: E402


def main(names: list[str]) -> int:
    classifier = models.load("braintumor-xception")
    for name in names:
        sample = next(s for s in samples(classifier.card) if s.name == name)
        model_input = prepare(open_study(sample.path), classifier.card.input_spec)
        start = time.perf_counter()
        e = explain_input(classifier, model_input, "rise")
        m = e.input_map
        p1, p99 = np.percentile(m, [1, 99])
        f = faithfulness(classifier, model_input.inputs, m, target=e.target,
                         baseline=black(classifier.card.input_spec), steps=16, random_maps=2)
        print(f"{name} {e.label} {time.perf_counter() - start:.1f}s "
              f"max-min={m.max() - m.min():.3f} p1..p99={p1:.3f}..{p99:.3f} "
              f"dynamic_range={dynamic_range(m):.3f} flat={e.flat} "
              f"deletion={f.deletion_auc:.3f} (random {f.random_deletion_auc:.3f}) "
              f"insertion={f.insertion_auc:.3f} (random {f.random_insertion_auc:.3f})",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["Te-me_0016.jpg", "Te-gl_0010.jpg"]))
