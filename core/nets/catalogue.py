"""The architectures a class can build and train: what each is, which data it takes,
what a teacher can change, and its builder.

Importing this module imports no Keras: each builder is named as "module:function" and
imported when a model is built, and each module's `ABOUT` (plain words for a student) and
`OPTIONS` (what a teacher changes) are read from it when first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.options import Option, checked

KINDS = ("images", "masks", "volumes", "unlabelled")


@dataclass(frozen=True)
class Architecture:
    """One architecture. `size` is the default input size, (h, w) or (slices, h, w);
    `task` the built-in training task it takes by default; `builder` the
    "module:function" that builds it; `needs` what the trainer (not the teacher) must
    pass to `build`, e.g. the transfer model's backbone."""

    name: str
    title: str
    data: str
    size: tuple[int, ...]
    task: str
    paper: str
    builder: str
    needs: tuple[str, ...] = ()

    def _module(self) -> Any:
        return importlib.import_module(self.builder.split(":")[0])

    @property
    def about(self) -> str:
        """3-5 plain sentences: what it is, why the field uses it, what to watch for."""
        return self._module().ABOUT

    @property
    def options(self) -> dict[str, Option]:
        """What a teacher can change, with defaults and ranges."""
        return self._module().OPTIONS

    def build(self, input_shape: Sequence[int], classes: int, front: Sequence[Any] = (),
              **options: Any) -> Any:
        """The Keras model (for `dcgan`, the compiled GAN) for `input_shape` ((h, w) or
        (slices, h, w), with or without the channel) and `classes`; `options` are
        checked against `self.options` (ValueError, one line), `needs` passed through."""
        missing = [need for need in self.needs if options.get(need) is None]
        if missing:
            raise ValueError(f"{self.name}: needs {', '.join(missing)}")
        given = {name: options.pop(name) for name in self.needs}
        settings = checked(self.options, options, what=f"{self.name} option")
        shape = tuple(int(n) for n in input_shape)
        if len(shape) == len(self.size):
            shape = (*shape, 1)
        if len(shape) != len(self.size) + 1:
            raise ValueError(f"{self.name}: input shape {shape} is not "
                             f"{'(slices, h, w)' if len(self.size) == 3 else '(h, w)'}")
        module, function = self.builder.split(":")
        build = getattr(importlib.import_module(module), function)
        return build(shape, int(classes), front=tuple(front), **settings, **given)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture(
        "cnn", "Convolutional network (CNN)", "images", (32, 32), "brain-tissue-patches",
        "LeCun et al. 1998, Gradient-based learning applied to document recognition "
        "(http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf)", "core.nets.cnn:cnn"),
    Architecture(
        "transfer", "Transfer learning (ImageNet Xception)", "images", (72, 72),
        "brain-tissue-patches",
        "Yosinski et al. 2014, How transferable are features in deep neural networks? "
        "(https://arxiv.org/abs/1411.1792); Chollet 2017, Xception "
        "(https://arxiv.org/abs/1610.02357)", "core.nets.transfer:transfer",
        needs=("backbone",)),
    Architecture(
        "unet", "U-Net (segmentation)", "masks", (64, 64), "head-ct-slices",
        "Ronneberger, Fischer and Brox 2015, U-Net (https://arxiv.org/abs/1505.04597)",
        "core.nets.unet:unet"),
    Architecture(
        "vit", "Vision Transformer (ViT)", "images", (32, 32), "brain-tissue-patches",
        "Dosovitskiy et al. 2021, An image is worth 16x16 words "
        "(https://arxiv.org/abs/2010.11929)", "core.nets.vit:vit"),
    Architecture(
        "recurrent", "CNN + recurrent network with slice attention", "volumes",
        (8, 32, 32), "cerebellum-stacks",
        "Cho et al. 2014, GRU (https://arxiv.org/abs/1406.1078); Hochreiter and "
        "Schmidhuber 1997, LSTM; Ilse et al. 2018, attention-based pooling "
        "(https://arxiv.org/abs/1802.04712)", "core.nets.recurrent:recurrent"),
    Architecture(
        "cnn3d", "3-D convolutional network", "volumes", (8, 32, 32), "cerebellum-stacks",
        "Cicek et al. 2016, 3D U-Net (https://arxiv.org/abs/1606.06650); Tran et al. 2015, "
        "C3D (https://arxiv.org/abs/1412.0767)", "core.nets.cnn3d:cnn3d"),
    Architecture(
        "dcgan", "Generative adversarial network (DCGAN)", "unlabelled", (32, 32),
        "brain-slices",
        "Radford, Metz and Chintala 2015, DCGAN (https://arxiv.org/abs/1511.06434)",
        "core.nets.dcgan:dcgan"),
)}


def architecture(name: str) -> Architecture:
    """The architecture called `name`, or ValueError (one line naming the known ones)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture '{name}' (known: "
                         f"{', '.join(ARCHITECTURES)})") from None


def parameters(model: Any, trainable: bool = False) -> int:
    """How many numbers the model holds (all of them, or the trainable ones)."""
    weights = model.trainable_weights if trainable else model.weights
    total = 0
    for weight in weights:
        count = 1
        for n in weight.shape:
            count *= int(n)
        total += count
    return total
