"""Data sets the course uses: bundled with scikit-learn or generated, never downloaded.

scikit-learn is imported by the functions that load or split with it, so that a process that only
batches (an FSDP rank handed its data) does not pay for importing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from course_lib.env import check_float, check_int


@dataclass
class Split:
    """A train/test split of NumPy arrays."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """Return ``X_train, y_train, X_test, y_test`` as tensors (labels as int64) on ``device``."""
        return tuple(torch.as_tensor(a).to(device) for a in (self.X_train, self.y_train, self.X_test, self.y_test))


def digits_split(test_fraction: float = 0.25, seed: int = 0, dtype: type = np.float32) -> Split:
    """scikit-learn's 1,797 8x8 digit images as NCHW arrays, standardised with the training mean/std.

    The split is stratified, so every digit appears in both parts in the same proportion.
    """
    check_float("test_fraction", test_fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    check_int("seed", seed, min_value=0)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0)[:, None, :, :]  # pixel values 0..16 -> 0..1, channel axis added
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)
    mean, std = X_train.mean(), X_train.std()
    return Split(((X_train - mean) / std).astype(dtype), y_train.astype(np.int64),
                 ((X_test - mean) / std).astype(dtype), y_test.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# Binary classification (notebook 04): scikit-learn's breast-cancer table and imbalanced data
# ---------------------------------------------------------------------------------------------


def breast_cancer_split(test_fraction: float = 0.25, seed: int = 0, dtype: type = np.float32) -> Split:
    """scikit-learn's 569 tumours x 30 features, each feature standardised with the training mean/std.

    Labels are scikit-learn's: 1 = benign, 0 = malignant, as int64 (convert to float for BCE
    losses). The split is stratified. Feature names: :func:`breast_cancer_feature_names`.
    """
    check_float("test_fraction", test_fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    check_int("seed", seed, min_value=0)
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return Split(((X_train - mean) / std).astype(dtype), y_train.astype(np.int64),
                 ((X_test - mean) / std).astype(dtype), y_test.astype(np.int64))


def breast_cancer_feature_names() -> list[str]:
    """The 30 feature names of the breast-cancer table, in column order."""
    from sklearn.datasets import load_breast_cancer

    return [str(name) for name in load_breast_cancer().feature_names]


def imbalanced_split(n_samples: int = 4000, positive_fraction: float = 0.05, separation: float = 2.0,
                     test_fraction: float = 0.5, seed: int = 0, dtype: type = np.float32) -> Split:
    """Two overlapping 2-D Gaussian classes, few positives (label 1): a rare-event detection toy problem.

    Class means lie ``separation`` standard deviations apart; the split is stratified.
    """
    check_int("n_samples", n_samples, min_value=20)
    check_float("positive_fraction", positive_fraction, min_value=0.0, max_value=0.5, min_inclusive=False)
    check_float("separation", separation, min_value=0.0)
    check_float("test_fraction", test_fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    check_int("seed", seed, min_value=0)
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    y = (rng.random(n_samples) < positive_fraction).astype(np.int64)
    X = rng.standard_normal((n_samples, 2)) + separation / np.sqrt(2) * y[:, None]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_fraction, random_state=seed,
                                                        stratify=y)
    return Split(X_train.astype(dtype), y_train, X_test.astype(dtype), y_test)


# --- Regression data for notebook 02 (gradient descent) -------------------------------------------

def make_linear_data(true_weights: tuple[float, ...] | np.ndarray, n_samples: int = 200, noise_std: float = 0.5,
                     feature_std: tuple[float, ...] | np.ndarray | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X, y`` with ``y = X @ true_weights + noise``: a regression whose answer is known (float64, no bias).

    Features are independent normals with standard deviations ``feature_std`` (default 1); unequal
    scales stretch the loss contours into ellipses, where gradient descent zig-zags.
    """
    true_weights = np.asarray(true_weights, dtype=np.float64)
    if true_weights.ndim != 1 or len(true_weights) == 0:
        raise ValueError(f"true_weights must be a non-empty 1-D sequence, got shape {true_weights.shape}")
    check_int("n_samples", n_samples, min_value=1)
    check_float("noise_std", noise_std, min_value=0.0)
    check_int("seed", seed, min_value=0)
    scales = np.ones_like(true_weights) if feature_std is None else np.asarray(feature_std, dtype=np.float64)
    if scales.shape != true_weights.shape or np.any(scales <= 0):
        raise ValueError(f"feature_std must hold {len(true_weights)} positive numbers, got {feature_std!r}")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, len(true_weights))) * scales
    y = X @ true_weights + noise_std * rng.normal(size=n_samples)
    return X, y


def diabetes_split(test_fraction: float = 0.25, seed: int = 0, dtype: type = np.float64) -> Split:
    """scikit-learn's diabetes regression (442 patients, 10 features), features and target standardised.

    Means and standard deviations come from the training part only, so nothing leaks from the test part;
    a model that predicts the training mean scores an MSE of about 1.
    """
    check_float("test_fraction", test_fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    check_int("seed", seed, min_value=0)
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True, scaled=False)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_fraction, random_state=seed)
    x_mean, x_std = X_train.mean(axis=0), X_train.std(axis=0)
    y_mean, y_std = y_train.mean(), y_train.std()
    return Split(((X_train - x_mean) / x_std).astype(dtype), ((y_train - y_mean) / y_std).astype(dtype),
                 ((X_test - x_mean) / x_std).astype(dtype), ((y_test - y_mean) / y_std).astype(dtype))


class ReplaySampler(Sampler[int]):
    """A ``DataLoader`` sampler that replays precomputed orders: the k-th pass yields ``orders[k]``.

    Use it to make a ``DataLoader`` visit samples in an order drawn elsewhere (e.g. with NumPy).
    """

    def __init__(self, orders: np.ndarray) -> None:
        self.orders = np.asarray(orders)
        if self.orders.ndim != 2:
            raise ValueError(f"orders must have shape (epochs, n_samples), got {self.orders.shape}")
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        if self.epoch >= len(self.orders):
            raise RuntimeError(f"ReplaySampler has only {len(self.orders)} epochs of orders; all were used")
        order = self.orders[self.epoch]
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.orders.shape[1]


Array = np.ndarray | torch.Tensor


def minibatches(X: Array, y: Array, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[Array, Array]]:
    """Yield shuffled ``(X, y)`` batches of NumPy arrays or tensors; the order depends only on ``rng``.

    Giving the NumPy and the PyTorch model generators with the same seed gives them the same batches.
    """
    for idx in batch_indices(rng.permutation(len(X)), batch_size):
        if isinstance(X, torch.Tensor):
            idx = torch.from_numpy(idx).to(X.device)
        yield X[idx], y[idx]


def epoch_orders(n_samples: int, epochs: int, seed: int) -> np.ndarray:
    """One random permutation of ``range(n_samples)`` per epoch, shape ``(epochs, n_samples)``.

    Drawn once and shared, so NumPy and PyTorch runs visit the samples in the same order.
    """
    check_int("n_samples", n_samples, min_value=1)
    check_int("epochs", epochs, min_value=1)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_samples) for _ in range(epochs)])


def batch_slices(n_samples: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``batch_size`` rows covering ``range(n_samples)``; the last one may be smaller.

    Example: ``[X[rows] for rows in batch_slices(len(X), 1024)]`` evaluates a large set in chunks.
    """
    check_int("n_samples", n_samples, min_value=0)
    check_int("batch_size", batch_size, min_value=1)
    return [slice(start, min(start + batch_size, n_samples)) for start in range(0, n_samples, batch_size)]


def batch_indices(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split one epoch's order into consecutive batches; the last one may be smaller."""
    return [order[rows] for rows in batch_slices(len(order), batch_size)]


def rank_batches(X: torch.Tensor, y: torch.Tensor, global_batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0) -> DataLoader:
    """This rank's share of every shuffled global batch: ``global_batch_size // world_size`` samples each.

    ``DistributedSampler`` deals one seeded permutation out to the ranks, so the ranks' batches of step k
    together form the same global batch for any ``world_size`` (incomplete batches dropped). Call
    ``loader.sampler.set_epoch(epoch)`` before each epoch for a new order.
    """
    check_int("world_size", world_size, min_value=1)
    check_int("rank", rank, min_value=0, max_value=world_size - 1)
    check_int("global_batch_size", global_batch_size, min_value=world_size, max_value=len(X))
    if global_batch_size % world_size:
        raise ValueError(f"global_batch_size must be divisible by world_size ({world_size}), got {global_batch_size}")
    dataset = TensorDataset(X, y)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=global_batch_size // world_size, sampler=sampler, drop_last=True)
