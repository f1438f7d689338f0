"""A tiny scalar autograd engine in the spirit of karpathy's micrograd.

Each operation computes its result and, right below it, the rule that sends the output's
gradient back to its inputs. ``Value.backward()`` orders the graph topologically and applies
those rules from the output to the leaves, which is what ``torch.autograd`` does for tensors.
Primitives: ``+``, ``*``, ``**`` (constant power), ``exp``, ``log``, ``tanh``, ``relu``;
negation, subtraction and division are built from them. ``Neuron``, ``Layer`` and ``MLP`` build a small
network of ``Value``s with micrograd's ``parameters()`` / ``zero_grad()``, and ``numerical_grad`` checks
gradients by finite differences, the check that needs no autograd.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch


class Value:
    """A scalar that remembers how it was computed, so it can compute gradients."""

    def __init__(self, data: float, _children: tuple[Value, ...] = (), _op: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._prev = _children
        self._op = _op

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"Value ** only supports int/float exponents, got {type(exponent).__name__}")
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward() -> None:
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive input, got {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward() -> None:
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def topological_order(self) -> list[Value]:
        """Every node this value depends on, each listed after all the nodes it uses; ``self`` comes last."""
        order: list[Value] = []
        seen: set[int] = set()

        def visit(node: Value) -> None:
            if id(node) not in seen:
                seen.add(id(node))
                for child in node._prev:
                    visit(child)
                order.append(node)

        visit(self)
        return order

    def backward(self) -> None:
        """Fill ``.grad`` of every node this value depends on (d self / d node)."""
        self.grad = 1.0
        for node in reversed(self.topological_order()):
            node._backward()

    # Composed from the primitives above.
    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return other + (-self)

    def __rtruediv__(self, other: float) -> Value:
        return other * self**-1

    def __repr__(self) -> str:
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"


class Neuron:
    """One unit: ``tanh(w . x + b)``, or ``w . x + b`` without the activation (an output unit)."""

    def __init__(self, n_inputs: int, rng: random.Random, activation: bool = True) -> None:
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(n_inputs)]
        self.b = Value(0.0)
        self.activation = activation

    def __call__(self, x: Sequence[Value | float]) -> Value:
        total = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return total.tanh() if self.activation else total

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]


class Layer:
    """``n_outputs`` neurons that all read the same inputs."""

    def __init__(self, n_inputs: int, n_outputs: int, rng: random.Random, activation: bool = True) -> None:
        self.neurons = [Neuron(n_inputs, rng, activation) for _ in range(n_outputs)]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        return [neuron(x) for neuron in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for neuron in self.neurons for p in neuron.parameters()]


class MLP:
    """Layers of sizes ``sizes`` (inputs first), ``tanh`` between them, a linear last layer; weights from ``seed``."""

    def __init__(self, sizes: Sequence[int], seed: int) -> None:
        if len(sizes) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"sizes must be at least two positive ints (inputs, ..., outputs), got {list(sizes)}")
        rng = random.Random(seed)
        last = len(sizes) - 2
        self.layers = [Layer(n_in, n_out, rng, activation=i < last)
                       for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False))]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        """The network's output for one input: a ``Value`` when the last layer has one unit, else a list."""
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


def numerical_grad(f: Callable[[list[float]], float], xs: Sequence[float], h: float = 1e-6) -> list[float]:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h``: the gradient of ``f`` at ``xs``, without autograd."""
    if not h > 0:
        raise ValueError(f"h must be > 0, got {h}")
    grads = []
    for i in range(len(xs)):
        up, down = list(xs), list(xs)
        up[i] += h
        down[i] -= h
        grads.append((f(up) - f(down)) / (2 * h))
    return grads


# Operations that exist with the same spelling on Value and torch.Tensor, so one random
# expression can be evaluated by both engines. Each has the formula it prints next to it; the
# formulas use only ``exp``, ``log``, ``tanh``, ``relu`` and Python arithmetic.
_UNARY: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "tanh": ("tanh({a})", lambda a: a.tanh()),
    "relu": ("relu({a})", lambda a: a.relu()),
    "exp": ("exp(0.5 * {a})", lambda a: (a * 0.5).exp()),
    "square": ("{a}**2", lambda a: a**2),
    "log1p_sq": ("log({a}**2 + 1)", lambda a: (a**2 + 1).log()),
}
_BINARY: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "add": ("{a} + {b}", lambda a, b: a + b),
    "sub": ("{a} - {b}", lambda a, b: a - b),
    "mul": ("{a} * {b}", lambda a, b: a * b),
    "div": ("{a} / ({b}**2 + 1)", lambda a, b: a / (b**2 + 1)),
}


def random_expression(n_inputs: int, n_ops: int, seed: int) -> tuple[Callable[[list[Any]], Any], str]:
    """Build a random expression of ``n_inputs`` variables; return it as a function and as text.

    The function takes a list of inputs (``Value`` objects or scalar tensors) and uses only
    operations both engines share, so the same expression can be differentiated by each. The
    text is the program the function runs, one assignment per line (``v3 = tanh(x0)``, ...,
    ``out = x0 + ... + v10``), valid Python given ``exp``, ``log``, ``tanh`` and ``relu``.
    """
    if n_inputs < 1 or n_ops < 1:
        raise ValueError(f"need n_inputs >= 1 and n_ops >= 1, got {n_inputs} and {n_ops}")
    rng = random.Random(seed)
    steps: list[tuple[str, int, int]] = []
    names = [f"x{i}" for i in range(n_inputs)]
    lines = []
    for _ in range(n_ops):
        if rng.random() < 0.4:
            op, a, b = rng.choice(sorted(_UNARY)), rng.randrange(len(names)), -1
            formula = _UNARY[op][0].format(a=names[a])
        else:
            op, a, b = rng.choice(sorted(_BINARY)), rng.randrange(len(names)), rng.randrange(len(names))
            formula = _BINARY[op][0].format(a=names[a], b=names[b])
        steps.append((op, a, b))
        names.append(f"v{len(names)}")
        lines.append(f"{names[-1]} = {formula}")
    lines.append("out = " + " + ".join(names))

    def expression(inputs: list[Any]) -> Any:
        nodes = list(inputs)
        for op, a, b in steps:
            nodes.append(_UNARY[op][1](nodes[a]) if b < 0 else _BINARY[op][1](nodes[a], nodes[b]))
        total = nodes[0]
        for node in nodes[1:]:
            total = total + node  # every input and intermediate contributes, so all get a gradient
        return total

    return expression, "\n".join(lines)


def grad_fn_chain(tensor: torch.Tensor) -> list[tuple[int, str]]:
    """Return ``(depth, node name)`` for every node reachable from ``tensor.grad_fn``, depth first."""
    if tensor.grad_fn is None:
        raise ValueError("tensor has no grad_fn: it is a leaf or was computed without gradient tracking")
    rows: list[tuple[int, str]] = []

    def visit(fn, depth: int) -> None:
        name = type(fn).__name__
        if name == "AccumulateGrad":
            leaf = fn.variable
            name += f" (leaf, shape {tuple(leaf.shape)})"
        rows.append((depth, name))
        for child, _ in fn.next_functions:
            if child is not None:
                visit(child, depth + 1)

    visit(tensor.grad_fn, 0)
    return rows
