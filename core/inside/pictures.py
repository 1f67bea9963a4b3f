"""Pictures of what is inside a model: a grid of feature maps, one channel over the image,
kernels as tiles, a strip of generated images. Pure numpy and OpenCV: a page shows what
these return and computes nothing itself.

Each tile is scaled on its own (its min to its max): a grid of channels compares where
each channel fires, not how strongly; the numbers beside a tile say how strongly.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.explain.overlay import colourise, overlay

GAP = 2  # pixels between tiles, drawn in the page's background grey
GAP_GREY = 40


def scaled(values: np.ndarray) -> np.ndarray:
    """A 2-D array min-max scaled to [0, 1] (a constant one to 0)."""
    values = np.asarray(values, np.float32)
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high <= low else (values - low) / (high - low)


def tile(values: np.ndarray, size: int, colormap: str = "viridis") -> np.ndarray:
    """One 2-D map as a size x size RGB tile, nearest neighbour (each unit stays a square:
    a 5x5 map shows 25 units, not a blur)."""
    picture = colourise(scaled(values), colormap)
    return cv2.resize(picture, (size, size), interpolation=cv2.INTER_NEAREST)


def mosaic(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Equal RGB tiles in rows of `columns`, GAP pixels apart."""
    if not tiles:
        raise ValueError("no tiles to draw")
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (h + GAP) - GAP, columns * (w + GAP) - GAP, 3), GAP_GREY, np.uint8)
    for i, picture in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + GAP):r * (h + GAP) + h, c * (w + GAP):c * (w + GAP) + w] = picture
    return out


def channel_grid(maps: np.ndarray, channels: np.ndarray, columns: int = 8, size: int = 96,
                 colormap: str = "viridis") -> np.ndarray:
    """The feature maps (C, h, w) of `channels`, in that order, as one picture."""
    return mosaic([tile(maps[int(c)], size, colormap) for c in channels], columns)


def channel_over(seen: np.ndarray, channel: np.ndarray, opacity: float = 0.5,
                 colormap: str = "jet") -> np.ndarray:
    """One channel (h, w), scaled to [0, 1] and resized bilinearly to the picture the model
    saw, blended over it: where in the image the channel fires."""
    height, width = seen.shape[:2]
    values = cv2.resize(scaled(channel), (width, height), interpolation=cv2.INTER_LINEAR)
    return overlay(seen, np.clip(values, 0, 1), opacity, colormap)


def kernel_grid(pictures: np.ndarray, columns: int = 8, size: int = 48) -> np.ndarray:
    """Kernels as pictures (C, kh, kw, 1 or 3) in [0, 1] (grey = 0: see
    `core.inside.filters.kernel_pictures`) as one picture of size x size tiles."""
    tiles = []
    for picture in pictures:
        rgb = picture if picture.shape[-1] == 3 else np.repeat(picture, 3, axis=-1)
        rgb = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        tiles.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_NEAREST))
    return mosaic(tiles, columns)


def strip(images: np.ndarray, size: int = 96) -> np.ndarray:
    """Generated images (n, h, w) or (n, h, w, c), uint8, side by side."""
    tiles = []
    for picture in images:
        rgb = picture if picture.ndim == 3 and picture.shape[-1] == 3 else \
            np.repeat(picture.reshape(picture.shape[:2])[..., None], 3, axis=-1)
        tiles.append(cv2.resize(np.asarray(rgb, np.uint8), (size, size),
                                interpolation=cv2.INTER_NEAREST))
    return mosaic(tiles, len(tiles))


def field_over(seen: np.ndarray, box: tuple[int, int, int, int],
               colour: tuple[int, int, int] = (255, 82, 82)) -> np.ndarray:
    """The picture the model saw with one unit's receptive field drawn on it: `box` is
    (top, left, bottom, right), bottom and right exclusive, in input pixels
    (`core.inside.graph.Receptive.box`); outside it the picture is dimmed."""
    out = (np.asarray(seen, np.float32) * 0.45).astype(np.uint8)
    top, left, bottom, right = box
    out[top:bottom, left:right] = seen[top:bottom, left:right]
    thickness = max(1, round(max(seen.shape[:2]) / 150))
    cv2.rectangle(out, (left, top), (max(left, right - 1), max(top, bottom - 1)), colour,
                  thickness)
    return out
