"""PyTorch models shared by several notebooks and scripts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimpleCNN(nn.Module):
    """conv-relu-pool twice, then two linear layers: the CNN of notebooks 03 and 05.

    Input ``(N, in_channels, image_size, image_size)``; output logits ``(N, num_classes)``.
    ``image_size`` must be divisible by 4 (two 2x2 poolings).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple[int, int] = (8, 16),
                 hidden: int = 64, image_size: int = 8) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(c2 * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
