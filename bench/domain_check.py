"""The domain check (core/models/domain.py) measured: per model, the AUROC of in-domain
leave-one-out scores against images of other modalities MedLens can read offline, the
flag rates in and out of domain, each score alone, what it says on the cross-domain
cases of issue 13, and what the check costs per prediction.

    python bench/domain_check.py            # measure, print
    python bench/domain_check.py --write    # also write assets/domain/<model-id>.json
    python bench/domain_check.py --cost     # only the cost, in a fresh process (cold)

Other-modality images: the other models' samples, pydicom's and pydicom-data's test
files (CT, MR, CR, US, NM), nibabel's anatomical.nii. Brain MRIs from elsewhere (a head
MR, a brain NIfTI) are near the brain models' domain, not outside it: they are listed
for those models but left out of their AUROC. scikit-image and nilearn are not installed
in MedLens' environment: their images are not used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, so sys.path starts at bench/: put the repo first.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.models import card, cards, domain, load  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import StudyError, open_study  # noqa: E402

# (file, what it is); found with pydicom.data.get_testdata_file (pydicom and pydicom-data).
DICOM = (
    ("CT_small.dcm", "CT"), ("693_UNCR.dcm", "CT 512"), ("eCT_Supplemental.dcm", "CT"),
    ("MR_small.dcm", "MR (head?)"), ("emri_small.dcm", "MR head"),
    ("MR2_UNCR.dcm", "MR shoulder"), ("MR-SIEMENS-DICOM-WithOverlays.dcm", "MR abdomen"),
    ("RG1_UNCR.dcm", "CR adult chest"), ("RG1_UNCI.dcm", "CR adult chest"),
    ("RG1_J2KR.dcm", "CR adult chest"), ("RG1_J2KI.dcm", "CR adult chest"),
    ("RG3_UNCR.dcm", "CR lower leg"), ("RG3_J2KI.dcm", "CR lower leg"),
    ("US1_UNCR.dcm", "US"), ("OBXXXX1A.dcm", "US"), ("gdcm-US-ALOKA-16.dcm", "US"),
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", "US"), ("JPEG2000.dcm", "NM whole body"),
)
NEAR_BRAIN = {"MR_small.dcm", "emri_small.dcm", "anatomical.nii"}  # brain/head MRIs
BRAIN_MODELS = {"braintumor-xception", "braintumor-vgg16"}


def other_images() -> list[tuple[str, str, Path]]:
    """(name, kind, path) of every offline image that is not a model's own sample."""
    import nibabel
    from pydicom.data import get_testdata_file

    found = [(name, kind, Path(get_testdata_file(name))) for name, kind in DICOM]
    found.append(("anatomical.nii", "NIfTI brain T1",
                  Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"))
    return found


def batch_for(c, items) -> tuple[np.ndarray, list[str]]:
    arrays, names = [], []
    for name, path in items:
        try:
            arrays.append(domain.prepared(c, open_study(path, name=name)).batch)
            names.append(name)
        except StudyError as error:
            print(f"  skipped {name}: {error}")
    return np.concatenate(arrays), names


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score outside > score inside), ties half (Mann-Whitney U / (n m))."""
    diff = np.asarray(outside)[:, None] - np.asarray(inside)[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def measure(c, write: bool) -> None:
    cal = domain.calibrate_model(c)
    model = load(c.id, cal.runtime).keras_model
    own, _ = batch_for(c, [(s.name, s.path) for s in samples(c)])
    f_in, z_in = domain.features_and_logits(model, own)
    r_in = domain.loo_knn(domain.normalise(f_in), cal.k)
    e_in = domain.energy(z_in)
    s_in = domain.combine(r_in, e_in, cal.knn, cal.energy)

    others = other_images()
    own_paths = {s.path for s in samples(c)}
    seen = set(own_paths)
    for o in cards():  # the other models' samples, once each (the brain models share some)
        for s in samples(o):
            if s.path not in seen:
                seen.add(s.path)
                others.append((s.name, f"{o.id} sample", s.path))
    kinds = {n: k for n, k, _ in others}
    x_out, names = batch_for(c, [(n, p) for n, _, p in others])
    f_out, z_out = domain.features_and_logits(model, x_out)
    r_out = domain.knn_distance(domain.normalise(f_out), cal.bank, cal.k)
    e_out = domain.energy(z_out)
    s_out = cal.score(f_out, z_out)
    far = np.array([not (c.id in BRAIN_MODELS and n in NEAR_BRAIN) for n in names])

    print(f"\n{c.id} (features on {cal.runtime}; k={cal.k}; {len(s_in)} samples, "
          f"{far.sum()} other-modality images)")
    print(f"  threshold {cal.threshold:.3f} (largest in-domain LOO score)")
    print(f"  AUROC combined {auroc(s_in, s_out[far]):.3f} · kNN alone "
          f"{auroc(r_in, r_out[far]):.3f} · energy alone {auroc(e_in, e_out[far]):.3f}")
    held_out = []  # the sample left out of the threshold too: recalibrated without it
    for i in range(len(f_in)):
        keep = np.arange(len(f_in)) != i
        alone = domain.calibrate(c.id, "", cal.runtime, f_in[keep], z_in[keep], k=cal.k)
        held_out.append(alone.score(f_in[i:i + 1], z_in[i:i + 1])[0] > alone.threshold)
    print(f"  in domain, each sample held out of the calibration too: flagged "
          f"{sum(held_out)}/{len(held_out)}")
    flagged = s_out > cal.threshold
    print(f"  flagged: in domain (LOO) {np.mean(s_in > cal.threshold):.1%} · other "
          f"modalities {flagged[far].mean():.1%} ({flagged[far].sum()}/{far.sum()})")
    for name, score, flag, is_far in zip(names, s_out, flagged, far, strict=True):
        if not flag or not is_far:
            print(f"    {'not flagged' if not flag else 'flagged'}: {name} ({kinds[name]}) "
                  f"score {score:.2f}" + ("" if is_far else " [near domain, not counted]"))
    if write:
        domain.DOMAIN_DIR.mkdir(parents=True, exist_ok=True)
        path = domain.DOMAIN_DIR / f"{c.id}.json"
        path.write_text(json.dumps(cal.to_dict(), indent=1) + "\n", encoding="utf-8")
        domain._stored.cache_clear()
        print(f"  wrote {path.relative_to(ROOT)}")


def cross_domain() -> None:
    """The issue's cases, through the same calls the CLI and the pages make."""
    from pydicom.data import get_testdata_file

    brain = samples(card("braintumor-xception"))
    chest = samples(card("pneumonia-xception"))
    cases = [("brain MRI", brain, "pneumonia-xception"),
             ("chest X-ray", chest, "braintumor-xception"),
             ("chest X-ray", chest, "braintumor-vgg16"),
             ("chest X-ray", chest, "skinlesion-xception")]
    print("\ncross-domain cases")
    for what, items, model_id in cases:
        classifier = load(model_id)
        c = classifier.card
        results = [domain.check(classifier, domain.prepared(c, open_study(s.path, name=s.name)))
                   for s in items]
        flags = [r.in_domain is False for r in results]
        print(f"  {what} -> {model_id}: flagged {sum(flags)}/{len(flags)}; "
              f"e.g. {results[0].sentence()}")
    classifier = load("pneumonia-xception")
    for name in ("RG1_UNCR.dcm", "RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm"):
        study = open_study(get_testdata_file(name), name=name)
        r = domain.check(classifier, domain.prepared(classifier.card, study))
        print(f"  adult CR chest {name} -> pneumonia-xception: in_domain={r.in_domain} "
              f"score {r.score:.2f} threshold {r.threshold:.2f}")


def cost() -> None:
    """The check's time per prediction beside one prediction, warm, median of 10; and the
    first check's in the process (cold only with --cost, in a fresh process)."""
    print("\ncost per prediction (warm, median of 10)")
    for model_id in ("braintumor-xception", "pneumonia-xception", "braintumor-vgg16"):
        classifier = load(model_id)
        c = classifier.card
        x = domain.prepared(c, open_study(samples(c)[0].path))
        classifier.predict(x)
        start = time.perf_counter()
        domain.check(classifier, x)  # the first: traces the feature model (and loads a port)
        first = time.perf_counter() - start

        def median(fn) -> float:
            times = []
            for _ in range(10):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return sorted(times)[5]

        predict = median(lambda: classifier.predict(x))  # noqa: B023
        checked = median(lambda: domain.check(classifier, x))  # noqa: B023
        print(f"  {model_id} ({classifier.runtime}): predict {predict * 1000:.0f} ms, "
              f"check {checked * 1000:.0f} ms ({checked / predict:.2f}x); first check "
              f"in the process {first:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="write assets/domain/<model-id>.json for each checked model")
    parser.add_argument("--cost", action="store_true",
                        help="only the cost per prediction, first checks cold")
    args = parser.parse_args()
    if args.cost:
        cost()
        return
    for c in cards():
        if c.samples:
            measure(c, args.write)
        else:
            print(f"\n{c.id}: no labelled samples: its domain cannot be checked")
    cross_domain()
    cost()


if __name__ == "__main__":
    main()
