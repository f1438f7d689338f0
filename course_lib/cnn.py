"""Lesson 03, a CNN in NumPy vs PyTorch: NumPy layers with hand-written backward passes, and the comparisons.

Each layer's ``forward`` caches what its ``backward`` needs, and ``backward`` sits right below it
(micrograd's way). Beside the layers: the NumPy training loop, the checks of every backward pass
against PyTorch autograd, and the measurements that fill the notebook's NumPy-vs-PyTorch table.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from course_lib import gradient_descent, models
from course_lib.data import Split, batch_slices, minibatches
from course_lib.env import check_float, check_int
from course_lib.timing import median, sample_seconds
from course_lib.training import History, evaluate, fit, train_one_epoch, train_step


def output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def windows(x: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    """View every k x k window of ``x`` (N, C, H, W) as an array (N, C, OH, OW, k, k), without copying."""
    return sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))[:, :, ::stride, ::stride]


def fold(grad_windows: np.ndarray, input_shape: tuple, stride: int) -> np.ndarray:
    """Inverse of :func:`windows` for gradients: add each window's (N, C, OH, OW, k, k) values back in place.

    Overlapping windows add up. The loop runs over the k*k offsets inside a window, not over pixels.
    """
    n, c, oh, ow, k, _ = grad_windows.shape
    grad = np.zeros(input_shape, dtype=grad_windows.dtype)
    for i in range(k):
        for j in range(k):
            grad[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += grad_windows[..., i, j]
    return grad


def im2col(x: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Unfold the k x k windows of ``x`` (N, C, H, W) into rows: (N * OH * OW, C * k * k).

    Row order is (image, output row, output column); column order is (channel, ky, kx), the order
    of ``weights.reshape(out_channels, -1)``, so a convolution becomes one matrix product.
    """
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = windows(padded, kernel_size, stride)
    n, c, oh, ow, k, _ = win.shape
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)


def col2im(cols: np.ndarray, input_shape: tuple, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Inverse of :func:`im2col` for gradients: sum each row back onto the input pixels it came from."""
    n, c, h, w = input_shape
    oh, ow = output_size(h, kernel_size, stride, padding), output_size(w, kernel_size, stride, padding)
    grad_windows = cols.reshape(n, oh, ow, c, kernel_size, kernel_size).transpose(0, 3, 1, 2, 4, 5)
    grad = fold(grad_windows, (n, c, h + 2 * padding, w + 2 * padding), stride)
    return grad[:, :, padding:padding + h, padding:padding + w]


class Layer:
    """A layer: ``forward`` caches what ``backward`` needs; ``backward`` returns the gradient for the input
    and sets ``grad_<param>`` for each name in ``param_names``."""

    param_names: tuple[str, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _uniform(rng: np.random.Generator, fan_in: int, shape: tuple, dtype: type) -> np.ndarray:
    """PyTorch's default initialisation for conv and linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, like ``nn.Conv2d``) computed as one matrix product via im2col."""

    param_names = ("weights", "bias")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 *, dtype: type = np.float32, rng: np.random.Generator | None = None) -> None:
        self.in_channels = check_int("in_channels", in_channels, min_value=1)
        self.out_channels = check_int("out_channels", out_channels, min_value=1)
        self.kernel_size = check_int("kernel_size", kernel_size, min_value=1)
        self.stride = check_int("stride", stride, min_value=1)
        self.padding = check_int("padding", padding, min_value=0)
        rng = rng if rng is not None else np.random.default_rng()
        fan_in = in_channels * kernel_size * kernel_size
        self.weights = _uniform(rng, fan_in, (out_channels, in_channels, kernel_size, kernel_size), dtype)
        self.bias = _uniform(rng, fan_in, (out_channels,), dtype)
        self.grad_weights = np.zeros_like(self.weights)
        self.grad_bias = np.zeros_like(self.bias)

    def output_hw(self, x: np.ndarray) -> tuple[int, int]:
        """Output height and width for the input ``x``."""
        oh, ow = (output_size(d, self.kernel_size, self.stride, self.padding) for d in x.shape[2:])
        return oh, ow

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D expects input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        oh, ow = self.output_hw(x)
        self._input_shape = x.shape
        self._cols = im2col(x, self.kernel_size, self.stride, self.padding)        # (N*OH*OW, C*k*k)
        out = self._cols @ self.weights.reshape(self.out_channels, -1).T + self.bias  # (N*OH*OW, O)
        return out.reshape(len(x), oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad = grad_output.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)   # (N*OH*OW, O)
        self.grad_weights = (grad.T @ self._cols).reshape(self.weights.shape)
        self.grad_bias = grad.sum(axis=0)
        grad_cols = grad @ self.weights.reshape(self.out_channels, -1)             # (N*OH*OW, C*k*k)
        return col2im(grad_cols, self._input_shape, self.kernel_size, self.stride, self.padding)


class Conv2DLoops(Conv2D):
    """The same convolution with Python loops over images and output pixels: correct, and slow."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        oh, ow = self.output_hw(x)
        k, s, p = self.kernel_size, self.stride, self.padding
        self._padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        out = np.empty((len(x), self.out_channels, oh, ow), dtype=np.result_type(x, self.weights))
        for n in range(len(x)):
            for i in range(oh):
                for j in range(ow):
                    window = self._padded[n, :, i * s:i * s + k, j * s:j * s + k]          # (C, k, k)
                    out[n, :, i, j] = np.tensordot(self.weights, window, axes=3) + self.bias
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        k, s, p = self.kernel_size, self.stride, self.padding
        n_images, _, oh, ow = grad_output.shape
        grad_padded = np.zeros_like(self._padded)
        self.grad_weights = np.zeros_like(self.weights)
        for n in range(n_images):
            for i in range(oh):
                for j in range(ow):
                    g = grad_output[n, :, i, j]                                          # (O,)
                    window = self._padded[n, :, i * s:i * s + k, j * s:j * s + k]
                    self.grad_weights += g[:, None, None, None] * window
                    grad_padded[n, :, i * s:i * s + k, j * s:j * s + k] += np.tensordot(g, self.weights, axes=1)
        self.grad_bias = grad_output.sum(axis=(0, 2, 3))
        h, w = grad_padded.shape[2] - 2 * p, grad_padded.shape[3] - 2 * p
        return grad_padded[:, :, p:p + h, p:p + w]


class MaxPool2D(Layer):
    """Max pooling over k x k windows (stride defaults to k, like ``nn.MaxPool2d``); no padding."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size = check_int("kernel_size", kernel_size, min_value=1)
        self.stride = check_int("stride", kernel_size if stride is None else stride, min_value=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = windows(x, self.kernel_size, self.stride)
        flat = win.reshape(*win.shape[:4], -1)                  # (N, C, OH, OW, k*k)
        self._argmax = flat.argmax(axis=-1)[..., None]          # which element of each window won
        self._input_shape = x.shape
        return np.take_along_axis(flat, self._argmax, axis=-1)[..., 0]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        k = self.kernel_size
        grad_flat = np.zeros((*grad_output.shape, k * k), dtype=grad_output.dtype)
        np.put_along_axis(grad_flat, self._argmax, grad_output[..., None], axis=-1)  # only the winner gets it
        return fold(grad_flat.reshape(*grad_output.shape, k, k), self._input_shape, self.stride)


class ReLU(Layer):
    """max(x, 0), elementwise."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return x * self._mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self._mask


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), like ``torch.flatten(x, 1)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._input_shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output.reshape(self._input_shape)


class Dense(Layer):
    """Fully connected layer ``x @ weights.T + bias`` with ``weights`` of shape (out, in), like ``nn.Linear``."""

    param_names = ("weights", "bias")

    def __init__(self, in_features: int, out_features: int, *, dtype: type = np.float32,
                 rng: np.random.Generator | None = None) -> None:
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.out_features = check_int("out_features", out_features, min_value=1)
        rng = rng if rng is not None else np.random.default_rng()
        self.weights = _uniform(rng, in_features, (out_features, in_features), dtype)
        self.bias = _uniform(rng, in_features, (out_features,), dtype)
        self.grad_weights = np.zeros_like(self.weights)
        self.grad_bias = np.zeros_like(self.bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.weights.T + self.bias

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.grad_weights = grad_output.T @ self._x
        self.grad_bias = grad_output.sum(axis=0)
        return grad_output @ self.weights


def cross_entropy_loss(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` (N, classes) and integer ``targets`` (N,), and its gradient.

    Softmax is folded in (like ``F.cross_entropy``) and computed from ``logits - max`` so that
    ``exp`` never overflows. The gradient with respect to the logits is ``(softmax - one_hot) / N``.
    """
    targets = np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (len(logits),):
        raise ValueError(f"cross_entropy_loss: expected logits (N, classes) and targets (N,), "
                         f"got {tuple(logits.shape)} and {tuple(targets.shape)}")
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"cross_entropy_loss: targets must be integer class indices in [0, {logits.shape[1]}), "
                         f"got dtype {targets.dtype} with values {targets.min()}..{targets.max()}")
    n = len(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), targets].mean()
    grad_logits = np.exp(log_probs)
    grad_logits[np.arange(n), targets] -= 1
    return float(loss), grad_logits / n


class SimpleCNN:
    """conv-relu-pool twice, then two dense layers: the NumPy twin of ``course_lib.models.SimpleCNN``.

    Same arguments, layer names and parameter shapes; ``conv_layer=Conv2DLoops`` swaps in the
    loop-based convolution (for timing). ``seed`` fixes the initial weights.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple[int, int] = (8, 16),
                 hidden: int = 64, image_size: int = 8, *, dtype: type = np.float32, seed: int = 0,
                 conv_layer: type[Conv2D] = Conv2D) -> None:
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        rng = np.random.default_rng(seed)
        c1, c2 = channels
        self.dtype = np.dtype(dtype)
        self.conv1 = conv_layer(in_channels, c1, kernel_size=3, padding=1, dtype=dtype, rng=rng)
        self.relu1 = ReLU()
        self.pool1 = MaxPool2D(2)
        self.conv2 = conv_layer(c1, c2, kernel_size=3, padding=1, dtype=dtype, rng=rng)
        self.relu2 = ReLU()
        self.pool2 = MaxPool2D(2)
        self.flatten = Flatten()
        self.fc1 = Dense(c2 * (image_size // 4) ** 2, hidden, dtype=dtype, rng=rng)
        self.relu3 = ReLU()
        self.fc2 = Dense(hidden, num_classes, dtype=dtype, rng=rng)
        self.layers = [self.conv1, self.relu1, self.pool1, self.conv2, self.relu2, self.pool2,
                       self.flatten, self.fc1, self.relu3, self.fc2]

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def named_layers(self) -> list[tuple[str, Layer]]:
        """``(name, layer)`` for every layer with parameters, in order: conv1, conv2, fc1, fc2."""
        return [(name, layer) for name, layer in vars(self).items()
                if isinstance(layer, Layer) and layer.param_names]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters under PyTorch's names (``conv1.weight``, ``conv1.bias``, ...); arrays are not copied."""
        return {f"{name}.{_TORCH_NAME[p]}": getattr(layer, p)
                for name, layer in self.named_layers() for p in layer.param_names}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters in (cast to this model's dtype); names and shapes must match exactly."""
        own = self.state_dict()
        if set(state) != set(own):
            raise ValueError(f"state dict keys must be {sorted(own)}, got {sorted(state)}")
        for name, layer in self.named_layers():
            for p in layer.param_names:
                value = np.asarray(state[f"{name}.{_TORCH_NAME[p]}"])
                if value.shape != getattr(layer, p).shape:
                    raise ValueError(f"{name}.{_TORCH_NAME[p]} must have shape {getattr(layer, p).shape}, "
                                     f"got {value.shape}")
                setattr(layer, p, value.astype(self.dtype, copy=True))  # a copy: never share memory with torch


_TORCH_NAME = {"weights": "weight", "bias": "bias"}


class ModelSGD:
    """Stochastic gradient descent with optional momentum for every parameter of a NumPy model.

    The update rule is notebook 02's :class:`course_lib.gradient_descent.SGD` (that of ``torch.optim.SGD``),
    one instance per parameter so that each keeps its own momentum buffer.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0) -> None:
        self.lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
        self.momentum = check_float("momentum", momentum, min_value=0.0, max_value=1.0)
        self._rules: dict[tuple[int, str], gradient_descent.SGD] = {}

    def step(self, model: SimpleCNN) -> None:
        """Update every parameter of every layer in place from its ``grad_<name>``."""
        for i, layer in enumerate(model.layers):
            for name in layer.param_names:
                rule = self._rules.setdefault((i, name), gradient_descent.SGD(self.lr, self.momentum))
                param = getattr(layer, name)
                param[...] = rule.step(param, getattr(layer, f"grad_{name}"))


def train_step_numpy(model: SimpleCNN, optimizer: ModelSGD, X: np.ndarray, y: np.ndarray) -> float:
    """One SGD step on the batch ``(X, y)``: forward, loss, backward, update. Return the loss."""
    loss, grad_logits = cross_entropy_loss(model.forward(X), y)
    model.backward(grad_logits)
    optimizer.step(model)
    return loss


def train_one_epoch_numpy(model: SimpleCNN, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                          optimizer: ModelSGD) -> float:
    """Train on every ``(X, y)`` batch once; return the mean loss weighted by batch size."""
    total, count = 0.0, 0
    for X, y in batches:
        total += train_step_numpy(model, optimizer, X, y) * len(X)
        count += len(X)
    if count == 0:
        raise ValueError("train_one_epoch got no batches: is the data empty?")
    return total / count


def evaluate_numpy(model: SimpleCNN, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> tuple[float, float]:
    """Return ``(mean loss, accuracy)`` of the NumPy model on ``X, y``."""
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    total_loss, correct = 0.0, 0
    for rows in batch_slices(len(X), batch_size):
        logits, yb = model.forward(X[rows]), y[rows]
        total_loss += cross_entropy_loss(logits, yb)[0] * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(X), correct / len(X)


def torch_function(layer: Layer) -> Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]:
    """The PyTorch function that computes what ``layer`` computes, from an input and the layer's parameters."""
    if isinstance(layer, Conv2D):
        return lambda x, p: F.conv2d(x, p["weights"], p["bias"], stride=layer.stride, padding=layer.padding)
    if isinstance(layer, MaxPool2D):
        return lambda x, p: F.max_pool2d(x, layer.kernel_size, layer.stride)
    if isinstance(layer, ReLU):
        return lambda x, p: F.relu(x)
    if isinstance(layer, Flatten):
        return lambda x, p: torch.flatten(x, 1)
    if isinstance(layer, Dense):
        return lambda x, p: F.linear(x, p["weights"], p["bias"])
    raise TypeError(f"no PyTorch counterpart known for {layer!r}")


def _max_abs(ours: np.ndarray, reference: torch.Tensor) -> float:
    if tuple(ours.shape) != tuple(reference.shape):
        raise AssertionError(f"shape mismatch: NumPy {tuple(ours.shape)} vs PyTorch {tuple(reference.shape)}")
    return float(np.max(np.abs(ours - reference.detach().cpu().numpy()))) if ours.size else 0.0


def compare_layer(layer: Layer, x: np.ndarray, seed: int = 0) -> dict[str, float]:
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
    """Max |difference| of :func:`cnn.cross_entropy_loss` (value and gradient) vs ``F.cross_entropy``."""
    loss, grad = cross_entropy_loss(logits, targets)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(logits_t, torch.as_tensor(targets))
    loss_t.backward()
    return {"loss": abs(loss - loss_t.item()), "grad_logits": _max_abs(grad, logits_t.grad)}


def compare_models(np_model: SimpleCNN, torch_model: nn.Module, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Forward, loss and backward through both models on the same batch: max |difference| of each result.

    Both models must hold the same weights (see :meth:`SimpleCNN.load_state_dict`).
    """
    logits = np_model.forward(X)
    loss, grad_logits = cross_entropy_loss(logits, y)
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


def standard_cases(dtype: type = np.float64, seed: int = 0) -> list[tuple[str, Layer, np.ndarray]]:
    """The layer/input pairs checked by the tests and shown in notebook 03: ``(description, layer, x)``.

    They cover stride 2, padding, non-square inputs, overlapping pooling windows and a batch of 1.
    """
    rng = np.random.default_rng(seed)

    def x(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    return [
        ("Conv2D 3x3, stride 1, padding 1, 7x9 input", Conv2D(3, 4, 3, padding=1, dtype=dtype, rng=rng),
         x(2, 3, 7, 9)),
        ("Conv2D 3x3, stride 2, padding 1, batch 1", Conv2D(2, 5, 3, stride=2, padding=1, dtype=dtype, rng=rng),
         x(1, 2, 9, 6)),
        ("Conv2D 2x2, stride 2, no padding", Conv2D(1, 3, 2, stride=2, dtype=dtype, rng=rng), x(3, 1, 8, 8)),
        ("Conv2D 5x4 input, kernel 3, stride 2, padding 2",
         Conv2D(2, 2, 3, stride=2, padding=2, dtype=dtype, rng=rng), x(2, 2, 5, 4)),
        ("MaxPool2D 2x2, 8x6 input", MaxPool2D(2), x(2, 3, 8, 6)),
        ("MaxPool2D 2x2, odd 7x5 input (last row/column dropped)", MaxPool2D(2), x(2, 2, 7, 5)),
        ("MaxPool2D 3x3, stride 2 (overlapping), batch 1", MaxPool2D(3, stride=2), x(1, 2, 7, 9)),
        ("ReLU", ReLU(), x(2, 3, 5, 4)),
        ("Flatten", Flatten(), x(2, 3, 4, 5)),
        ("Dense 7 -> 5", Dense(7, 5, dtype=dtype, rng=rng), x(4, 7)),
        ("Dense 7 -> 5, batch 1", Dense(7, 5, dtype=dtype, rng=rng), x(1, 7)),
    ]


def code_lines(*objects: object) -> int:
    """Lines of code in the source of functions, classes or modules; blanks, comments and docstrings don't count."""
    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        docstrings: set[int] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, first.end_lineno + 1))
        skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
        code = {line for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type not in skip
                for line in range(tok.start[0], tok.end[0] + 1)}
        total += len(code - docstrings)
    return total


def train_step_samples(model: SimpleCNN | nn.Module, X: np.ndarray, y: np.ndarray, repeats: int = 5) -> list[float]:
    """Times of one training step (forward, loss, backward, SGD update) on the batch ``X, y``, one per call."""
    if isinstance(model, SimpleCNN):
        numpy_optimizer = ModelSGD(lr=1e-3)
        return sample_seconds(lambda: train_step_numpy(model, numpy_optimizer, X, y), repeats)
    device = next(model.parameters()).device
    X_t, y_t = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    return sample_seconds(lambda: train_step(model, optimizer, loss_fn, X_t, y_t), repeats)


def train_step_seconds(model: SimpleCNN | nn.Module, X: np.ndarray, y: np.ndarray, repeats: int = 5) -> float:
    """Median time of one training step on the batch ``X, y`` (see :func:`train_step_samples`)."""
    return median(train_step_samples(model, X, y, repeats))


@dataclass
class SweepRow:
    """Time of one training step of each implementation for one batch size and image size."""

    batch_size: int
    image_size: int
    numpy_ms: float  # median
    torch_ms: float
    numpy_fastest_ms: float  # the fastest step: load from other programs can slow a step, never speed it up
    torch_fastest_ms: float

    @property
    def torch_speedup(self) -> float:
        """How many times faster PyTorch is than NumPy im2col (below 1: NumPy is faster), from the medians."""
        return self.numpy_ms / self.torch_ms

    @property
    def fastest_speedup(self) -> float:
        """The same ratio from each implementation's fastest step: far less sensitive to a busy machine."""
        return self.numpy_fastest_ms / self.torch_fastest_ms


def speed_sweep(batch_sizes: list[int], image_sizes: list[int], device: torch.device, repeats: int = 3,
                seed: int = 0) -> list[SweepRow]:
    """Time a training step of the NumPy (im2col) and PyTorch SimpleCNN on random images of each size."""
    rng = np.random.default_rng(seed)
    rows = []
    for image_size in image_sizes:
        torch_model = models.SimpleCNN(image_size=image_size).to(device)
        numpy_model = SimpleCNN(image_size=image_size, seed=seed)
        for batch_size in batch_sizes:
            X = rng.standard_normal((batch_size, 1, image_size, image_size)).astype(np.float32)
            y = rng.integers(0, 10, batch_size)
            numpy_s = train_step_samples(numpy_model, X, y, repeats)
            torch_s = train_step_samples(torch_model, X, y, repeats)
            rows.append(SweepRow(batch_size, image_size, 1e3 * median(numpy_s), 1e3 * median(torch_s),
                                 1e3 * min(numpy_s), 1e3 * min(torch_s)))
    return rows


def crossover(rows: list[SweepRow]) -> dict[int, int | None]:
    """For each image size, the smallest batch size from which PyTorch is faster at every larger batch (or None)."""
    result: dict[int, int | None] = {}
    for image_size in sorted({r.image_size for r in rows}):
        sizes = sorted((r for r in rows if r.image_size == image_size), key=lambda r: r.batch_size)
        result[image_size] = None
        for i, row in enumerate(sizes):
            if all(r.torch_speedup > 1 for r in sizes[i:]):
                result[image_size] = row.batch_size
                break
    return result


def fit_numpy(model: SimpleCNN, split: Split, *, epochs: int, batch_size: int = 32, lr: float = 0.02,
              momentum: float = 0.9, seed: int = 0, log: Callable[[str], None] | None = print) -> History:
    """Train the NumPy SimpleCNN with its own SGD; same batches as :func:`fit_torch` for the same ``seed``."""
    optimizer = ModelSGD(lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)

    def score() -> tuple[float, float, float]:
        test_loss, test_accuracy = evaluate_numpy(model, split.X_test, split.y_test)
        return evaluate_numpy(model, split.X_train, split.y_train)[1], test_loss, test_accuracy

    return fit(lambda: train_one_epoch_numpy(model, minibatches(split.X_train, split.y_train, batch_size, rng),
                                            optimizer), score, epochs, log)


def fit_torch(model: nn.Module, split: Split, *, epochs: int, batch_size: int = 32, lr: float = 0.02,
              momentum: float = 0.9, seed: int = 0, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
              log: Callable[[str], None] | None = print) -> History:
    """Train a PyTorch classifier with SGD and ``nn.CrossEntropyLoss`` on the device its parameters are on;
    the twin of :func:`fit_numpy` (same batches for the same ``seed``).

    ``augment``, if given, transforms each training image (C, H, W) every time it is drawn.
    """
    check_float("lr", lr, min_value=0.0, min_inclusive=False)
    device = next(model.parameters()).device
    X_train, y_train, X_test, y_test = split.tensors(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for X, y in minibatches(X_train, y_train, batch_size, rng):
            yield (torch.stack([augment(img) for img in X]) if augment else X), y

    def score() -> tuple[float, float, float]:
        test_loss, test_accuracy = evaluate(model, X_test, y_test, loss_fn)
        return evaluate(model, X_train, y_train)[1], test_loss, test_accuracy

    return fit(lambda: train_one_epoch(model, batches(), loss_fn, optimizer, device), score, epochs, log, device)
