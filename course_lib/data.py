"""Data sets the course uses: bundled with scikit-learn or generated, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from course_lib.params import check_float, check_int


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
    digits = load_digits()
    images = (digits.images / 16.0)[:, None, :, :]  # pixel values 0..16 -> 0..1, channel axis added
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)
    mean, std = X_train.mean(), X_train.std()
    return Split(((X_train - mean) / std).astype(dtype), y_train.astype(np.int64),
                 ((X_test - mean) / std).astype(dtype), y_test.astype(np.int64))
