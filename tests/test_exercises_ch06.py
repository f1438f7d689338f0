"""The notebook 06 checkers accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch06 import check_absmax_int8, check_checkpointed, check_lora_count, check_lora_forward
from course_lib.finetuning import make_tokenizer, tiny_qwen2


def test_lora_forward_checker() -> None:
    check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + b + alpha / A.shape[0] * x @ A.T @ B.T)
    with pytest.raises(ExerciseFailed, match="not scaled"):
        check_lora_forward(lambda x, w, b, A, B, alpha: x @ w.T + b + x @ A.T @ B.T)


def test_lora_count_checker_spots_square_assumption() -> None:
    model = tiny_qwen2(make_tokenizer().vocab_size)
    layers = model.config.num_hidden_layers

    def right(m, r):
        return sum(r * (p.in_features + p.out_features) for layer in m.model.layers
                   for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                             layer.self_attn.o_proj))

    check_lora_count(right, model)
    with pytest.raises(ExerciseFailed, match="grouped-query"):
        check_lora_count(lambda m, r: layers * 4 * r * 2 * m.config.hidden_size, model)


def test_absmax_checker_spots_truncation() -> None:
    def quantize(w):
        scale = w.abs().max() / 127
        return torch.round(w / scale).to(torch.int8), scale

    check_absmax_int8(quantize, lambda c, s: c.float() * s)

    def truncating(w):
        scale = w.abs().max() / 127
        return (w / scale).to(torch.int8), scale

    with pytest.raises(ExerciseFailed, match="round to the nearest"):
        check_absmax_int8(truncating, lambda c, s: c.float() * s)
    with pytest.raises(ExerciseFailed, match="not attempted"):
        check_absmax_int8(lambda w: (_ for _ in ()).throw(NotImplementedError()), lambda c, s: c)


def test_checkpointed_checker_spots_plain_and_detached_blocks() -> None:
    from torch.utils.checkpoint import checkpoint

    check_checkpointed(lambda block, x: checkpoint(block, x, use_reentrant=False))
    with pytest.raises(ExerciseFailed, match="saved 5120 bytes for backward, expected only the input's 1024"):
        check_checkpointed(lambda block, x: block(x))  # right values, nothing recomputed
    with pytest.raises(ExerciseFailed, match="carries no gradient"):
        check_checkpointed(lambda block, x: block(x).detach())
    with pytest.raises(ExerciseFailed, match="output"):
        check_checkpointed(lambda block, x: checkpoint(block, 2 * x, use_reentrant=False))


def test_exercises_are_numbered_in_notebook_order() -> None:
    import json
    import re
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "06_efficient_finetuning.ipynb").read_text())["cells"]
    text = ["".join(cell["source"]) for cell in cells]
    headings = [m for t in text for m in re.findall(r"### Your turn: exercise (6\.\d)", t)]
    assert headings == ["6.1", "6.2", "6.3", "6.4"]
    checkers = [m for t in text for m in re.findall(r"^(check_\w+)\(", t, re.MULTILINE)]
    assert checkers == ["check_lora_forward", "check_lora_count", "check_checkpointed", "check_absmax_int8"]
    titles = [re.search(r"Exercise (6\.\d)", f.__doc__).group(1) for f in
              (check_lora_forward, check_lora_count, check_checkpointed, check_absmax_int8)]
    assert titles == headings
