"""Checkers for notebook 04 (nn.Module, the training loop, BCELoss vs BCEWithLogitsLoss), in notebook order:
a prediction about registered parameters, an initialiser for ``apply``, stable BCE with logits, accuracy from logits."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.bce import close_to_reference
from course_lib.exercises import ExerciseFailed, attempt, checker, expect, expect_close, passed

# The checker's hints name these exact expressions (z: logits, y: targets); tests run them through the checker.
SOFTPLUS_NEG_HINT = "torch.logsumexp(torch.stack([torch.zeros_like(z), -z]), dim=0)"
MAX_FORM_HINT = "torch.maximum(z, torch.zeros_like(z)) - z * y + torch.log1p(torch.exp(-z.abs()))"
EXTREME_LOGITS = (-200.0, -120.0, -89.0, -40.0, -17.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 17.0, 40.0, 89.0, 120.0, 200.0)


@checker
def check_parameter_prediction(fn: Callable[[], int], measured: int, every_layer: int, head: int) -> None:
    """Exercise 4.1 (predict, then run): how many parameters a model that keeps layers in a plain list reports.

    ``measured`` is ``count_parameters`` of the model, ``every_layer`` the numbers in all its layers
    (list included), ``head`` those of the layer assigned as an attribute.
    """
    title = "Exercise 4.1 (predict: parameters of a model with a list of layers)"
    got = attempt(title, fn)
    expect(title, isinstance(got, (int, float)) and not isinstance(got, bool) and float(got).is_integer(),
           f"return one whole number (the count of scalar parameters), got {got!r}")
    got = int(got)
    why = ("nn.Module registers an attribute only when it is an nn.Module, an nn.Parameter or a buffer; "
           "a Python list is none of these, so the layers inside it are invisible to parameters() (the optimizer "
           "never trains them), to state_dict() (never saved) and to .to() (never moved)")
    if got == measured:
        passed(title, f"{measured} parameters, those of the head alone: {why}")
        return
    expect(title, got != every_layer,
           f"you predicted {got}, the numbers in every layer; count_parameters reports {measured}. {why}")
    expect(title, got != 0,
           f"you predicted 0, count_parameters reports {measured}: the head is assigned as an attribute "
           f"(self.head = nn.Linear(...)), so it is registered with its weight and bias ({head} numbers)")
    raise ExerciseFailed(f"{title}: you predicted {got}, count_parameters reports {measured}. An nn.Linear(a, b) "
                         f"holds a * b weights and b biases; then ask which layers the module registered")


def _linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


@checker
def check_init(init_linear: Callable[[nn.Module], None]) -> None:
    """Exercise 4.2: ``model.apply(init_linear)`` gives every ``nn.Linear`` Xavier-uniform weights and zero biases."""
    title = "Exercise 4.2 (initialise with apply)"
    with torch.random.fork_rng(devices=[]):  # the learner's random state is left as it was
        torch.manual_seed(4)
        model = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.ReLU(),
                              nn.Sequential(nn.Linear(30, 40), nn.Tanh()), nn.Linear(40, 10))
        with torch.no_grad():  # give batch norm visible state, so that touching it shows
            model[1].weight.uniform_(0.5, 1.5)
            model[1].bias.uniform_(-0.5, 0.5)
            model[1].running_mean.uniform_(-1.0, 1.0)
        before = {name: t.detach().clone() for name, t in model.state_dict().items()}
        attempt(title, model.apply, init_linear)
    for name, layer in _linear_layers(model):
        expect(title, isinstance(layer.weight, nn.Parameter) and isinstance(layer.bias, nn.Parameter),
               f"layer {name}: its weight or bias is no longer an nn.Parameter, so parameters() and the optimizer "
               "lose it: change the values in place (the torch.nn.init functions do)")
        fan_out, fan_in = layer.weight.shape
        a = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        expect(title, not torch.equal(w, before[f"{name}.weight"]),
               f"layer {name} ({fan_in} -> {fan_out}) still has PyTorch's default weights: your function did not "
               "reach it. apply calls it once per module, nested ones included; test isinstance(module, nn.Linear)")
        expect(title, bool((w.abs() <= a * (1 + 1e-6)).all()),
               f"layer {name}: weights reach {w.abs().max().item():.3f}, beyond the Xavier-uniform bound "
               f"a = sqrt(6 / (fan_in + fan_out)) = {a:.3f}: a normal distribution (xavier_normal_) is "
               "unbounded, and a gain other than 1 scales a")
        expect(title, w.abs().max().item() > 0.8 * a and abs(w.std().item() - a / math.sqrt(3)) < 0.15 * a,
               f"layer {name}: weights lie within ±{a:.3f} but do not fill it (largest {w.abs().max().item():.3f}, "
               f"std {w.std().item():.3f}; uniform on ±a has std a / sqrt(3) = {a / math.sqrt(3):.3f}): "
               "use fan_in + fan_out of this layer (weight shape (fan_out, fan_in))")
        expect(title, bool((layer.bias.detach() == 0).all()),
               f"layer {name}: the bias is not all zeros (largest |bias| {layer.bias.detach().abs().max().item():.3g})")
    for key, value in model.state_dict().items():
        if key.split(".")[0] == "1":  # the batch norm: parameters and buffers
            expect(title, torch.equal(value, before[key]),
                   f"the batch norm's {key.split('.', 1)[1]} changed: apply calls your function on every module, "
                   "so leave modules that are not nn.Linear alone")
    expect(title, all(p.requires_grad and p.grad is None for p in model.parameters()),
           "some parameter stopped requiring grad or gained a .grad: initialise under torch.no_grad() "
           "(the torch.nn.init functions do) without changing requires_grad")
    passed(title, f"{len(_linear_layers(model))} Linear layers (one nested) have Xavier-uniform weights and zero "
                  "biases; the batch norm is untouched")


@checker
def check_bce_with_logits(bce_with_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 4.3: elementwise stable BCE-with-logits; values and gradients match PyTorch's at extreme logits."""
    title = "Exercise 4.3 (stable BCE with logits)"
    logits = torch.tensor(EXTREME_LOGITS * 3, dtype=torch.float32)
    targets = torch.tensor([0.0] * len(EXTREME_LOGITS) + [1.0] * len(EXTREME_LOGITS) + [0.3] * len(EXTREME_LOGITS))
    z = logits.clone().requires_grad_(True)
    got = attempt(title, bce_with_logits, z, targets)
    expect(title, isinstance(got, torch.Tensor), f"expected a torch.Tensor, got {type(got).__name__}")
    expect(title, got.shape == logits.shape,
           f"expected one loss per logit, shape {tuple(logits.shape)}, got shape {tuple(got.shape)} "
           "(do not average: return the elementwise loss)")
    expect(title, got.dtype == torch.float32, f"expected float32 (the input dtype), got {got.dtype}: "
           "compute in the logits' dtype, do not convert to float64")
    bad = ~torch.isfinite(got.detach())
    if bad.any():
        i = int(bad.nonzero()[0])
        raise_msg = (f"the loss is {got[i].item()} at logit {logits[i].item():g} (target {targets[i].item():g}): "
                     "exp(-z) overflows for very negative z and log(sigmoid(z)) hits log(0); "
                     "write the loss as (1 - y) * z + log(1 + exp(-z)) and compute log(1 + exp(-z)) as "
                     f"{SOFTPLUS_NEG_HINT}, a log-sum-exp that never exponentiates a positive number")
        expect(title, False, raise_msg)
    reference = F.binary_cross_entropy_with_logits(logits.double(), targets.double(), reduction="none")
    ok = close_to_reference(got.detach(), reference)
    if not ok.all():
        i = int((~ok).nonzero()[0])
        expect(title, False, f"at logit {logits[i].item():g} (target {targets[i].item():g}) the loss is "
               f"{got[i].item():.7g}, expected {reference[i].item():.7g} (within 1e-5 relative or 1e-6 absolute)")
    expect(title, got.grad_fn is not None, "the result has no grad_fn: build it from torch operations on "
           "the logits (no .item(), .numpy() or torch.no_grad()) so autograd can differentiate it")
    (grad,) = torch.autograd.grad(got.sum(), z)
    expected_grad = torch.sigmoid(logits.double()) - targets.double()
    ok = close_to_reference(grad, expected_grad)
    if not ok.all():
        i = int((~ok).nonzero()[0])
        expect(title, logits[i].item() != 0.0 or not ok[logits != 0].all(),
               f"values are right but the gradient at logit 0 is {grad[i].item():.6g}, expected "
               f"{expected_grad[i].item():.6g} = sigmoid(0) - y. The loss is smooth at 0, but max(z, 0) and |z| "
               "each have a kink there, and autograd takes one fixed one-sided slope at a kink (0 for "
               "clamp(min=0), relu and abs), so the pieces no longer add up to sigmoid(0) - y. Compute "
               f"log(1 + exp(-z)) as {SOFTPLUS_NEG_HINT} (smooth), or write max(z, 0) as "
               "torch.maximum(z, torch.zeros_like(z)), whose gradient at a tie is 1/2")
        expect(title, False, f"values are right but the gradient at logit {logits[i].item():g} (target "
               f"{targets[i].item():g}) is {grad[i].item():.6g}, expected sigmoid(z) - y = "
               f"{expected_grad[i].item():.6g}: a clamp or a detached piece stops the gradient")
    passed(title, f"{len(logits)} losses and gradients match, logits from {min(EXTREME_LOGITS):g} "
           f"to {max(EXTREME_LOGITS):g}")


@checker
def check_accuracy(accuracy: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Exercise 4.4: accuracy of a binary classifier from logits of shape (N, 1) and 0/1 targets of shape (N,)."""
    title = "Exercise 4.4 (accuracy from logits)"
    logits = torch.tensor([[2.0], [0.3], [-0.2], [-3.0], [0.1], [1.5], [-1.0], [0.4]])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    expected = ((logits.squeeze(1) >= 0).float() == targets).float().mean().item()
    got = attempt(title, accuracy, logits.clone(), targets.clone())
    if isinstance(got, torch.Tensor):
        expect(title, got.numel() == 1, f"expected one number, got a tensor of shape {tuple(got.shape)}: "
               "(N, 1) == (N,) broadcasts to an (N, N) matrix; squeeze the logits to (N,) first")
        got = got.item()
    expect(title, isinstance(got, (float, int)), f"expected a float, got {type(got).__name__}")
    broadcast = ((logits >= 0).float() == targets).float().mean().item()
    logit_threshold = ((logits.squeeze(1) >= 0.5).float() == targets).float().mean().item()
    expect(title, abs(got - broadcast) > 1e-9 or abs(broadcast - expected) < 1e-9,
           f"got {got:.4f}, the mean of an (N, N) matrix: (N, 1) == (N,) broadcasts; squeeze the logits to (N,)")
    expect(title, abs(got - logit_threshold) > 1e-9,
           f"got {got:.4f}: you compared the logits with 0.5; a probability of 0.5 is a logit of 0 "
           "(or apply torch.sigmoid first)")
    expect_close(title, got, expected, atol=1e-9)
    passed(title, f"accuracy {got:.3f} on 8 examples")
