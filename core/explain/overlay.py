"""Heatmap over image: a map in [0, 1] coloured and blended onto the 8-bit picture."""

from __future__ import annotations

import cv2
import numpy as np

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "hot": cv2.COLORMAP_HOT,
}


def colourise(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A map in [0, 1] as an RGB uint8 picture."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap '{colormap}' (known: {', '.join(COLORMAPS)})")
    levels = np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4,
            colormap: str = "jet") -> np.ndarray:
    """Blend a coloured map onto an 8-bit grey or RGB image of the same size."""
    if image.shape[:2] != heatmap.shape:
        raise ValueError(f"image {image.shape[:2]} and map {heatmap.shape} differ in size")
    base = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    blended = (1 - opacity) * base.astype(np.float32) + opacity * colourise(heatmap, colormap)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
