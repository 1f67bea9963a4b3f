"""Integrated Gradients.

Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
https://arxiv.org/abs/1703.01365
"""

from __future__ import annotations

import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.method import Attribution, Method, Option, image_of, repeated
from core.progress import report


class IntegratedGradients(Method):
    name = "integrated-gradients"
    title = "Integrated Gradients"
    paper = "https://arxiv.org/abs/1703.01365"
    options = {
        "steps": Option(128, "points on the straight path from the baseline to the image "
                            "(denser near the baseline)", int, 2, 2048),
        "baseline": Option(0.0, "the reference image: one value in model-input units "
                                "(the app passes black) or an array of the image's shape",
                           float),
    }

    def attribute(self, model, inputs, target, layer, progress, *, steps,
                  baseline) -> Attribution:
        target = known_targets(model, inputs, target)
        image = image_of(model, inputs)
        reference = np.broadcast_to(np.asarray(baseline, np.float32), image.shape)
        # The trapezoidal rule in u with alpha = u^3: points crowd towards the baseline,
        # where the score bends hardest (on the Xception, from black, the slope swings
        # from -650 to +250 for alpha in 0.008-0.016). Measured on 4 tumour samples at
        # 128 steps: completeness error 0.4-1.3% this way, 0.9-7.0% with equal steps or
        # Gauss-Legendre nodes. On Te-gl_0010: 64 steps 12.7%, 128 0.72%, 256 0.07%.
        u = np.linspace(0.0, 1.0, steps + 1)
        alphas = (u**3).astype(np.float32)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] /= 2
        weights = (weights * 3 * u**2).astype(np.float32)  # d alpha = 3 u^2 du
        integral = np.zeros(image.shape, np.float32)
        path_scores = []
        per_batch = max(1, 32 // len(image))
        for start in range(0, len(alphas), per_batch):
            chunk = alphas[start:start + per_batch]
            points = np.concatenate([reference + a * (image - reference) for a in chunk])
            gradients, scores = model.input_gradients(
                repeated(model, inputs, points, len(chunk)), np.tile(target, len(chunk)))
            gradients = gradients.reshape(len(chunk), *image.shape)
            integral += np.tensordot(weights[start:start + len(chunk)], gradients, axes=1)
            path_scores.append(scores.reshape(len(chunk), len(image), -1))
            report(progress, min(start + per_batch, len(alphas)) / len(alphas),
                   f"Integrated Gradients: {min(start + per_batch, len(alphas))} of "
                   f"{len(alphas)} points")
        # Eq. 1: IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da
        attributions = (image - reference) * integral
        scores = np.concatenate(path_scores)
        rows = np.arange(len(image))
        index = np.asarray(target) if not model.single else np.zeros(len(image), int)
        sign = np.where(np.asarray(target) == 0, -1.0, 1.0) if model.single else 1.0
        change = sign * (scores[-1, rows, index] - scores[0, rows, index])
        # Completeness (Prop. 1): sum_i IG_i(x) = F(x) - F(x'); the relative gap measures
        # how well `steps` approximated the integral.
        total = attributions.reshape(len(image), -1).sum(axis=1)
        error = np.abs(total - change) / np.maximum(np.abs(change), 1e-12)
        return Attribution(
            np.abs(attributions.sum(axis=-1)), target,
            info={"completeness_error": [float(e) for e in error],
                  "score_change": [float(c) for c in change],
                  "attribution_sum": [float(t) for t in total]},
        )
