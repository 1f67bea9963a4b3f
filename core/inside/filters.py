"""Filters: a convolution's kernels as pictures, and their norms per output channel.

The first convolution's kernels look at pixels directly, so they can be drawn as small
images (Krizhevsky et al. 2012, Fig. 3; Zeiler and Fergus 2014): edges, blobs and
colour opponents. Deeper kernels mix hundreds of channels; there a summary is drawn:
the L2 norm of each output channel's kernel, ||W[c]||_2 = sqrt(sum_{i,j,k} W[c,i,j,k]^2)
(a channel whose norm is near zero contributes little; Li et al. 2017, "Pruning Filters
for Efficient ConvNets", rank filters by the same kind of norm).

A SeparableConv2D (Xception's blocks) has two kernels: `part="depthwise"` gives one
kh x kw kernel per input channel (C_in * multiplier, kh, kw, 1), `part="pointwise"` the
1x1 mixing (C_out, 1, 1, C_in * multiplier). A DepthwiseConv2D has the depthwise one.
"""

from __future__ import annotations

import numpy as np

from core.explain.errors import ExplainError
from core.inside.features import find_layer
from core.models.runtime.keras_private import graph as keras_graph

CONVOLUTIONS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose",
                "Convolution2D")


def _walk(model, prefix: str = ""):
    for layer in keras_graph(model).layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            yield from _walk(layer, f"{path}/")


def _layer(model, path: str):
    head, _, rest = path.partition("/")
    layer = keras_graph(model).get_layer(head)
    return _layer(layer, rest) if rest else layer


def first_convolution(model) -> str:
    """The path of the model's first 2-D convolution (nested models searched)."""
    for path, layer in _walk(model):
        if type(layer).__name__ in CONVOLUTIONS:
            return path
    raise ExplainError(f"{model.name} has no 2-D convolution")


def kernel_parts(model, layer: str) -> tuple[str, ...]:
    """Which kernels `kernels(..., part=...)` can give for this layer: ("kernel",) for a
    Conv2D or Dense, ("depthwise", "pointwise") for a SeparableConv2D, ("depthwise",)
    for a DepthwiseConv2D; the first is the default."""
    found = _layer(model, find_layer(model, layer))
    kind = type(found).__name__
    if kind == "SeparableConv2D":
        return ("depthwise", "pointwise")
    if kind == "DepthwiseConv2D":
        return ("depthwise",)
    if hasattr(found, "kernel"):
        return ("kernel",)
    raise ExplainError(f"layer '{layer}' ({kind}) has no kernel")


def kernels(model, layer: str | None = None, part: str | None = None) -> np.ndarray:
    """A layer's kernel as (C_out, kh, kw, C_in) float32 (default: the first
    convolution). Dense: (units, 1, 1, inputs). Conv2DTranspose's kernel is stored
    (kh, kw, C_out, C_in) and is given in the same (C_out, kh, kw, C_in) order. For a
    SeparableConv2D see the module's note (`part`, default "depthwise")."""
    path = first_convolution(model) if layer is None else find_layer(model, layer)
    found = _layer(model, path)
    parts = kernel_parts(model, path)
    part = part or parts[0]
    if part not in parts:
        raise ExplainError(f"layer '{path}' has no {part} kernel (it has: "
                           f"{', '.join(parts)})")
    kind = type(found).__name__
    if part == "depthwise":
        # (kh, kw, C_in, multiplier): one kernel per input channel and multiplier.
        weights = np.asarray(found.depthwise_kernel.numpy() if hasattr(found, "depthwise_kernel")
                             else found.kernel.numpy(), dtype=np.float32)
        kh, kw, c_in, mult = weights.shape
        return np.ascontiguousarray(weights.reshape(kh, kw, c_in * mult)
                                    .transpose(2, 0, 1)[..., None])
    if part == "pointwise":
        weights = np.asarray(found.pointwise_kernel.numpy(), dtype=np.float32)
        return np.ascontiguousarray(weights.transpose(3, 0, 1, 2))
    weights = np.asarray(found.kernel.numpy(), dtype=np.float32)
    if weights.ndim == 2:  # Dense (inputs, units)
        return np.ascontiguousarray(weights.T[:, None, None, :])
    if weights.ndim != 4:
        raise ExplainError(f"layer '{path}' ({kind}): a {weights.ndim}-D kernel, not 2-D")
    if kind == "Conv2DTranspose":  # (kh, kw, C_out, C_in)
        return np.ascontiguousarray(weights.transpose(2, 0, 1, 3))
    return np.ascontiguousarray(weights.transpose(3, 0, 1, 2))


def kernel_pictures(kernels: np.ndarray, per_kernel: bool = False) -> np.ndarray:
    """(C_out, kh, kw, C_in) kernels as pictures (C_out, kh, kw, 3 or 1) in [0, 1].

    Scaled symmetrically around 0 so that mid-grey (0.5) is a zero weight, white the
    largest positive and black the largest negative weight (one scale for all kernels,
    so they compare; `per_kernel=True` scales each by its own largest |weight|). Three
    input channels are drawn as RGB; any other number as their mean, in grey."""
    weights = np.asarray(kernels, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"kernels must be (C_out, kh, kw, C_in), not {weights.shape}")
    if weights.shape[-1] != 3:
        weights = weights.mean(axis=-1, keepdims=True)
    axes = (1, 2, 3) if per_kernel else None
    largest = np.abs(weights).max(axis=axes, keepdims=per_kernel)
    largest = np.where(largest > 0, largest, 1.0)
    return (0.5 + 0.5 * weights / largest).astype(np.float32)


def kernel_norms(model, layer: str | None = None) -> np.ndarray:
    """(C_out,) L2 norm of each output channel's kernel (a SeparableConv2D: of its
    pointwise kernel, whose output channels are the layer's)."""
    path = first_convolution(model) if layer is None else find_layer(model, layer)
    part = "pointwise" if "pointwise" in kernel_parts(model, path) else None
    weights = kernels(model, path, part).astype(np.float64)
    return np.sqrt((weights.reshape(len(weights), -1) ** 2).sum(axis=1)).astype(np.float32)


def convolutions(model) -> list[str]:
    """The paths of every layer with a kernel that slides (the CONVOLUTIONS), in graph
    order, nested ones included."""
    from core.inside.features import layer_paths

    found = []
    for path in layer_paths(model):
        layer = model
        for name in path.split("/"):
            layer = keras_graph(layer).get_layer(name)
        if type(layer).__name__ in CONVOLUTIONS:
            found.append(path)
    return found


def convolution_for(model, layer: str) -> str | None:
    """`layer` itself when it is a convolution, else the last convolution before it in
    graph order (the one whose output a BatchNorm or an activation passes on); None
    before the first."""
    from core.inside.features import layer_paths

    order = layer_paths(model)
    path = find_layer(model, layer)
    kept = set(convolutions(model))
    before = order[:order.index(path) + 1]
    return next((p for p in reversed(before) if p in kept), None)


def norm_summary(model) -> list[dict[str, float | str | int]]:
    """Per convolution, in graph order: its filters' norms summarised (the median, the
    smallest and the largest of `kernel_norms`, and how many filters). A layer whose
    smallest norm is far below its median holds filters that do almost nothing."""
    rows = []
    for path in convolutions(model):
        norms = kernel_norms(model, path)
        rows.append({"layer": path, "filters": int(len(norms)),
                     "median": float(np.median(norms)), "min": float(norms.min()),
                     "max": float(norms.max())})
    return rows
