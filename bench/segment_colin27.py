"""brain-tissue-unet on another brain: Colin27 (Debian mricron-data, BSD-3: one subject
scanned 27 times, brain-extracted `ch2bet.nii.gz`), against the AAL atlas drawn on the
same brain (`aal.nii.gz`: 116 grey-matter parcels, cortex, deep nuclei and cerebellum).

AAL is a parcellation, not a tissue segmentation (its parcels are generous at the grey-
white boundary), so this is no Dice against a ground truth: it says whether what the
model calls grey matter on a brain it never saw lies where an atlas puts grey matter.

    .venv/bin/python bench/segment_colin27.py

Prints the shares and one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TEMPLATES = Path("/usr/share/mricron/templates")


def main() -> int:
    from core import models
    from core.segment.metrics import dice
    from core.segment.run import segment
    from core.studies import open_study
    from core.studies.masks import fit, read_labels

    study = open_study(TEMPLATES / "ch2bet.nii.gz", name="ch2bet.nii.gz")
    atlas = fit(read_labels(TEMPLATES / "aal.nii.gz", name="aal.nii.gz"), study)
    result = segment(models.load("brain-tissue-unet"), study)
    grey, white = result.mask.labels == 1, result.mask.labels == 2
    parcels = atlas.labels > 0
    out = {
        "volumes_ml": {k: round(v, 1) for k, v in result.volumes_ml().items()},
        "atlas_called_grey": round(float((grey & parcels).sum() / parcels.sum()), 3),
        "atlas_called_white": round(float((white & parcels).sum() / parcels.sum()), 3),
        "grey_inside_atlas": round(float((grey & parcels).sum() / grey.sum()), 3),
        "dice_grey_vs_atlas": round(dice(grey, parcels), 3),
        "seconds": round(result.seconds, 2),
    }
    print(f"AAL grey-matter parcels called grey matter: {out['atlas_called_grey']:.1%}, "
          f"white matter: {out['atlas_called_white']:.1%}")
    print(f"predicted grey matter inside the parcels: {out['grey_inside_atlas']:.1%}; "
          f"Dice(grey matter, parcels) {out['dice_grey_vs_atlas']:.3f}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
