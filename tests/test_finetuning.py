"""The tiny language model kit: tokenizer, tasks, model config, training, greedy accuracy."""

from __future__ import annotations

import pytest
import torch

from course_lib.finetuning import (
    TASKS,
    encode_examples,
    greedy_accuracy,
    make_examples,
    make_tokenizer,
    tiny_qwen2,
    train_lm,
)
from course_lib.memory import count_parameters, optimizer_state_bytes


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
    input_ids, labels = encode_examples(tok, [("Cabcd=", "abcd")])
    assert input_ids.shape == (1, 10)
    assert (labels[0, :6] == -100).all() and torch.equal(labels[0, 6:], input_ids[0, 6:])


def test_model_uses_grouped_query_attention() -> None:
    model = tiny_qwen2(make_tokenizer().vocab_size, hidden_size=64, num_heads=4, num_kv_heads=2)
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.out_features == attn.q_proj.out_features // 2
    assert 50_000 < count_parameters(model) < 1_000_000


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

