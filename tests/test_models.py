"""course_lib.models: the PyTorch models shared by notebooks and scripts."""

import pytest
import torch

from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN


def simple_cnn_parameters(in_channels: int, num_classes: int, channels: tuple[int, int], hidden: int,
                          image_size: int) -> int:
    """SimpleCNN's parameter count from its architecture: two 3x3 convs, two poolings by 2, two linears."""
    c1, c2 = channels
    conv = c1 * (in_channels * 3 * 3 + 1) + c2 * (c1 * 3 * 3 + 1)
    flat = c2 * (image_size // 4) ** 2
    return conv + hidden * (flat + 1) + num_classes * (hidden + 1)


@pytest.mark.parametrize("kwargs", [{}, {"channels": (32, 64), "hidden": 320}, {"image_size": 16, "num_classes": 3}])
def test_simple_cnn_shapes_and_parameter_count(kwargs: dict) -> None:
    arch = {"in_channels": 1, "num_classes": 10, "channels": (8, 16), "hidden": 64, "image_size": 8, **kwargs}
    model = SimpleCNN(**arch)
    size = arch["image_size"]
    assert model(torch.zeros(5, 1, size, size)).shape == (5, arch["num_classes"])
    assert count_parameters(model) == simple_cnn_parameters(**arch)


def test_simple_cnn_refuses_an_image_size_it_cannot_pool_twice() -> None:
    with pytest.raises(ValueError, match="image_size must be divisible by 4, got 10"):
        SimpleCNN(image_size=10)
