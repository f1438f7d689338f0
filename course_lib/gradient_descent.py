"""Lesson 02, gradient descent from NumPy to PyTorch: linear regression by hand, its optimizers and logs.

The mean squared error and its gradient, momentum SGD and Adam as update rules written out in
NumPy (the same rules as ``torch.optim.SGD`` and ``torch.optim.Adam``), the descent loop that
records a trajectory, and TensorBoard runs read back.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_lib.data import batch_indices
from course_lib.env import check_float, output_dir


def mse(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Mean squared error of the linear model ``X @ w`` against targets ``y``."""
    error = y - X @ w
    return float(np.mean(error**2))


def mse_grad(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient of :func:`mse` with respect to ``w``: ``-2/m * X.T @ (y - X @ w)``."""
    error = y - X @ w
    return -2.0 / len(y) * (X.T @ error)


def mse_many(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """MSE for each row of ``W`` (shape ``(k, d)``) at once: a loss curve or a loss surface."""
    W = np.asarray(W)
    errors = y[:, None] - X @ W.reshape(-1, X.shape[1]).T
    return np.mean(errors**2, axis=0).reshape(W.shape[:-1])


class SGD:
    """Plain or momentum gradient descent, with the update rule of ``torch.optim.SGD``."""

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
        self.momentum = check_float("momentum", momentum, min_value=0.0, max_value=1.0)
        self.buffer: np.ndarray | None = None

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Return the weights after one update with gradient ``grad``."""
        if self.momentum:
            self.buffer = grad.copy() if self.buffer is None else self.momentum * self.buffer + grad
            grad = self.buffer
        return w - self.lr * grad


class Adam:
    """Adam with bias correction, with the update rule of ``torch.optim.Adam``."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
        self.beta1 = check_float("betas[0]", betas[0], min_value=0.0, max_value=1.0)
        self.beta2 = check_float("betas[1]", betas[1], min_value=0.0, max_value=1.0)
        self.eps = check_float("eps", eps, min_value=0.0)
        self.t = 0
        self.m: np.ndarray | float = 0.0
        self.v: np.ndarray | float = 0.0

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Return the weights after one update with gradient ``grad``."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def max_stable_lr(X: np.ndarray) -> float:
    """Largest learning rate for which batch gradient descent on the MSE converges.

    The MSE's Hessian is ``H = 2/m X.T @ X``; a step multiplies the error along the eigenvector of the
    largest eigenvalue ``lam`` by ``1 - lr * lam``, which shrinks only while ``lr < 2 / lam``.
    """
    hessian = 2.0 / len(X) * (X.T @ X)
    return float(2.0 / np.linalg.eigvalsh(hessian)[-1])


def with_bias_column(X: np.ndarray) -> np.ndarray:
    """``X`` with a column of ones appended, so that ``X @ w`` has an intercept (the last weight)."""
    return np.c_[X, np.ones(len(X))]


def overshoot(path: np.ndarray, minimum: np.ndarray) -> np.ndarray:
    """How far a path of weights (steps, d) runs past ``minimum`` along each weight; 0 where it never does.

    "Past" is measured in the direction the path set off in: from its first point towards ``minimum``.
    """
    path, minimum = np.asarray(path, dtype=np.float64), np.asarray(minimum, dtype=np.float64)
    if path.ndim != 2 or minimum.shape != (path.shape[1],):
        raise ValueError(f"expected path (steps, d) and minimum (d,), got {path.shape} and {minimum.shape}")
    towards_minimum = np.sign(minimum - path[0])
    return np.maximum(((path - minimum) * towards_minimum).max(axis=0), 0.0)


@dataclass
class Trajectory:
    """What a run did: ``weights[k]`` before step k (one more row than steps), each batch loss, the
    full-data loss at every row of ``weights``, and whether the run was stopped for diverging."""

    weights: np.ndarray
    batch_losses: np.ndarray
    losses: np.ndarray
    diverged: bool
    steps_per_epoch: int

    @property
    def epochs(self) -> np.ndarray:
        """Position of each row of ``weights`` measured in passes over the data."""
        return np.arange(len(self.weights)) / self.steps_per_epoch


def descend(X: np.ndarray, y: np.ndarray, w0: np.ndarray, optimizer: SGD | Adam, orders: np.ndarray,
            batch_size: int, max_loss_ratio: float = 1e6) -> Trajectory:
    """Run gradient descent on the MSE over the epochs in ``orders`` and record every step.

    A run whose full-data loss becomes non-finite or exceeds ``max_loss_ratio`` times the initial loss
    is stopped there (``diverged=True``) instead of overflowing.
    """
    if X.ndim != 2 or y.shape != (len(X),) or w0.shape != (X.shape[1],):
        raise ValueError(f"expected X (m, d), y (m,), w0 (d,), got {X.shape}, {y.shape}, {w0.shape}")
    if orders.ndim != 2 or orders.shape[1] != len(X):
        raise ValueError(f"orders must have shape (epochs, {len(X)}), got {orders.shape}")
    batches = batch_indices(orders[0], batch_size)
    w = w0.copy()
    weights, batch_losses, losses = [w], [], [mse(X, y, w)]
    diverged = False
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is detected below, not warned about
        for order in orders:
            for idx in batch_indices(order, batch_size):
                batch_losses.append(mse(X[idx], y[idx], w))
                w = optimizer.step(w, mse_grad(X[idx], y[idx], w))
                weights.append(w)
                losses.append(mse(X, y, w))
                if not np.isfinite(losses[-1]) or losses[-1] > max_loss_ratio * max(losses[0], 1e-12):
                    diverged = True
                    break
            if diverged:
                break
    return Trajectory(np.array(weights), np.array(batch_losses), np.array(losses), diverged, len(batches))


def fresh_log_dir(*parts: str) -> Path:
    """Return ``outputs/tensorboard/<parts...>`` emptied of earlier runs, so a re-run logs only itself."""
    if not parts:
        raise ValueError("fresh_log_dir needs a run name, e.g. fresh_log_dir('02_gradient_descent'), got none")
    path = output_dir("tensorboard", *parts)
    shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def read_scalars(log_dir: Path | str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read every scalar logged under ``log_dir`` (one run folder) as ``{tag: (steps, values)}``.

    Uses TensorBoard's own event reader; values come back as stored in the event file (float32).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = Path(log_dir)
    if not any(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"no TensorBoard event file in {log_dir.name!r}: was SummaryWriter closed?")
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0 = keep every point
    accumulator.Reload()
    scalars = {}
    for tag in sorted(accumulator.Tags()["scalars"]):
        events = accumulator.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return scalars
