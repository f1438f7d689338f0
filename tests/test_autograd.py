"""The scalar autograd engine agrees with torch.autograd in float64."""

import math

import pytest
import torch

from course_lib.autograd import MLP, Value, numerical_grad, random_expression


def test_seed_graph_gradient_is_16() -> None:
    x = Value(2.0)
    w = (x**2 + 3) * 4
    w.backward()
    assert w.data == (2.0**2 + 3) * 4 and x.grad == 4 * 2 * 2.0  # dw/dx = 4 * 2x


def test_shared_node_accumulates() -> None:
    a = Value(3.0)
    b = a * a + a  # a used three times
    b.backward()
    assert a.grad == 2 * 3.0 + 1  # db/da = 2a + 1


@pytest.mark.parametrize("seed", range(25))
def test_random_expressions_match_torch(seed: int) -> None:
    fn, _ = random_expression(n_inputs=3, n_ops=8, seed=seed)
    xs = [0.7, -1.3, 0.4]
    values = [Value(x) for x in xs]
    out = fn(values)
    out.backward()
    tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ref = fn(tensors)
    ref.backward()
    assert math.isclose(out.data, ref.item(), rel_tol=1e-12, abs_tol=1e-12)
    for v, t in zip(values, tensors, strict=True):
        assert math.isclose(v.grad, t.grad.item(), rel_tol=1e-10, abs_tol=1e-12)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="log needs a positive input"):
        Value(-1.0).log()
    with pytest.raises(TypeError, match="only supports int/float exponents"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(ValueError, match="n_inputs >= 1"):
        random_expression(0, 3, seed=0)


def test_grad_fn_chain_walks_the_seed_graph() -> None:
    from course_lib.autograd import grad_fn_chain

    x = torch.tensor(2.0, requires_grad=True)
    w = (x**2 + 3) * 4
    names = [name for _, name in grad_fn_chain(w)]
    assert names == ["MulBackward0", "AddBackward0", "PowBackward0", "AccumulateGrad (leaf, shape ())"]
    with pytest.raises(ValueError, match="has no grad_fn"):
        grad_fn_chain(x)


@pytest.mark.parametrize("seed", range(25))
def test_random_expression_text_is_the_program_evaluated(seed: int) -> None:
    fn, text = random_expression(n_inputs=3, n_ops=8, seed=seed)
    xs = [0.7, -1.3, 0.4]
    namespace = {"exp": math.exp, "log": math.log, "tanh": math.tanh, "relu": lambda v: max(v, 0.0)}
    namespace.update({f"x{i}": x for i, x in enumerate(xs)})
    exec(text, namespace)  # the printed text, run as Python on floats
    assert len(text.splitlines()) == 8 + 1 and text.splitlines()[-1].startswith("out = x0 + x1 + x2 + v3")
    assert math.isclose(namespace["out"], fn([Value(x) for x in xs]).data, rel_tol=1e-12, abs_tol=1e-12)


def test_random_expression_text_spells_out_every_formula() -> None:
    texts = "\n".join(random_expression(n_inputs=3, n_ops=8, seed=s)[1] for s in range(25))
    for formula in ("exp(0.5 * ", "/ (", "log(", "tanh(", "relu(", "**2"):
        assert formula in texts, f"no expression printed {formula!r}"
    assert "add(" not in texts and "mul(" not in texts and "div(" not in texts


def test_topological_order_puts_each_node_after_its_inputs() -> None:
    a, b = Value(3.0), Value(-2.0)
    square = a * a
    product = a * b
    f = square + product
    order = f.topological_order()
    assert len(order) == 5 and order[-1] is f and len({id(n) for n in order}) == 5  # a listed once
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        assert all(position[id(child)] < position[id(node)] for child in node._prev)


def test_mlp_gradients_match_torch_and_finite_differences() -> None:
    model = MLP([2, 3, 1], seed=0)
    params = model.parameters()
    assert len(params) == 2 * 3 + 3 + 3 + 1
    x = [0.4, -0.7]
    out = model(x)
    out.backward()
    weights = [torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for p in params]
    hidden = [torch.tanh(weights[3 * j] * x[0] + weights[3 * j + 1] * x[1] + weights[3 * j + 2]) for j in range(3)]
    ref = sum(weights[9 + j] * hidden[j] for j in range(3)) + weights[12]  # linear last layer
    ref.backward()
    assert math.isclose(out.data, ref.item(), rel_tol=1e-12)
    for p, w in zip(params, weights, strict=True):
        assert math.isclose(p.grad, w.grad.item(), rel_tol=1e-10, abs_tol=1e-12)

    def output_at(values: list[float]) -> float:
        for p, v in zip(params, values, strict=True):
            p.data = v
        return model(x).data

    start = [p.data for p in params]
    numeric = numerical_grad(output_at, start)
    assert all(math.isclose(n, p.grad, abs_tol=1e-8) for n, p in zip(numeric, params, strict=True))
    model.zero_grad()
    assert all(p.grad == 0.0 for p in params)


def test_mlp_shapes_and_bad_sizes() -> None:
    wide = MLP([2, 4, 3], seed=1)
    assert len(wide([1.0, 2.0])) == 3 and MLP([2, 4, 3], seed=1)([1.0, 2.0])[0].data == wide([1.0, 2.0])[0].data
    with pytest.raises(ValueError, match="sizes must be at least two positive ints"):
        MLP([2], seed=0)
    with pytest.raises(ValueError, match="sizes must be at least two positive ints"):
        MLP([2, 0, 1], seed=0)


def test_numerical_grad_is_central_and_leaves_its_input_alone() -> None:
    xs = [1.0, 2.0]
    grads = numerical_grad(lambda v: v[0] ** 3 + v[0] * v[1], xs, h=1e-3)
    assert xs == [1.0, 2.0]
    assert math.isclose(grads[0], 3 * 1.0 + 2.0 + 1e-6, rel_tol=1e-9)  # central difference of x**3: 3x**2 + h**2
    assert math.isclose(grads[1], 1.0, rel_tol=1e-9)
    with pytest.raises(ValueError, match="h must be > 0"):
        numerical_grad(lambda v: v[0], [1.0], h=0)
