"""A causal language model small enough to train in seconds: tokenizer, tasks, model, training, accuracy.

Everything is built offline: a character-level tokenizer, synthetic string tasks (copy, shift
every letter by one, and shift only the first half), and a real architecture (transformers' Qwen2, with grouped-query
attention) initialised at random from a config.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from course_lib.params import check_choice, check_float, check_int

LETTERS = "abcdefghij"


def _shift(text: str) -> str:
    return "".join(LETTERS[(LETTERS.index(ch) + 1) % len(LETTERS)] for ch in text)


# task name -> (the one-character opcode that starts its prompts, the answer for a string)
TASKS: dict[str, tuple[str, Callable[[str], str]]] = {
    "copy": ("C", lambda s: s),
    "shift": ("S", _shift),  # every letter to the next one: abcj -> bcda
    "shift_half": ("H", lambda s: _shift(s[: len(s) // 2]) + s[len(s) // 2:]),  # abcd -> bccd
}


class CharTokenizer:
    """One token id per character; id 0 is padding."""

    pad_token = "<pad>"

    def __init__(self, alphabet: str) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must not repeat characters, got {alphabet!r}")
        self.itos = [self.pad_token, *alphabet]
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        self.pad_id = 0

    @property
    def vocab_size(self) -> int:
        """Number of token ids, padding included."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; every character must be in the alphabet."""
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise ValueError(f"text must use the tokenizer's alphabet {''.join(self.itos[1:])!r}, "
                             f"got unknown characters {unknown}")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, padding dropped."""
        return "".join(self.itos[i] for i in ids if i != self.pad_id)


def make_tokenizer() -> CharTokenizer:
    """The tokenizer of every task: letters, one opcode per task and ``=``."""
    return CharTokenizer(LETTERS + "".join(op for op, _ in TASKS.values()) + "=")


def make_examples(task: str, n: int, length: int = 4, seed: int = 0,
                  exclude: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """``n`` distinct ``(prompt, answer)`` pairs such as ``("Habcd=", "bccd")``, none of them in ``exclude``."""
    check_choice("task", task, TASKS)
    check_int("n", n, min_value=1)
    check_int("length", length, min_value=1)
    opcode, answer = TASKS[task]
    taken = {prompt for prompt, _ in exclude}
    if n > len(LETTERS) ** length - len(taken):
        raise ValueError(f"n must be at most {len(LETTERS) ** length - len(taken)} (distinct strings of length "
                         f"{length} not excluded), got {n}")
    rng = random.Random(seed)
    examples: list[tuple[str, str]] = []
    while len(examples) < n:
        text = "".join(rng.choice(LETTERS) for _ in range(length))
        prompt = f"{opcode}{text}="
        if prompt not in taken:
            taken.add(prompt)
            examples.append((prompt, answer(text)))
    return examples


def encode_examples(tokenizer: CharTokenizer, examples: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` of prompt + answer and ``labels`` that score the answer only (-100 on the prompt)."""
    lengths = {(len(p), len(a)) for p, a in examples}
    if len(lengths) != 1:
        raise ValueError(f"examples must share one prompt length and one answer length, got {sorted(lengths)}")
    prompt_len = lengths.pop()[0]
    input_ids = torch.tensor([tokenizer.encode(p + a) for p, a in examples])
    labels = input_ids.clone()
    labels[:, :prompt_len] = -100
    return input_ids, labels


def tiny_qwen2(vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, max_positions: int = 64, attn_implementation: str = "sdpa") -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM (grouped-query attention when ``num_kv_heads < num_heads``)."""
    check_int("hidden_size", hidden_size, min_value=8)
    check_int("num_heads", num_heads, min_value=1)
    check_int("num_kv_heads", num_kv_heads, min_value=1)
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"hidden_size must be divisible by num_heads and num_heads by num_kv_heads, "
                         f"got {hidden_size}, {num_heads}, {num_kv_heads}")
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_kv_heads, max_position_embeddings=max_positions,
                         tie_word_embeddings=True, attention_dropout=0.0, use_cache=False,
                         pad_token_id=0, bos_token_id=None, eos_token_id=None)
    config._attn_implementation = attn_implementation
    return Qwen2ForCausalLM(config)


@torch.no_grad()
def greedy_generate(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Append ``max_new_tokens`` tokens to each row, each the most likely next token (no sampling)."""
    model.eval()
    for _ in range(max_new_tokens):
        next_ids = model(input_ids=input_ids).logits[:, -1].argmax(dim=-1, keepdim=True)
        input_ids = torch.cat([input_ids, next_ids], dim=1)
    return input_ids


def greedy_accuracy(model: nn.Module, tokenizer: CharTokenizer, examples: list[tuple[str, str]]) -> float:
    """Fraction of prompts whose greedy completion equals the answer exactly."""
    input_ids, _ = encode_examples(tokenizer, examples)
    answer_len = len(examples[0][1])
    prompts = input_ids[:, :-answer_len].to(next(model.parameters()).device)
    generated = greedy_generate(model, prompts, answer_len)[:, -answer_len:].cpu()
    return (generated == input_ids[:, -answer_len:]).all(dim=1).float().mean().item()


@dataclass
class TrainResult:
    """What :func:`train_lm` did: the loss of every step, the optimizer, the median wall time of a step."""

    losses: list[float]
    optimizer: torch.optim.Optimizer
    seconds_per_step: float


def train_lm(model: nn.Module, tokenizer: CharTokenizer, examples: list[tuple[str, str]], steps: int,
             lr: float, batch_size: int = 8, seed: int = 0) -> TrainResult:
    """AdamW on the parameters that require gradients, one random batch of ``examples`` per step."""
    check_int("steps", steps, min_value=1)
    check_float("lr", lr, min_value=0.0, min_inclusive=False)
    check_int("batch_size", batch_size, min_value=1, max_value=len(examples))
    device = next(model.parameters()).device
    input_ids, labels = (t.to(device) for t in encode_examples(tokenizer, examples))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have parameters that require gradients, got none")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses, seconds = [], []
    for _ in range(steps):
        start = time.perf_counter()
        rows = torch.randperm(len(examples), generator=generator)[:batch_size].to(device)
        loss = model(input_ids=input_ids[rows], labels=labels[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        seconds.append(time.perf_counter() - start)
    return TrainResult(losses, optimizer, statistics.median(seconds))
