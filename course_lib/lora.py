"""LoRA written by hand: a frozen linear layer plus a trainable low-rank update ``(alpha / r) * B @ A``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from course_lib.params import check_float, check_int


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * x @ A.T @ B.T``; ``base`` is frozen and ``B`` starts at zero (no change at step 0)."""

    def __init__(self, base: nn.Module, r: int, alpha: float) -> None:
        super().__init__()
        check_int("r", r, min_value=1)
        check_float("alpha", alpha, min_value=0.0, min_inclusive=False)
        self.base = base.requires_grad_(False)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.scaling = alpha / r
        device = next(iter([*base.parameters(), *base.buffers()])).device
        factory = {"device": device, "dtype": base.weight.dtype if isinstance(base, nn.Linear) else torch.float32}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # what nn.Linear and peft use
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The update LoRA adds to the base weight: ``(alpha / r) * B @ A``, shape ``(out, in)``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight, so inference costs one matmul again."""
        if not isinstance(self.base, nn.Linear) or self.merged:
            raise RuntimeError(f"merge needs an unmerged nn.Linear base, got {type(self.base).__name__} "
                               f"with merged={self.merged}")
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, giving back the base weight (up to float rounding)."""
        if not self.merged:
            raise RuntimeError("unmerge needs a merged layer, got merged=False")
        self.base.weight -= self.delta_weight()
        self.merged = False


def add_lora(model: nn.Module, target_modules: Iterable[str], r: int, alpha: float) -> list[str]:
    """Freeze ``model`` and wrap every submodule named in ``target_modules`` with :class:`LoRALinear`.

    Returns the full names of the wrapped modules. Only the LoRA factors remain trainable.
    """
    targets = set(target_modules)
    model.requires_grad_(False)
    found = [(name, module) for name, module in model.named_modules()
             if name.rsplit(".", 1)[-1] in targets and hasattr(module, "in_features")]
    if not found:
        raise ValueError(f"target_modules must name layers of the model, got {sorted(targets)}")
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, LoRALinear(module, r, alpha))
    return [name for name, _ in found]


def lora_parameter_count(model: nn.Module, target_modules: Iterable[str], r: int) -> int:
    """``sum r * (in_features + out_features)`` over the targeted layers (works on a meta-device model too)."""
    targets = set(target_modules)
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if name.rsplit(".", 1)[-1] in targets and hasattr(m, "in_features"))
