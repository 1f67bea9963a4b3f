"""A segmentation model seen as region scores: Seg-Grad-CAM's target (Vinogradova, Dibrov
and Myers 2020, https://arxiv.org/abs/2002.11434), the sum of one label's logits over a
set of pixels.

`RegionModel` wraps the segmentation model's `ScoreModel` and presents it to the methods
as a classifier whose class c scores sum_ij logits[i, j, c] * region[i, j]. The region
rides along as one more input (N, h, w) after the model's own: the methods already hold
every input but the image as given (noisy copies, points along a path, masked and
occluded images repeat it with the image), so every method sees the region that belongs
to its image, and the compiled functions take it as a tensor: a new region is a new
argument, not a new trace. The functions are traced once per model, kind and layer, as
the classifiers' are.

Gradient methods explain the logits summed over the region (the paper's target).
Perturbation methods (occlusion, RISE, Score-CAM) read `probabilities`, as they do for a
classifier: here the label's mean probability over the region, of the perturbed image.
With the logit sum there, Score-CAM gave an empty map on the test U-Net: every masked
image's sum was negative, and its ReLU left nothing.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from core.explain.backend.graph import score_model
from core.explain.backend.scores import (
    ForwardModel,
    ScoreModel,
    _batches,
    gradients_in_batches,
    guided_relu,
)
from core.explain.targets import region_probabilities, region_score, region_scores
from core.models.runtime.keras import as_arguments, compiled, signature


@dataclass
class RegionModel:
    """A segmentation Keras model (output (N, h, w, labels) softmax or (N, h, w, 1)
    sigmoid) as region scores; its inputs are the model's inputs, then the regions."""

    base: ScoreModel

    single = False  # a single sigmoid unit's two labels are already two columns

    @property
    def model(self):
        return self.base.model

    @property
    def image_input(self) -> int:
        return self.base.image_input

    @property
    def n_classes(self) -> int:
        return self.base.n_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.base.image_shape

    @property
    def gradients(self) -> bool:
        return True

    @property
    def specs(self) -> list:
        height, width, _ = self.image_shape
        return [*self.base.specs, ((height, width), np.float32)]

    def inputs(self, x, regions: np.ndarray) -> list[np.ndarray]:
        """The model's inputs in its order, then the regions (N, h, w)."""
        return [*self.base.inputs(x), np.asarray(regions, np.float32)]

    def _signature(self, with_target: bool):
        import tensorflow as tf

        height, width, _ = self.image_shape
        region = [tf.TensorSpec([None, height, width], tf.float32)]
        target = [tf.TensorSpec([None], tf.int32)] if with_target else []
        return signature(self.model) + region + target

    def _compile(self, key, build, guided: bool = False):
        return compiled(self.model, ("region", *key), build,
                        guided_relu if guided else nullcontext)

    def _call(self, fn, inputs, *extra):
        return self.base._call(fn, inputs, *extra)

    def scores(self, inputs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(N, labels) region scores: each label's logits summed over the image's region."""
        import tensorflow as tf

        single = self.base.single

        def build():
            model = score_model(self.model)

            @tf.function(input_signature=self._signature(False))
            def scores(*args):
                *x, region = args
                return region_scores(model(as_arguments(x), training=False), region, single)

            return scores

        fn = self._compile(("scores",), build)
        return np.concatenate([self._call(fn, part).numpy() for part in _batches(inputs, batch)])

    def probabilities(self, inputs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(N, labels) each label's mean probability over the image's region: what the
        perturbation methods compare (core.explain.targets.region_probabilities)."""
        import tensorflow as tf

        single, head = self.base.single, self.base.head

        def build():
            model = score_model(self.model)

            @tf.function(input_signature=self._signature(False))
            def probabilities(*args):
                *x, region = args
                logits = model(as_arguments(x), training=False)
                return region_probabilities(logits, region, head, single)

            return probabilities

        fn = self._compile(("probabilities",), build)
        return np.concatenate([self._call(fn, part).numpy() for part in _batches(inputs, batch)])

    def activations(self, inputs: list[np.ndarray], layer: str) -> np.ndarray:
        """Activations at `layer` (the regions play no part)."""
        return self.base.activations(inputs[:-1], layer)

    def layer_gradients(self, inputs: list[np.ndarray], target: np.ndarray, layer: str):
        """(activations A, dS/dA, region scores (N, labels)) at `layer`, where S is each
        image's region score of its target label."""
        import tensorflow as tf

        single = self.base.single

        def build():
            model = score_model(self.model, layer)

            @tf.function(input_signature=self._signature(True))
            def gradients(*args):
                *x, region, target = args
                with tf.GradientTape() as tape:
                    activations, logits = model(as_arguments(x), training=False)
                    score = region_score(logits, target, region, single)
                scores = region_scores(logits, region, single)
                return activations, tape.gradient(score, activations), scores

            return gradients

        fn = self._compile(("layer", layer), build)
        return tuple(t.numpy() for t in self._call(fn, inputs, target.astype(np.int32)))

    def input_gradients(self, inputs: list[np.ndarray], target: np.ndarray,
                        guided: bool = False, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(dS/dx on the image input, region scores), in batches of `batch` images."""
        import tensorflow as tf

        single, image = self.base.single, self.image_input

        def build():
            model = score_model(self.model)

            @tf.function(input_signature=self._signature(True))
            def gradients(*args):
                *x, region, target = args
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(x[image])
                    logits = model(as_arguments(x), training=False)
                    score = region_score(logits, target, region, single)
                return tape.gradient(score, x[image]), region_scores(logits, region, single)

            return gradients

        fn = self._compile(("input", guided), build, guided=guided)
        return gradients_in_batches(self._call, fn, inputs, target, batch)


@dataclass
class ForwardRegionModel:
    """A segmentation model known only by its forward pass (onnxruntime): its region
    score is the label's mean probability over the region, as the perturbation methods
    use on Keras models. Enough for occlusion and RISE."""

    base: ForwardModel

    image_input = 0
    single = False

    @property
    def n_classes(self) -> int:
        return 2 if self.base.n_classes == 1 else self.base.n_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.base.image_shape)

    @property
    def gradients(self) -> bool:
        return False

    def inputs(self, x, regions: np.ndarray) -> list[np.ndarray]:
        return [*self.base.inputs(x), np.asarray(regions, np.float32)]

    def scores(self, inputs: list[np.ndarray], batch: int = 32) -> np.ndarray:
        """(N, labels): each label's probability summed over the image's region."""
        out = []
        for image, region in _batches(inputs, batch):
            p = np.asarray(self.base.predict(image), np.float32)
            if self.base.n_classes == 1:  # one sigmoid unit: labels 0 and 1
                p = np.concatenate([1 - p, p], axis=-1)
            area = np.maximum(region.sum(axis=(1, 2)), 1.0)
            out.append(np.einsum("nhwc,nhw->nc", p, region) / area[:, None])
        return np.concatenate(out)

    def probabilities(self, inputs: list[np.ndarray], batch: int = 32) -> np.ndarray:
        return self.scores(inputs, batch)


def region_model(scores: ScoreModel | ForwardModel) -> RegionModel | ForwardRegionModel:
    """The region view of a segmentation model's scores (made once and kept on them: the
    compiled functions live on the Keras model anyway)."""
    kept = scores.__dict__.get("_regions")
    if kept is None:
        kept = (RegionModel(scores) if isinstance(scores, ScoreModel)
                else ForwardRegionModel(scores))
        scores.__dict__["_regions"] = kept
    return kept
