"""The notebook 06 checkers accept right answers, explain wrong ones and say "[not done]" before an attempt."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch06 import (
    check_absmax_int8,
    check_checkpointed_stack,
    check_lora_count,
    check_lora_forward,
)
from course_lib.finetuning import lora_parameter_count, make_tokenizer, tiny_qwen2

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def not_attempted(*args: object) -> None:
    raise NotImplementedError("your turn: replace this line with your code")


def test_lora_forward_checker() -> None:
    check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + b + alpha / A.shape[0] * x @ A.T @ B.T)
    with pytest.raises(ExerciseFailed, match="not scaled"):
        check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + b + x @ A.T @ B.T)
    with pytest.raises(ExerciseFailed, match="with B = 0 the output must equal the base layer's"):
        check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + alpha / A.shape[0] * x @ A.T @ B.T)  # no bias
    with pytest.raises(ExerciseFailed, match="raised RuntimeError"):  # factors in the wrong order
        check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + b + x @ B.T @ A.T)


def test_lora_count_checker_compares_the_prediction_with_the_measured_count() -> None:
    model = tiny_qwen2(make_tokenizer().vocab_size)
    measured = lora_parameter_count(model, TARGETS, 16)  # what peft trains (checked in test_finetuning)

    def right(m: nn.Module, r: int) -> int:
        return sum(r * (p.in_features + p.out_features) for layer in m.model.layers
                   for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                             layer.self_attn.o_proj))

    check_lora_count(right, model, r=16, measured=measured)
    layers = model.config.num_hidden_layers
    with pytest.raises(ExerciseFailed, match="you predicted .*, peft counted .*grouped-query"):
        check_lora_count(lambda m, r: layers * 4 * r * 2 * m.config.hidden_size, model, r=16, measured=measured)
    with pytest.raises(ExerciseFailed, match="factor of 2"):
        check_lora_count(lambda m, r: 2 * right(m, r), model, r=16, measured=measured)
    with pytest.raises(ExerciseFailed, match="frozen weights"):
        check_lora_count(lambda m, r: sum(p.in_features * p.out_features for layer in m.model.layers
                                          for p in (layer.self_attn.q_proj, layer.self_attn.k_proj,
                                                    layer.self_attn.v_proj, layer.self_attn.o_proj)),
                         model, r=16, measured=measured)
    with pytest.raises(ExerciseFailed, match="Python int"):
        check_lora_count(lambda m, r: torch.tensor(right(m, r)), model, r=16, measured=measured)


def checkpointed_stack(blocks: list[nn.Module], x: torch.Tensor, every: int) -> torch.Tensor:
    for start in range(0, len(blocks), every):
        x = checkpoint(nn.Sequential(*blocks[start:start + every]), x, use_reentrant=False)
    return x


def test_checkpointed_stack_checker_spots_plain_per_block_and_detached_stacks() -> None:
    check_checkpointed_stack(checkpointed_stack)

    def plain(blocks: list[nn.Module], x: torch.Tensor, every: int) -> torch.Tensor:
        for block in blocks:
            x = block(x)
        return x

    def per_block(blocks: list[nn.Module], x: torch.Tensor, every: int) -> torch.Tensor:
        for block in blocks:
            x = checkpoint(block, x, use_reentrant=False)
        return x

    with pytest.raises(ExerciseFailed, match="saved 20480 B for backward; nothing was recomputed"):
        check_checkpointed_stack(plain)
    with pytest.raises(ExerciseFailed, match="every=2 .*one input per block: group 2 consecutive blocks"):
        check_checkpointed_stack(per_block)
    with pytest.raises(ExerciseFailed, match="carries no gradient"):
        check_checkpointed_stack(lambda blocks, x, every: checkpointed_stack(blocks, x, every).detach())
    with pytest.raises(ExerciseFailed, match="output with every=1"):
        check_checkpointed_stack(lambda blocks, x, every: checkpointed_stack(blocks[:-1], x, every))  # a block left out


def test_absmax_checker_spots_truncation_and_a_wrong_scale() -> None:
    def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = w.abs().max() / 127
        return torch.round(w / scale).to(torch.int8), scale

    check_absmax_int8(quantize, lambda c, s: c.float() * s)

    def truncating(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = w.abs().max() / 127
        return (w / scale).to(torch.int8), scale

    def unsigned_range(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = w.abs().max() / 255
        return torch.round(w / scale).clamp(-128, 127).to(torch.int8), scale

    with pytest.raises(ExerciseFailed, match="round to the nearest"):
        check_absmax_int8(truncating, lambda c, s: c.float() * s)
    with pytest.raises(ExerciseFailed, match="divided by 127"):
        check_absmax_int8(unsigned_range, lambda c, s: c.float() * s)
    with pytest.raises(ExerciseFailed, match="int8 tensor"):
        check_absmax_int8(lambda w: (w, 1.0), lambda c, s: c)


@pytest.mark.parametrize("check, args", [
    (check_lora_forward, ()),
    (check_lora_count, (None, 16, 14336)),
    (check_checkpointed_stack, ()),
    (check_absmax_int8, (not_attempted,)),
])
def test_not_attempted_prints_not_done(check, args, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    check(not_attempted, *args)
    assert capsys.readouterr().out.startswith("[not done] Exercise 6.")


def test_exercises_are_numbered_in_notebook_order() -> None:
    import json
    import re
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "06_efficient_finetuning.ipynb").read_text())["cells"]
    text = ["".join(cell["source"]) for cell in cells]
    headings = [m for t in text for m in re.findall(r"### Your turn: exercise (6\.\d)", t)]
    assert headings == ["6.1", "6.2", "6.3", "6.4"]
    checkers = [m for t in text for m in re.findall(r"^(check_\w+)\(", t, re.MULTILINE)]
    assert checkers == ["check_lora_forward", "check_lora_count", "check_checkpointed_stack", "check_absmax_int8"]
    titles = [re.search(r"Exercise (6\.\d)", f.__doc__).group(1) for f in
              (check_lora_forward, check_lora_count, check_checkpointed_stack, check_absmax_int8)]
    assert titles == headings
