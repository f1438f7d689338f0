"""Pictures for notebook 03: training curves, filters and feature maps, grids of digits, code side by side."""

from __future__ import annotations

import math
from html import escape

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML
from torchvision.utils import make_grid

from course_lib.digits_cnn import History


def plot_histories(histories: dict[str, History], title: str) -> plt.Figure:
    """Loss (train and test) and test accuracy per epoch, one line style per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, h) in enumerate(histories.items()):
        # later runs are drawn thinner on top, so that runs which coincide stay visible
        style = {"color": colors[i % len(colors)], "linewidth": max(4.0 - 1.5 * i, 1.0), "alpha": 0.8}
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax_loss.plot(epochs, h.train_loss, label=f"{name}: train", **style)
        ax_loss.plot(epochs, h.test_loss, linestyle="--", label=f"{name}: test", **style)
        ax_acc.plot(epochs, 100 * np.array(h.test_accuracy), marker="o", markersize=3, label=name, **style)
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss (nats)", yscale="log")
    ax_acc.set(title="test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_channels(images: np.ndarray, title: str, ncols: int = 8, symmetric: bool = False) -> plt.Figure:
    """Tile the channels of ``images`` (C, H, W), e.g. filters or feature maps, into one picture.

    ``symmetric=True`` shows signed values (weights) on a red-blue scale centred on zero, with a colour
    bar; otherwise each channel is scaled to its own range (feature maps).
    """
    tiles = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    ncols = min(ncols, len(tiles))
    fig, ax = plt.subplots(figsize=(1.0 * ncols + 1.2, 1.0 * math.ceil(len(tiles) / ncols) + 0.7))
    if symmetric:
        limit = float(tiles.abs().max()) or 1.0
        grid = make_grid(tiles, nrow=ncols, padding=1, pad_value=0.0)[0]
        shown = ax.imshow(grid.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(shown, ax=ax, fraction=0.03, label="weight")
    else:
        grid = make_grid(tiles, nrow=ncols, padding=1, normalize=True, scale_each=True, pad_value=1.0)[0]
        ax.imshow(grid.numpy(), cmap="magma")
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def show_digit_grid(images: torch.Tensor, captions: list[str], title: str, nrow: int = 8) -> plt.Figure:
    """Tile ``images`` (N, 1, H, W) with ``torchvision.utils.make_grid`` and write a caption over each tile."""
    if len(images) != len(captions):
        raise ValueError(f"need one caption per image, got {len(captions)} captions for {len(images)} images")
    padding = 2
    grid = make_grid(images.detach().cpu().float(), nrow=nrow, padding=padding, normalize=True, pad_value=0.2)
    rows, cols = math.ceil(len(images) / nrow), min(nrow, len(images))
    fig, ax = plt.subplots(figsize=(1.1 * cols + 0.4, 1.25 * rows + 0.6))
    ax.imshow(grid[0].numpy(), cmap="gray_r")
    tile_h, tile_w = images.shape[2] + padding, images.shape[3] + padding
    for i, caption in enumerate(captions):
        r, c = divmod(i, nrow)
        ax.text(c * tile_w + padding, r * tile_h + padding, caption, color="tab:red", fontsize=8, va="top",
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.5, "edgecolor": "none"})
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def side_by_side(left: str, right: str, left_title: str = "NumPy", right_title: str = "PyTorch") -> HTML:
    """Two code listings in two columns (rendered as HTML in Jupyter)."""
    cells = "".join(f'<td style="vertical-align:top;text-align:left"><b>{escape(title)}</b>'
                    f'<pre style="font-size:11px">{escape(code.rstrip())}</pre></td>'
                    for title, code in ((left_title, left), (right_title, right)))
    return HTML(f"<table><tr>{cells}</tr></table>")
