"""Check the hand-written NumPy backward passes of ``course_lib.numpy_nn`` against PyTorch autograd."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import numpy_nn as npnn


def torch_function(layer: npnn.Layer) -> Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]:
    """The PyTorch function that computes what ``layer`` computes, from an input and the layer's parameters."""
    if isinstance(layer, npnn.Conv2D):
        return lambda x, p: F.conv2d(x, p["weights"], p["bias"], stride=layer.stride, padding=layer.padding)
    if isinstance(layer, npnn.MaxPool2D):
        return lambda x, p: F.max_pool2d(x, layer.kernel_size, layer.stride)
    if isinstance(layer, npnn.ReLU):
        return lambda x, p: F.relu(x)
    if isinstance(layer, npnn.Flatten):
        return lambda x, p: torch.flatten(x, 1)
    if isinstance(layer, npnn.Dense):
        return lambda x, p: F.linear(x, p["weights"], p["bias"])
    raise TypeError(f"no PyTorch counterpart known for {layer!r}")


def _max_abs(ours: np.ndarray, reference: torch.Tensor) -> float:
    if tuple(ours.shape) != tuple(reference.shape):
        raise AssertionError(f"shape mismatch: NumPy {tuple(ours.shape)} vs PyTorch {tuple(reference.shape)}")
    return float(np.max(np.abs(ours - reference.detach().cpu().numpy()))) if ours.size else 0.0


def compare_layer(layer: npnn.Layer, x: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Max |NumPy - PyTorch| of the output, the input gradient and every parameter gradient of ``layer``.

    The upstream gradient is random (seeded), so every output element's contribution is tested.
    """
    out = layer.forward(x)
    grad_output = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    grad_input = layer.backward(grad_output)

    x_t = torch.tensor(x, requires_grad=True)
    params = {name: torch.tensor(getattr(layer, name), requires_grad=True) for name in layer.param_names}
    out_t = torch_function(layer)(x_t, params)
    out_t.backward(torch.from_numpy(grad_output))

    diffs = {"output": _max_abs(out, out_t), "grad_input": _max_abs(grad_input, x_t.grad)}
    for name, p in params.items():
        diffs[f"grad_{name}"] = _max_abs(getattr(layer, f"grad_{name}"), p.grad)
    return diffs


def compare_loss(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Max |difference| of :func:`numpy_nn.cross_entropy_loss` (value and gradient) vs ``F.cross_entropy``."""
    loss, grad = npnn.cross_entropy_loss(logits, targets)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(logits_t, torch.as_tensor(targets))
    loss_t.backward()
    return {"loss": abs(loss - loss_t.item()), "grad_logits": _max_abs(grad, logits_t.grad)}


def compare_models(np_model: npnn.SimpleCNN, torch_model: nn.Module, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Forward, loss and backward through both models on the same batch: max |difference| of each result.

    Both models must hold the same weights (see :func:`numpy_nn.SimpleCNN.load_state_dict`).
    """
    logits = np_model.forward(X)
    loss, grad_logits = npnn.cross_entropy_loss(logits, y)
    np_model.backward(grad_logits)

    torch_model.zero_grad()
    logits_t = torch_model(torch.as_tensor(X))
    loss_t = F.cross_entropy(logits_t, torch.as_tensor(y))
    loss_t.backward()

    diffs = {"logits": _max_abs(logits, logits_t), "loss": abs(loss - loss_t.item())}
    params = dict(torch_model.named_parameters())
    for name, layer in np_model.named_layers():
        diffs[f"{name}.grad_weights"] = _max_abs(layer.grad_weights, params[f"{name}.weight"].grad)
        diffs[f"{name}.grad_bias"] = _max_abs(layer.grad_bias, params[f"{name}.bias"].grad)
    return diffs


def standard_cases(dtype: type = np.float64, seed: int = 0) -> list[tuple[str, npnn.Layer, np.ndarray]]:
    """The layer/input pairs checked by the tests and shown in notebook 03: ``(description, layer, x)``.

    They cover stride 2, padding, non-square inputs, overlapping pooling windows and a batch of 1.
    """
    rng = np.random.default_rng(seed)

    def x(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    return [
        ("Conv2D 3x3, stride 1, padding 1, 7x9 input", npnn.Conv2D(3, 4, 3, padding=1, dtype=dtype, rng=rng),
         x(2, 3, 7, 9)),
        ("Conv2D 3x3, stride 2, padding 1, batch 1", npnn.Conv2D(2, 5, 3, stride=2, padding=1, dtype=dtype, rng=rng),
         x(1, 2, 9, 6)),
        ("Conv2D 2x2, stride 2, no padding", npnn.Conv2D(1, 3, 2, stride=2, dtype=dtype, rng=rng), x(3, 1, 8, 8)),
        ("Conv2D 5x4 input, kernel 3, stride 2, padding 2",
         npnn.Conv2D(2, 2, 3, stride=2, padding=2, dtype=dtype, rng=rng), x(2, 2, 5, 4)),
        ("MaxPool2D 2x2, 8x6 input", npnn.MaxPool2D(2), x(2, 3, 8, 6)),
        ("MaxPool2D 2x2, odd 7x5 input (last row/column dropped)", npnn.MaxPool2D(2), x(2, 2, 7, 5)),
        ("MaxPool2D 3x3, stride 2 (overlapping), batch 1", npnn.MaxPool2D(3, stride=2), x(1, 2, 7, 9)),
        ("ReLU", npnn.ReLU(), x(2, 3, 5, 4)),
        ("Flatten", npnn.Flatten(), x(2, 3, 4, 5)),
        ("Dense 7 -> 5", npnn.Dense(7, 5, dtype=dtype, rng=rng), x(4, 7)),
        ("Dense 7 -> 5, batch 1", npnn.Dense(7, 5, dtype=dtype, rng=rng), x(1, 7)),
    ]
