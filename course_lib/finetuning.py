"""Lesson 06, efficient fine-tuning: a tiny causal language model, LoRA adapters and low-bit weights.

The model is a Qwen2-shaped transformer built from ``transformers`` with a few thousand parameters
and a character tokenizer, trained on a copy task made up on the spot (no downloads). LoRA and
4-bit (NF4) quantization are written out so the learner sees every line.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from course_lib.env import check_choice, check_float, check_int
from course_lib.memory import PeakTensorMeter, optimizer_state_bytes, storage_bytes
from course_lib.timing import Timer, median
from course_lib.training import train_step

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


def next_token_loss(model: nn.Module) -> Callable[[CausalLMOutputWithPast, torch.Tensor], torch.Tensor]:
    """The loss ``training.train_step`` takes for a causal LM: the model's own next-token loss on its output."""
    def loss_fn(output: CausalLMOutputWithPast, labels: torch.Tensor) -> torch.Tensor:
        return model.loss_function(output.logits, labels, model.config.vocab_size)

    return loss_fn


def train_lm(model: nn.Module, tokenizer: CharTokenizer, examples: list[tuple[str, str]], steps: int,
             lr: float, batch_size: int = 8, seed: int = 0) -> TrainResult:
    """AdamW on the parameters that require gradients, one random batch of ``examples`` per step.

    Each step is :func:`course_lib.training.train_step` with the model's own next-token loss (answers
    only: the prompt's labels are -100). ``seconds_per_step`` is the median over the steps after the first.
    """
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
    loss_fn = next_token_loss(model)
    model.train()
    losses, seconds = [], []
    for _ in range(steps):
        rows = torch.randperm(len(examples), generator=generator)[:batch_size].to(device)
        with Timer(device) as timer:
            losses.append(train_step(model, optimizer, loss_fn, input_ids[rows], labels[rows]).item())
        seconds.append(timer.seconds)
    # The first step is cold (Adam's state is allocated, lazy set-up runs): left out, as the warm-up call is
    # everywhere else in the course (timing.sample_seconds); with a single step it is all there is.
    return TrainResult(losses, optimizer, median(seconds[1:] or seconds))


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


def nf4_bytes(numel: int, block_size: int = 64) -> int:
    """Bytes :func:`quantize_4bit` stores for ``numel`` values: half a byte each plus a float32 absmax per block."""
    check_int("numel", numel, min_value=0)
    check_int("block_size", block_size, min_value=2)
    blocks = -(-numel // block_size)
    return blocks * block_size // 2 + 4 * blocks


FINETUNE_METHODS = ("full", "lora", "qlora")


def training_state_bytes(model: nn.Module, method: str, target_modules: Iterable[str], r: int,
                         weight_bytes: int = 4, block_size: int = 64) -> dict[str, int]:
    """Bytes of weights, gradients and Adam state to fine-tune ``model`` by ``method`` (works on a meta model).

    Weights take ``weight_bytes`` each (4: float32, 2: bfloat16), except that QLoRA stores every
    ``nn.Linear`` but ``lm_head`` in NF4 (:func:`nf4_bytes`). Trainable values (all of them for
    ``"full"``, the LoRA factors otherwise, kept in float32) get a float32 gradient and two float32
    Adam moments. Activations are not included: they depend on the batch, not on the method.
    """
    check_choice("method", method, FINETUNE_METHODS)
    check_int("weight_bytes", weight_bytes, min_value=1)
    total = sum(p.numel() for p in model.parameters())
    adapters = lora_parameter_count(model, target_modules, r)
    trainable = total if method == "full" else adapters
    weights = weight_bytes * total + (0 if method == "full" else 4 * adapters)
    if method == "qlora":
        linears = [m.weight.numel() for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] != "lm_head"]
        weights += sum(nf4_bytes(n, block_size) - weight_bytes * n for n in linears)
    return {"weights": weights, "gradients": 4 * trainable, "adam": 8 * trainable}


def step_peak_bytes(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                    lr: float = 1e-3) -> dict[str, int]:
    """Bytes alive at the peak of one AdamW training step of ``model`` (trained in place), by what holds them.

    ``"weights"``: parameters and buffers (4-bit codes included), ``"Adam state"``: the moments (and step
    counts) of the trainable parameters, ``"made in the step"``: the most bytes the step's own tensors (activations,
    recomputed activations, gradients, the optimizer's temporaries) hold at once, counted by
    :class:`course_lib.memory.PeakTensorMeter` over a second step, once Adam's state exists, as in
    every step after the first. The three add up to the step's peak.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have parameters that require gradients, got none")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()

    loss_fn = next_token_loss(model)
    train_step(model, optimizer, loss_fn, input_ids, labels)  # creates Adam's state
    with PeakTensorMeter() as meter:
        train_step(model, optimizer, loss_fn, input_ids, labels)
    weights = storage_bytes([*model.parameters(), *model.buffers()])
    adam = sum(optimizer_state_bytes(optimizer).values())
    return {"weights": weights, "Adam state": adam, "made in the step": meter.peak}
