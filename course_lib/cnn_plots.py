"""Pictures for notebook 03: training curves, filters and feature maps, grids of digits."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid

from course_lib.digits_cnn import History


def plot_histories(histories: dict[str, History], title: str) -> plt.Figure:
    """Loss (train and test) and test accuracy per epoch, one line style per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (name, h), color in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False):
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax_loss.plot(epochs, h.train_loss, color=color, label=f"{name}: train")
        ax_loss.plot(epochs, h.test_loss, color=color, linestyle="--", label=f"{name}: test")
        ax_acc.plot(epochs, 100 * np.array(h.test_accuracy), color=color, marker="o", markersize=3, label=name)
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss (nats)", yscale="log")
    ax_acc.set(title="test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_channels(images: np.ndarray, title: str, ncols: int = 8, symmetric: bool = False) -> plt.Figure:
    """One small panel per channel of ``images`` (C, H, W): filters or feature maps.

    ``symmetric=True`` uses a red-blue colour map centred on zero (for weights, which have a sign).
    """
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.3 * nrows + 0.5), squeeze=False)
    limit = float(np.abs(images).max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            kwargs = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit} if symmetric else {"cmap": "viridis"}
            ax.imshow(images[i], **kwargs)
            ax.set_title(str(i), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_digit_grid(images: torch.Tensor, captions: list[str], title: str, nrow: int = 8) -> plt.Figure:
    """Tile ``images`` (N, 1, H, W) with ``torchvision.utils.make_grid`` and write a caption over each tile."""
    if len(images) != len(captions):
        raise ValueError(f"need one caption per image, got {len(captions)} captions for {len(images)} images")
    padding = 2
    grid = make_grid(images.detach().cpu().float(), nrow=nrow, padding=padding, normalize=True, pad_value=1.0)
    rows, cols = math.ceil(len(images) / nrow), min(nrow, len(images))
    fig, ax = plt.subplots(figsize=(1.1 * cols + 0.4, 1.25 * rows + 0.6))
    ax.imshow(grid[0].numpy(), cmap="gray_r")
    tile_h, tile_w = images.shape[2] + padding, images.shape[3] + padding
    for i, caption in enumerate(captions):
        r, c = divmod(i, nrow)
        ax.text(c * tile_w + padding, r * tile_h + padding, caption, color="tab:red", fontsize=7, va="top",
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.5, "edgecolor": "none"})
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig
