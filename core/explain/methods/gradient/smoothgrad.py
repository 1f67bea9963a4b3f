"""SmoothGrad.

Smilkov, Thorat, Kim, Viegas and Wattenberg, "SmoothGrad: removing noise by adding
noise", 2017. https://arxiv.org/abs/1706.03825
"""

from __future__ import annotations

import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.maps import channel_magnitude
from core.explain.method import Attribution, Method, Option, image_of, repeated
from core.progress import report


class SmoothGrad(Method):
    name = "smoothgrad"
    title = "SmoothGrad"
    paper = "https://arxiv.org/abs/1706.03825"
    options = {
        "samples": Option(20, "noisy copies averaged", int, 1, 1000),
        "noise": Option(0.15, "noise sigma as a fraction of the image's value range",
                        float, 0.0, 1.0),
        "seed": Option(0, "random seed (the same seed gives the same map)", int),
    }

    def attribute(self, model, inputs, target, layer, progress, *, samples, noise,
                  seed) -> Attribution:
        target = known_targets(model, inputs, target)
        rng = np.random.default_rng(seed)
        image = image_of(model, inputs)
        total = np.zeros(image.shape, np.float32)
        # Noisy copies of every image in batches of up to 32 gradient passes.
        per_batch = max(1, 32 // len(image))
        done = 0
        while done < samples:
            n = min(per_batch, samples - done)
            sigma = noise * (image.max(axis=(1, 2, 3)) - image.min(axis=(1, 2, 3)))
            noisy = np.concatenate([
                image + rng.normal(size=image.shape).astype(np.float32)
                * sigma[:, None, None, None] for _ in range(n)
            ])
            gradients, _ = model.input_gradients(repeated(model, inputs, noisy, n),
                                                 np.tile(target, n))
            total += gradients.reshape(n, *image.shape).sum(axis=0)
            done += n
            report(progress, done / samples, f"SmoothGrad: {done} of {samples} samples")
        # Eq. 3: M^_c(x) = 1/n sum_1^n M_c(x + N(0, sigma^2)), the gradients averaged and
        # then reduced to one map as in vanilla saliency.
        return Attribution(channel_magnitude(total / samples), target)
