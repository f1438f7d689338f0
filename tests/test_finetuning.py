"""course_lib.finetuning: the tiny language model kit, hand-written LoRA, and absmax int8 / blockwise
4-bit quantization."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from course_lib.finetuning import (
    TASKS,
    Linear4bit,
    LoRALinear,
    add_lora,
    dequantize_4bit,
    dequantize_int8,
    encode_examples,
    greedy_accuracy,
    lora_parameter_count,
    make_examples,
    make_tokenizer,
    nf4_bytes,
    nf4_levels,
    quantize_4bit,
    quantize_int8,
    quantize_linears_4bit,
    step_peak_bytes,
    tiny_qwen2,
    train_lm,
    training_state_bytes,
)
from course_lib.memory import count_parameters, optimizer_state_bytes

# --- the tiny language model ---

def test_tokenizer_round_trip_and_unknown_characters() -> None:
    tok = make_tokenizer()
    assert tok.decode(tok.encode("Cabcd=abcd")) == "Cabcd=abcd"
    assert tok.pad_id == 0 and tok.vocab_size == len(set(tok.itos))
    with pytest.raises(ValueError, match="unknown characters"):
        tok.encode("xyz")


def test_tasks_and_disjoint_examples() -> None:
    assert TASKS["shift"][1]("abij") == "bcja" and TASKS["shift_half"][1]("abij") == "bcij"
    train = make_examples("shift_half", 50, seed=0)
    test = make_examples("shift_half", 100, seed=1, exclude=train)
    assert len({p for p, _ in train}) == 50
    assert not {p for p, _ in train} & {p for p, _ in test}
    assert train[0][0].startswith("H") and train[0][0].endswith("=")


def test_labels_score_only_the_answer() -> None:
    tok = make_tokenizer()
    prompt, answer = "Cabcd=", "abcd"
    input_ids, labels = encode_examples(tok, [(prompt, answer)])
    assert input_ids.shape == (1, len(prompt + answer))
    p = len(prompt)
    assert (labels[0, :p] == -100).all() and torch.equal(labels[0, p:], input_ids[0, p:])


def qwen2_parameters(vocab_size: int, hidden: int, layers: int, heads: int, kv_heads: int) -> int:
    """Parameter count of tiny_qwen2 from the Qwen2 architecture (tied embeddings, MLP width 2 * hidden)."""
    kv = kv_heads * (hidden // heads)  # width of the key and of the value projections
    attention = (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden  # q, k, v with bias; o without
    mlp = 3 * hidden * (2 * hidden)  # gate, up, down
    return vocab_size * hidden + layers * (attention + mlp + 2 * hidden) + hidden  # 2 RMSNorms a layer, 1 final


@pytest.mark.parametrize(("hidden", "layers", "heads", "kv_heads"), [(64, 2, 4, 2), (32, 1, 4, 4)])
def test_model_uses_grouped_query_attention(hidden: int, layers: int, heads: int, kv_heads: int) -> None:
    vocab_size = make_tokenizer().vocab_size
    model = tiny_qwen2(vocab_size, hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads)
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.out_features == attn.q_proj.out_features * kv_heads // heads
    assert count_parameters(model) == qwen2_parameters(vocab_size, hidden, layers, heads, kv_heads)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and the machine may be shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_learns_copy_and_reports_adam_state(one_thread: None) -> None:
    torch.manual_seed(0)
    tok = make_tokenizer()
    model = tiny_qwen2(tok.vocab_size, hidden_size=32, num_layers=1)
    examples = make_examples("copy", 100, length=2, seed=0)  # every 2-letter string
    result = train_lm(model, tok, examples, steps=150, lr=1e-2, batch_size=32)
    assert result.losses[-1] < result.losses[0] / 4
    assert greedy_accuracy(model, tok, examples[:50]) > 0.5
    state = optimizer_state_bytes(result.optimizer)
    assert state["exp_avg"] + state["exp_avg_sq"] == 2 * 4 * count_parameters(model)
    assert len(result.losses) == 150 and result.seconds_per_step > 0


def test_train_lm_takes_the_steps_of_training_train_step(one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import course_lib.finetuning as finetuning
    from course_lib.training import train_step

    calls = []

    def counting_step(*args: object) -> torch.Tensor:
        calls.append(args)
        return train_step(*args)

    monkeypatch.setattr(finetuning, "train_step", counting_step)
    tok = make_tokenizer()
    model = tiny_qwen2(tok.vocab_size, hidden_size=16, num_layers=1)
    result = train_lm(model, tok, make_examples("copy", 8, length=2), steps=3, lr=1e-2, batch_size=4)
    assert len(calls) == 3 and [len(X) for _, _, _, X, _ in calls] == [4, 4, 4]
    assert calls[0][1] is result.optimizer and model.training
    with pytest.raises(ValueError, match="require gradients"):
        train_lm(model.requires_grad_(False), tok, make_examples("copy", 8, length=2), steps=1, lr=1e-2)


def test_step_peak_bytes_splits_one_step_into_weights_adam_and_what_the_step_makes(one_thread: None) -> None:
    import copy

    from course_lib.memory import PeakTensorMeter, parameter_bytes

    torch.manual_seed(0)
    tok = make_tokenizer()
    model = tiny_qwen2(tok.vocab_size, hidden_size=32, num_layers=1)
    ids, labels = encode_examples(tok, make_examples("copy", 16, length=2))
    full = step_peak_bytes(copy.deepcopy(model), ids, labels)
    assert list(full) == ["weights", "Adam state", "made in the step"]
    buffers = sum(b.untyped_storage().nbytes() for b in model.buffers())
    assert full["weights"] == parameter_bytes(model) + buffers
    assert full["Adam state"] == 2 * parameter_bytes(model) + 4 * len(list(model.parameters()))  # moments + steps
    with PeakTensorMeter() as meter:  # a step's own tensors include at least the gradients
        model(input_ids=ids, labels=labels).loss.backward()
    assert full["made in the step"] >= parameter_bytes(model) and full["made in the step"] >= meter.peak * 0.5
    lora = copy.deepcopy(model)
    add_lora(lora, TARGETS, r=2, alpha=2)
    adapters = lora_parameter_count(model, TARGETS, 2)
    small = step_peak_bytes(lora, ids, labels)
    assert small["weights"] == full["weights"] + 4 * adapters and small["Adam state"] < full["Adam state"]
    assert small["made in the step"] < full["made in the step"]
    with pytest.raises(ValueError, match="require gradients"):
        step_peak_bytes(copy.deepcopy(model).requires_grad_(False), ids, labels)


# --- LoRA: unchanged model at step 0, exact merge/unmerge, parameter counts that match peft ---

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


# --- absmax int8 and blockwise 4-bit (NF4-style) quantization ---

def test_int8_round_trip_error_is_at_most_half_a_step() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    codes, scale = quantize_int8(w)
    assert codes.dtype == torch.int8 and scale.shape == (16, 1)
    assert codes.abs().amax(dim=1).eq(127).all()  # each row's largest value maps to +-127
    err = (dequantize_int8(codes, scale) - w).abs()
    assert (err <= scale / 2 + 1e-7).all()


def test_nf4_levels_are_sixteen_sorted_values_with_exact_zero_and_ends() -> None:
    levels = nf4_levels()
    assert levels.shape == (16,)
    assert torch.all(levels[1:] > levels[:-1])
    assert levels[0] == -1 and levels[-1] == 1 and (levels == 0).sum() == 1
    assert (levels > 0).sum() == 8 and (levels < 0).sum() == 7


def test_4bit_stores_half_a_byte_per_value_and_picks_the_nearest_level() -> None:
    torch.manual_seed(0)
    w = torch.randn(10, 13)  # 130 values: not a multiple of the block size, so the last block is padded
    q = quantize_4bit(w, block_size=64)
    assert q.packed.dtype == torch.uint8 and q.packed.numel() == 3 * 64 // 2 and q.absmax.numel() == 3
    restored = dequantize_4bit(q)
    assert restored.shape == w.shape
    levels = nf4_levels()
    flat = torch.nn.functional.pad(w.flatten(), (0, 62)).view(3, 64)
    normalised = flat / flat.abs().amax(dim=1, keepdim=True)
    nearest = levels[(normalised[..., None] - levels).abs().argmin(dim=-1)]
    expected = (nearest * flat.abs().amax(dim=1, keepdim=True)).flatten()[:130].view(10, 13)
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-6)


def test_4bit_error_is_larger_than_int8_but_bounded() -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 64)
    err8 = (dequantize_int8(*quantize_int8(w)) - w).abs().mean()
    err4 = (dequantize_4bit(quantize_4bit(w)) - w).abs().mean()
    assert err8 < err4 < 0.1 * w.abs().mean()


def test_linear4bit_matches_a_linear_with_the_dequantized_weight() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 8)
    q = Linear4bit(linear)
    x = torch.randn(3, 32)
    ref = x @ dequantize_4bit(quantize_4bit(linear.weight)).T + linear.bias
    torch.testing.assert_close(q(x), ref)
    assert list(q.parameters()) == []


def test_quantize_linears_skips_the_head() -> None:
    model = nn.Sequential()
    model.add_module("up", nn.Linear(4, 8))
    model.add_module("lm_head", nn.Linear(8, 4))
    assert quantize_linears_4bit(model) == 1
    assert isinstance(model.up, Linear4bit) and isinstance(model.lm_head, nn.Linear)


def test_bad_block_size_is_refused() -> None:
    with pytest.raises(ValueError, match="block_size must be even"):
        quantize_4bit(torch.ones(8), block_size=3)


# --- memory formulas ---


@pytest.mark.parametrize(("shape", "block_size"), [((128, 64), 64), ((7, 5), 4), ((3, 3), 64), ((100,), 16)])
def test_nf4_bytes_is_what_quantize_4bit_stores(shape: tuple[int, ...], block_size: int) -> None:
    q = quantize_4bit(torch.randn(shape), block_size=block_size)
    numel = torch.Size(shape).numel()
    assert nf4_bytes(numel, block_size) == q.nbytes
    if numel % block_size == 0:
        assert nf4_bytes(numel, block_size) * 8 == numel * (4 + 32 / block_size)  # 4.5 bits at block 64


def test_training_state_bytes_match_a_quantized_lora_model() -> None:
    import copy

    from course_lib.memory import parameter_bytes

    torch.manual_seed(0)
    model = tiny_qwen2(make_tokenizer().vocab_size)
    P, adapters = count_parameters(model), lora_parameter_count(model, TARGETS, r=8)
    full = training_state_bytes(model, "full", TARGETS, r=8)
    assert full == {"weights": parameter_bytes(model), "gradients": 4 * P, "adam": 8 * P}
    lora = training_state_bytes(model, "lora", TARGETS, r=8)
    assert lora == {"weights": 4 * P + 4 * adapters, "gradients": 4 * adapters, "adam": 8 * adapters}
    q_model = copy.deepcopy(model)
    quantize_linears_4bit(q_model)
    add_lora(q_model, TARGETS, r=8, alpha=8)
    stored = parameter_bytes(q_model) + sum(
        b.numel() * b.element_size() for name, b in q_model.named_buffers() if "inv_freq" not in name)
    assert training_state_bytes(model, "qlora", TARGETS, r=8)["weights"] == stored
    assert training_state_bytes(model, "qlora", TARGETS, r=8)["adam"] == lora["adam"]
    half = training_state_bytes(model, "full", TARGETS, r=8, weight_bytes=2)
    assert half["weights"] * 2 == full["weights"] and half["adam"] == full["adam"]
    with pytest.raises(ValueError, match="method"):
        training_state_bytes(model, "adapter", TARGETS, r=8)


def test_training_state_bytes_on_a_meta_model() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    P = count_parameters(model)
    assert training_state_bytes(model, "full", TARGETS, r=4)["adam"] == 8 * P
    # q,k,v,o per layer: r * (128+128) + 2 * r * (128+64) + r * (128+128)
    assert training_state_bytes(model, "lora", TARGETS, r=4)["adam"] == 8 * 2 * 4 * (256 + 2 * 192 + 256)
