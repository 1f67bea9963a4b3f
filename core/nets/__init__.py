"""The field's architectures, built with Keras: what MedLens trains (and, in a classroom,
what students build and look inside)."""

from core.nets.unet import unet

__all__ = ["unet"]
