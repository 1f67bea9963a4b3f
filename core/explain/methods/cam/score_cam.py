"""Score-CAM, and its faster top-N-channel variant.

Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
Networks", CVPR workshops 2020. https://arxiv.org/abs/1910.01279
Faster Score-CAM (only the N channels of highest variance) as in tf-keras-vis'
`ScoreCAM(max_N=...)`.
"""

from __future__ import annotations

import numpy as np

from core.explain.backend.scores import known_targets
from core.explain.maps import resize_maps
from core.explain.method import Attribution, Method, Option, image_of, target_probability
from core.progress import report


class ScoreCAM(Method):
    name = "scorecam"
    title = "Score-CAM"
    paper = "https://arxiv.org/abs/1910.01279"
    uses_layer = True
    options = {
        "max_channels": Option(32, "channels of highest variance to score (0: all "
                                   "channels, one forward pass each)", int, 0),
        "batch": Option(32, "masked images per forward pass", int, 1, 512),
    }

    def attribute(self, model, inputs, target, layer, progress, *, max_channels,
                  batch) -> Attribution:
        target = known_targets(model, inputs, target)
        image = image_of(model, inputs)
        activations = model.activations(inputs, layer)  # (N, h, w, K)
        maps = []
        for n in range(len(image)):
            a = activations[n]
            channels = np.arange(a.shape[-1])
            if max_channels and max_channels < len(channels):
                variance = a.reshape(-1, a.shape[-1]).var(axis=0)
                channels = np.sort(np.argsort(variance)[::-1][:max_channels])
            # Eq. 3: H^k = s(Up(A^k)), each upsampled channel normalised to [0, 1].
            masks = resize_maps(np.moveaxis(a[..., channels], -1, 0),
                                image.shape[1], image.shape[2])
            low = masks.min(axis=(1, 2), keepdims=True)
            high = masks.max(axis=(1, 2), keepdims=True)
            masks = np.where(high > low, (masks - low) / np.where(high > low, high - low, 1),
                             0)
            scores = np.zeros(len(channels), np.float32)
            one = [x[n:n + 1] for x in inputs]
            for start in range(0, len(channels), batch):
                part = masks[start:start + batch]
                masked = image[n:n + 1] * part[..., None]
                # Eq. 4: C(A^k) = f^c(X o H^k), the class probability of the masked image.
                scores[start:start + len(part)] = target_probability(
                    model, one, target[n], batch, images=masked)
                report(progress, (n + (start + len(part)) / len(channels)) / len(image),
                       f"Score-CAM: {start + len(part)} of {len(channels)} channels")
            # Eq. 5: L^c = ReLU(sum_k alpha^c_k A^k) with alpha^c_k = C(A^k)
            maps.append(np.maximum(np.tensordot(a[..., channels], scores, axes=([-1], [0])),
                                   0))
        return Attribution(np.stack(maps), target, info={"channels": int(len(channels)),
                                                 "of_channels": int(activations.shape[-1])})
