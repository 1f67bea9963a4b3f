"""Do the maps deserve trust? Grad-CAM's deletion/insertion AUCs against random maps on
all 17 labelled tumour samples, and the cascading-randomisation sanity check of
Grad-CAM and Guided Backprop on one of them.

    .venv/bin/python bench/trust_survey.py [--sample Te-gl_0010.jpg] [--skip-faithfulness]

For each sample: the predicted class and its probability, Grad-CAM's deletion and
insertion AUC (`core.explain.metrics.faithfulness` defaults: 32 steps, black baseline),
the same for 3 per-pixel noise maps (the random baseline the CLI's --metrics reports),
for noise on Grad-CAM's own 5x5 grid, and for the inverted map. Then the counts, the
two sanity-check curves (all layers, seed 0) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import models  # noqa: E402
from core.explain import black, explain  # noqa: E402
from core.explain.metrics import faithfulness, sanity_check  # noqa: E402
from core.models.inputs import prepare  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import open_study  # noqa: E402

MODEL = "braintumor-xception"


def survey(classifier) -> dict:
    model, c = classifier.keras_model, classifier.card
    baseline = black(c.input_spec)
    rows = []
    print(f"{'sample':16} {'predicted':10} {'p':>5} | deletion: {'map':>5} {'rnd':>5} "
          f"{'rnd5':>5} {'inv':>5} | insertion: {'map':>5} {'rnd':>5} {'rnd5':>5} {'inv':>5}")
    for s in samples(c):
        x = prepare(open_study(s.path), c.input_spec).array
        p = classifier.probabilities(x[None])[0]
        saliency = explain(model, x[None], "gradcam")[0]
        f = faithfulness(model, x, saliency, baseline=baseline)
        grid = faithfulness(model, x, saliency, baseline=baseline, random_cells=5)
        inverse = faithfulness(model, x, 1 - saliency, baseline=baseline, random_maps=1)
        rows.append({"sample": s.name, "label": s.label, "predicted": c.labels[p.argmax()],
                     "empty": bool(saliency.max() == 0), **f.to_dict(),
                     "random5_deletion_auc": grid.random_deletion_auc,
                     "random5_insertion_auc": grid.random_insertion_auc,
                     "inverse_deletion_auc": inverse.deletion_auc,
                     "inverse_insertion_auc": inverse.insertion_auc})
        print(f"{s.name:16} {c.labels[p.argmax()]:10} {p.max():5.2f} | {'':9} "
              f"{f.deletion_auc:5.3f} {f.random_deletion_auc:5.3f} "
              f"{grid.random_deletion_auc:5.3f} {inverse.deletion_auc:5.3f} | {'':10} "
              f"{f.insertion_auc:5.3f} {f.random_insertion_auc:5.3f} "
              f"{grid.random_insertion_auc:5.3f} {inverse.insertion_auc:5.3f}", flush=True)

    def count(test) -> int:
        return sum(bool(test(r)) for r in rows)

    counts = {
        "deletion_below_random": count(lambda r: r["deletion_auc"] < r["random_deletion_auc"]),
        "insertion_above_random": count(
            lambda r: r["insertion_auc"] > r["random_insertion_auc"]),
        "deletion_below_random5": count(
            lambda r: r["deletion_auc"] < r["random5_deletion_auc"]),
        "insertion_above_random5": count(
            lambda r: r["insertion_auc"] > r["random5_insertion_auc"]),
        "deletion_below_inverse": count(
            lambda r: r["deletion_auc"] < r["inverse_deletion_auc"]),
        "insertion_above_inverse": count(
            lambda r: r["insertion_auc"] > r["inverse_insertion_auc"]),
    }
    for key, value in counts.items():
        print(f"{key.replace('_', ' ')}: {value} of {len(rows)}")
    return {"samples": rows, "counts": counts}


def sanity(classifier, name: str) -> dict:
    c = classifier.card
    sample = next(s for s in samples(c) if s.name == name)
    x = prepare(open_study(sample.path), c.input_spec).array
    found = {}
    for method in ("gradcam", "guided-backprop"):
        check = sanity_check(classifier.keras_model, x, method)
        print(f"\n{method} on {name}, cascading randomisation ({check.seconds:.1f} s):")
        for layer, rho, empty in zip(check.layers, check.spearman, check.empty, strict=True):
            print(f"  {layer:34} rho {rho:6.3f}{'  (empty map)' if empty else ''}")
        found[method] = {**check.to_dict(), "empty": check.empty,
                         "seconds": round(check.seconds, 1)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="Te-gl_0010.jpg")
    parser.add_argument("--skip-faithfulness", action="store_true")
    args = parser.parse_args()
    classifier = models.load(MODEL)
    start = time.perf_counter()
    result = {"model": MODEL}
    if not args.skip_faithfulness:
        result["faithfulness"] = survey(classifier)
    result["sanity"] = sanity(classifier, args.sample)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
