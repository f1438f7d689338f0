"""Low-bit weights by hand: absmax int8 per row, and blockwise 4-bit with NF4-style levels (the QLoRA idea).

A weight is stored as small integer codes plus one float scale per row (int8) or per block (4-bit),
and turned back into floats ("dequantized") when a layer runs. Only storage shrinks: the matmul
itself still happens in float here (bitsandbytes' CUDA kernels fuse the two steps on a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.params import check_int


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax int8 per row: ``codes = round(w / scale)`` with ``scale = max|row| / 127``."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out, in), got shape {tuple(weight.shape)}")
    scale = weight.abs().amax(dim=1, keepdim=True).float() / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    codes = torch.round(weight.float() / scale).clamp(-127, 127).to(torch.int8)
    return codes, scale


def dequantize_int8(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float32 weight back from int8 codes and per-row scales."""
    return codes.float() * scale


def nf4_levels() -> torch.Tensor:
    """The 16 NF4 levels in [-1, 1]: quantiles of a normal distribution, with an exact 0 (QLoRA, Dettmers 2023)."""
    normal = torch.distributions.Normal(0.0, 1.0)
    offset = 0.9677083  # the paper's choice: the 1st/16th level at this quantile, then rescale to +-1
    positive = normal.icdf(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -normal.icdf(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return (levels / levels.abs().max()).float()


@dataclass
class Quantized4bit:
    """A tensor in 4 bits: two codes per byte, one float32 absmax per block, and what to rebuild it."""

    packed: torch.Tensor  # uint8, two 4-bit codes per byte
    absmax: torch.Tensor  # float32, one per block
    shape: tuple[int, ...]
    block_size: int

    @property
    def nbytes(self) -> int:
        """Bytes of storage: packed codes plus scales."""
        return self.packed.numel() + self.absmax.numel() * self.absmax.element_size()


def quantize_4bit(weight: torch.Tensor, block_size: int = 64, levels: torch.Tensor | None = None) -> Quantized4bit:
    """Blockwise 4-bit: scale each block of ``block_size`` values by its absmax, store the nearest level's index."""
    check_int("block_size", block_size, min_value=2)
    if block_size % 2:
        raise ValueError(f"block_size must be even (two codes per byte), got {block_size}")
    levels = nf4_levels() if levels is None else levels.float()
    if levels.numel() != 16:
        raise ValueError(f"levels must hold 16 values for 4 bits, got {levels.numel()}")
    flat = weight.detach().float().flatten()
    blocks = F.pad(flat, (0, -flat.numel() % block_size)).view(-1, block_size)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    normalised = blocks / torch.where(absmax == 0, torch.ones_like(absmax), absmax)
    sorted_levels, order = levels.to(flat.device).sort()
    midpoints = (sorted_levels[1:] + sorted_levels[:-1]) / 2
    codes = order[torch.bucketize(normalised, midpoints)].to(torch.uint8).flatten()
    packed = codes[0::2] << 4 | codes[1::2]
    return Quantized4bit(packed, absmax.flatten(), tuple(weight.shape), block_size)


def dequantize_4bit(q: Quantized4bit, levels: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 tensor back from :func:`quantize_4bit` (same ``levels``)."""
    levels = (nf4_levels() if levels is None else levels.float()).to(q.packed.device)
    codes = torch.stack([q.packed >> 4, q.packed & 0xF], dim=1).flatten().long()
    values = levels[codes].view(-1, q.block_size) * q.absmax[:, None]
    numel = 1
    for size in q.shape:
        numel *= size
    return values.flatten()[:numel].view(q.shape)


class Linear4bit(nn.Module):
    """A frozen linear layer whose weight is stored in 4 bits and dequantized on every forward."""

    def __init__(self, linear: nn.Linear, block_size: int = 64) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q = quantize_4bit(linear.weight, block_size)
        self.block_size = block_size
        self.register_buffer("packed", q.packed)
        self.register_buffer("absmax", q.absmax)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def weight_4bit(self) -> Quantized4bit:
        """The stored weight."""
        return Quantized4bit(self.packed, self.absmax, (self.out_features, self.in_features), self.block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_4bit(self.weight_4bit()).to(x.dtype), self.bias)


def quantize_linears_4bit(model: nn.Module, block_size: int = 64, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Replace every ``nn.Linear`` of ``model`` (except names in ``skip``) with :class:`Linear4bit`; return how many."""
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] not in skip]
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Linear4bit(module, block_size))
    return len(found)
