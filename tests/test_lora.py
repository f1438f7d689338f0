"""Hand-written LoRA: unchanged model at step 0, exact merge/unmerge, parameter counts that match peft."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from course_lib.finetuning import LoRALinear, add_lora, lora_parameter_count, make_tokenizer, tiny_qwen2
from course_lib.memory import count_parameters

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_zero_init_b_leaves_the_layer_unchanged() -> None:
    torch.manual_seed(0)
    base = nn.Linear(6, 5).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    expected = base(x)
    layer = LoRALinear(base, r=2, alpha=4)
    assert torch.equal(layer(x), expected)
    assert not base.weight.requires_grad and layer.lora_A.requires_grad and layer.lora_B.requires_grad


def test_forward_is_base_plus_scaled_low_rank_update() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5).double(), r=3, alpha=6)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 6, dtype=torch.float64)
    w = layer.base.weight + 2.0 * layer.lora_B @ layer.lora_A
    torch.testing.assert_close(layer(x), x @ w.T + layer.base.bias, rtol=0, atol=1e-12)


def test_merge_then_unmerge_restores_weight_and_output() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 4).double(), r=2, alpha=2)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(5, 8, dtype=torch.float64)
    original, unmerged_out = layer.base.weight.clone(), layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), unmerged_out, rtol=0, atol=1e-12)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, original, rtol=0, atol=1e-14)
    with pytest.raises(RuntimeError, match="unmerge needs a merged layer"):
        layer.unmerge()


def test_gradients_reach_only_the_lora_factors() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(4, 3), r=2, alpha=2)
    layer(torch.randn(2, 4)).sum().backward()
    assert layer.base.weight.grad is None
    assert layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0


def test_add_lora_counts_match_formula_and_peft() -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    vocab = make_tokenizer().vocab_size
    ours = tiny_qwen2(vocab)
    expected = lora_parameter_count(ours, TARGETS, r=16)
    wrapped = add_lora(ours, TARGETS, r=16, alpha=16)
    assert len(wrapped) == 4 * ours.config.num_hidden_layers
    assert count_parameters(ours, trainable_only=True) == expected
    with warnings.catch_warnings():  # peft 0.21 reads a property transformers 5 deprecated
        warnings.simplefilter("ignore", FutureWarning)
        theirs = get_peft_model(tiny_qwen2(vocab), LoraConfig(r=16, target_modules=TARGETS, lora_alpha=16))
    assert count_parameters(theirs, trainable_only=True) == expected


def test_add_lora_rejects_unknown_targets() -> None:
    with pytest.raises(ValueError, match="target_modules must name layers"):
        add_lora(nn.Sequential(nn.Linear(2, 2)), ["q_proj"], r=1, alpha=1)
