"""Time of the Inside page's attention views (core.inside.attention) on one image, warm
(one untimed call first: tracing), median of 21 calls: `attention_maps`, `rollout` (from
those maps), `gradient_rollout`, `mean_distance`, on the tiny ViT of
tests/unit/test_attention.py (16x16x1, patch 4, dim 32, depth 2, 2 heads) and on a ViT at
the Train page's recipe size (32x32x1, patch 4, default options: dim 64, depth 4, 4
heads), untrained (timing needs no trained weights), with one forward pass for scale.

    .venv/bin/python bench/attention_speed.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.inside import attention  # noqa: E402
from core.models.runtime.keras import forward_function, import_tensorflow  # noqa: E402
from core.nets.vit import vit  # noqa: E402

VITS = {
    "tiny (16x16x1, patch 4, dim 32, depth 2, 2 heads)": ((16, 16, 1), 2,
                                                          {"dim": 32, "depth": 2, "heads": 2,
                                                           "mlp": 64}),
    "recipe (32x32x1, patch 4, dim 64, depth 4, 4 heads)": ((32, 32, 1), 3, {}),
}


def median_ms(fn, repeats: int = 21) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def views(shape, classes: int, options: dict) -> dict[str, float]:
    """ms of a forward pass and of each view, on one image of an untrained ViT."""
    tf = import_tensorflow()
    model = vit(shape, classes, patch=4, **options)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    forward = forward_function(model)
    maps = attention.attention_maps(model, x)
    return {
        "forward": median_ms(lambda: forward(tf.constant(x[None])).numpy()),
        "attention_maps": median_ms(lambda: attention.attention_maps(model, x)),
        "rollout": median_ms(lambda: attention.rollout(maps)),
        "gradient_rollout": median_ms(lambda: attention.gradient_rollout(model, x)),
        "mean_distance": median_ms(lambda: attention.mean_distance(model, maps, 4)),
    }


def main() -> int:
    out = {}
    for name, (shape, classes, options) in VITS.items():
        out[name] = views(shape, classes, options)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in out[name].items()))
    print(json.dumps({k: {m: round(v, 2) for m, v in d.items()} for k, d in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
