"""How a convolution, a max pooling and a softmax compute, one number at a time, for
teaching (CNN Explainer's interactive formula view: Wang et al. 2020, "CNN Explainer:
Learning Convolutional Neural Networks with Interactive Visualization",
https://arxiv.org/abs/2004.15004).

Pure numpy, "valid" padding, stride 1 (convolution) or the pool size (pooling), as Keras
computes them (Conv2D is a cross-correlation: the kernel is not flipped):

    out[r, c] = bias + sum_{i, j, k} x[r + i, c + j, k] * kernel[i, j, k]
    pool[r, c] = max_{i, j} x[r * s + i, c * s + j]
    softmax(z)_i = exp(z_i - max z) / sum_j exp(z_j - max z)

`first_layer_patch` cuts a small patch of a real model input with the first
convolution's kernel, so the numbers shown are the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Cell:
    """One output cell of a convolution: the window it reads, the kernel, their
    element-wise products, and the sum that makes the output."""

    window: np.ndarray  # (kh, kw, c_in)
    kernel: np.ndarray  # (kh, kw, c_in)
    products: np.ndarray  # window * kernel
    total: float  # sum of the products
    bias: float
    output: float  # total + bias: the layer's output before its activation
    relu: float  # max(output, 0)


@dataclass(frozen=True)
class PoolCell:
    """One output cell of a max pooling: the window and where its maximum is."""

    window: np.ndarray  # (ph, pw)
    output: float
    argmax: tuple[int, int]  # (row, col) inside the window


def _channels(patch: np.ndarray) -> np.ndarray:
    patch = np.asarray(patch, np.float64)
    return patch[..., None] if patch.ndim == 2 else patch


def _kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim == 2:
        kernel = kernel[..., None]
    if kernel.shape[-1] != channels:
        raise ValueError(f"kernel has {kernel.shape[-1]} input channels, the patch {channels}")
    return kernel


def convolution_cell(patch: np.ndarray, kernel: np.ndarray, bias: float, row: int,
                     col: int) -> Cell:
    """The output at (row, col) of a valid, stride-1 convolution of `patch` (H, W) or
    (H, W, C_in) with `kernel` (kh, kw[, C_in]), every multiply-add kept."""
    x = _channels(patch)
    k = _kernel(kernel, x.shape[-1])
    kh, kw = k.shape[:2]
    rows, cols = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"cell ({row}, {col}) is outside the {rows}x{cols} output")
    window = x[row:row + kh, col:col + kw]
    products = window * k
    total = float(products.sum())
    output = total + float(bias)
    return Cell(window=window, kernel=k, products=products, total=total, bias=float(bias),
                output=output, relu=max(output, 0.0))


def convolve(patch: np.ndarray, kernel: np.ndarray, bias: float = 0.0) -> np.ndarray:
    """Every output of the valid, stride-1 convolution: (H - kh + 1, W - kw + 1)."""
    x = _channels(patch)
    k = _kernel(kernel, x.shape[-1])
    kh, kw = k.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))
    # windows: (rows, cols, C_in, kh, kw)
    return np.einsum("rckij,ijk->rc", windows, k) + float(bias)


def pool_cell(patch: np.ndarray, row: int, col: int, size: int = 2,
              stride: int | None = None) -> PoolCell:
    """The output at (row, col) of a valid max pooling of one channel (H, W)."""
    x = np.asarray(patch, np.float64)
    if x.ndim != 2:
        raise ValueError(f"max pooling is shown one channel at a time: (H, W), got {x.shape}")
    stride = stride or size
    rows, cols = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"cell ({row}, {col}) is outside the {rows}x{cols} output")
    window = x[row * stride:row * stride + size, col * stride:col * stride + size]
    where = np.unravel_index(int(np.argmax(window)), window.shape)
    return PoolCell(window=window, output=float(window.max()),
                    argmax=(int(where[0]), int(where[1])))


def max_pool(patch: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Every output of a valid max pooling of (H, W) (or (H, W, C), channel by channel)."""
    x = np.asarray(patch, np.float64)
    stride = stride or size
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))
    return windows[::stride, ::stride].max(axis=(-2, -1))


def softmax_steps(logits: np.ndarray) -> dict[str, np.ndarray | float]:
    """The softmax one step at a time: the logits, shifted by their maximum (the same
    result, no overflow), exponentiated, their total, and the probabilities."""
    z = np.asarray(logits, np.float64).reshape(-1)
    shifted = z - z.max()
    exp = np.exp(shifted)
    total = float(exp.sum())
    return {"logits": z, "shifted": shifted, "exp": exp, "total": total,
            "probabilities": exp / total}


@dataclass(frozen=True)
class Patch:
    """A patch of a real model input, the first convolution's kernel for one output
    channel, and that layer's real output at the cells the patch covers."""

    layer: str
    patch: np.ndarray  # (size, size, C_in) of the model input, in its scale
    kernel: np.ndarray  # (kh, kw, C_in)
    bias: float
    channel: int
    top_left: tuple[int, int]  # (row, col) of the patch in the model input
    stride: tuple[int, int]
    activation: str  # the layer's own activation ("linear" for Xception's block1_conv1)
    # The layer's real output (after its activation), for channel `channel`, at the
    # windows of the patch that the layer itself computes: patch window (i * sh, j * sw)
    # is real cell (first[0] + i, first[1] + j).
    expected: np.ndarray
    first: tuple[int, int]
    # The layer's whole output for channel `channel` (h_out, w_out): what pooling is
    # shown on, so the page need not run the layer again.
    output: np.ndarray

    def computed(self) -> np.ndarray:
        """`convolve` over the patch at the windows the layer computes (its stride), before
        the activation: compare `activate(computed())` with `expected`."""
        return convolve(self.patch, self.kernel, self.bias)[::self.stride[0], ::self.stride[1]]


def first_layer_patch(model, x: Any, size: int = 8, centre: tuple[int, int] | None = None,
                      channel: int = 0) -> Patch:
    """A `size` x `size` patch of the model input `x` (unbatched; the image of a
    two-input model first) near `centre` (default: the middle), with the first
    convolution's kernel for output `channel` and its bias, and the layer's real output
    (the model run on the whole input) at the cells the patch covers, so the numbers the
    teaching view computes can be checked against the model's own.

    The layer is the first Conv2D among the spatial layers (nested backbones included).
    The patch is placed so its windows line up with the layer's (its stride and padding)."""
    from core.explain.backend.graph import spatial_layers
    from core.inside.features import feature_maps

    inputs = x if isinstance(x, list | tuple) else [x]
    image = np.asarray(inputs[0], np.float32)
    path, layer = _first_conv(model, spatial_layers(model))
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], np.float32)  # (kh, kw, C_in, C_out)
    if not 0 <= channel < kernel.shape[-1]:
        raise ValueError(f"channel {channel} is out of range: {path} has "
                         f"{kernel.shape[-1]} filters")
    if tuple(layer.dilation_rate) != (1, 1):
        raise ValueError(f"{path} is dilated: the teaching view shows plain convolutions")
    bias = float(weights[1][channel]) if layer.use_bias else 0.0
    (kh, kw), (sh, sw) = kernel.shape[:2], tuple(layer.strides)
    height, width = image.shape[:2]
    size = int(min(size, height, width))
    if size < max(kh, kw):
        raise ValueError(f"a {size}x{size} patch is smaller than the {kh}x{kw} kernel")
    # The layer's real output, through the probe feature maps keep per model (channel
    # axis back to the end).
    real = np.moveaxis(feature_maps(model, x, path), 0, -1)
    # Where the layer's windows start: cell r reads input rows r * s - pad_top onwards
    # (TensorFlow's "same" padding puts the odd pixel at the bottom/right).
    pads = [0, 0]
    if layer.padding == "same":
        for axis, (n, k, s) in enumerate(((height, kh, sh), (width, kw, sw))):
            out = -(-n // s)
            pads[axis] = max((out - 1) * s + k - n, 0) // 2
    row, col = centre or (height // 2, width // 2)
    corner = []
    for n, p, s, want in ((height, pads[0], sh, row), (width, pads[1], sw, col)):
        # the first cell whose window lies wholly inside the image, then aligned to `want`
        lowest = -(-p // s)
        cell = max(lowest, (want - size // 2 + p) // s)
        while cell > lowest and cell * s - p + size > n:
            cell -= 1
        corner.append(cell)
    top, left = corner[0] * sh - pads[0], corner[1] * sw - pads[1]
    patch = image[top:top + size, left:left + size]
    rows, cols = (patch.shape[0] - kh) // sh + 1, (patch.shape[1] - kw) // sw + 1
    expected = real[corner[0]:corner[0] + rows, corner[1]:corner[1] + cols, channel]
    activation = getattr(layer.activation, "__name__", str(layer.activation))
    return Patch(layer=path, patch=patch, kernel=kernel[..., channel], bias=bias,
                 channel=int(channel), top_left=(int(top), int(left)), stride=(sh, sw),
                 activation=activation, expected=expected,
                 first=(int(corner[0]), int(corner[1])),
                 output=np.ascontiguousarray(real[..., channel]))


def _first_conv(model, paths: list[str]):
    """(path, layer) of the first Conv2D among the spatial layers, in graph order."""
    for path in paths:
        layer = model
        for name in path.split("/"):
            layer = layer.get_layer(name)
        if layer.__class__.__name__ == "Conv2D":
            return path, layer
    raise ValueError("the model has no Conv2D layer")


# -- the same numbers as words: what a page shows under the cursor ---------------------------

ACTIVATIONS = {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0)}


def activate(values: np.ndarray, activation: str) -> np.ndarray:
    """A layer's own activation applied to its pre-activation values (linear or ReLU: the
    first layers the teaching view is shown on)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"the teaching view shows linear and ReLU layers, not {activation}")
    return ACTIVATIONS[activation](np.asarray(values, np.float64))


def formula(cell: Cell, channel: int = 0) -> str:
    """The multiply-add of one output cell in words, joined by "<br>": the products of
    input channel `channel` written out one by one, each other input channel's products
    as their sum, then the total, the bias and the ReLU."""
    window, kernel = cell.window, cell.kernel
    lines = [f"{v:+.3f} x {w:+.3f} = {v * w:+.4f}"
             for v, w in zip(window[..., channel].reshape(-1),
                             kernel[..., channel].reshape(-1), strict=True)]
    per_channel = cell.products.reshape(-1, window.shape[-1]).sum(axis=0)
    if window.shape[-1] > 1:
        lines.append("sums per input channel: " + ", ".join(
            f"{c}: {value:+.4f}" for c, value in enumerate(per_channel)))
    return "<br>".join([*lines, f"sum of {cell.products.size} products = {cell.total:+.4f}",
                        f"+ bias {cell.bias:+.4f} = {cell.output:+.4f}",
                        f"ReLU: max(0, {cell.output:+.4f}) = {cell.relu:.4f}"])


def pool_formula(cell: PoolCell) -> str:
    """One max-pooling cell in words: its window's values and the largest."""
    values = ", ".join(f"{v:.3f}" for v in cell.window.reshape(-1))
    return f"max({values}) = {cell.output:.4f}<br>at row {cell.argmax[0]}, column " \
           f"{cell.argmax[1]} of the block"


def logits(model, x: Any) -> np.ndarray:
    """The model's scores before its final softmax or sigmoid for one input (unbatched; a
    list for a model of two inputs): what `softmax_steps` starts from. A segmentation
    model scores every pixel: the centre pixel's scores are given."""
    from core.explain.backend.graph import score_model

    inputs = x if isinstance(x, list | tuple) else [x]
    batch = [np.asarray(v, np.float32)[None] for v in inputs]
    scores = np.asarray(score_model(model)(batch if len(batch) > 1 else batch[0]),
                        np.float64)[0]
    while scores.ndim > 1:  # (h, w, classes): the centre pixel's
        scores = scores[scores.shape[0] // 2]
    return scores
