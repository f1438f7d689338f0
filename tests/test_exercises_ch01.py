"""Notebook 01's checkers explain the typical mistakes."""

from collections.abc import Callable

import numpy as np
import pytest
import torch

from course_lib.autograd import Value, numerical_grad
from course_lib.exercises import ExerciseFailed, NotAttempted
from course_lib.exercises.ch01 import (
    check_accumulation_prediction,
    check_mul,
    check_numerical_grad,
    check_shared_tensor,
    check_sigmoid,
)


def not_written(*args: object) -> None:
    """The learner copy's placeholder."""
    raise NotImplementedError("your turn: replace this line with your code")


def make_mul(*, accumulate: bool = True, chain: bool = True, children: bool = True,
             set_backward: bool = True) -> Callable[[Value, Value], Value]:
    """The reference ``mul`` of exercise 1.2, or one of its typical wrong variants."""

    def mul(a: Value, b: Value) -> Value:
        out = Value(a.data * b.data, (a, b) if children else (), "*")

        def _backward() -> None:
            upstream = out.grad if chain else 1.0
            if accumulate:
                a.grad += b.data * upstream
                b.grad += a.data * upstream
            else:
                a.grad = b.data * upstream
                b.grad = a.data * upstream

        if set_backward:
            out._backward = _backward
        return out

    return mul


def test_check_shared_tensor_passes_both_ways_of_sharing_when_possible(capsys) -> None:
    check_shared_tensor(lambda a: torch.as_tensor(a, dtype=torch.float32))
    check_shared_tensor(lambda a: torch.from_numpy(a).float())   # .float() of a float32 tensor is itself
    check_shared_tensor(lambda a: torch.from_numpy(a).to(torch.float32))
    assert capsys.readouterr().out.count("[passed] Exercise 1.1") == 3


def test_check_shared_tensor_says_what_is_wrong() -> None:
    with pytest.raises(ExerciseFailed, match="float32 array .* holds a copy"):
        check_shared_tensor(lambda a: torch.tensor(a, dtype=torch.float32))
    float64_kept = "float64 array the tensor's dtype is torch.float64, expected torch.float32"
    with pytest.raises(ExerciseFailed, match=float64_kept):
        check_shared_tensor(torch.from_numpy)
    with pytest.raises(ExerciseFailed, match="expected a torch.Tensor, got ndarray"):
        check_shared_tensor(lambda a: a.astype(np.float32))
    with pytest.raises(ExerciseFailed, match="values of a int64 array"):
        check_shared_tensor(lambda a: torch.as_tensor(a, dtype=torch.float32) / 2 if a.dtype == np.int64
                            else torch.as_tensor(a, dtype=torch.float32))


def test_ch01_checkers_catch_typical_mistakes() -> None:
    with pytest.raises(ExerciseFailed, match="must return a Value"):
        check_sigmoid(lambda v: 1 / (1 + np.exp(-v.data)))


def test_check_mul_passes_the_reference(capsys) -> None:
    check_mul(make_mul())
    assert "[passed] Exercise 1.3" in capsys.readouterr().out


def test_check_mul_says_overwriting_loses_a_path() -> None:
    two_paths = r"for mul\(a, a\) at a=3, a.grad is 3, expected 6 = 2a: a is both operands, two paths"
    with pytest.raises(ExerciseFailed, match=two_paths + r".*use \+="):
        check_mul(make_mul(accumulate=False))


def test_check_mul_catches_one_overwriting_line_on_the_branching_graph() -> None:
    def half_overwrite(a: Value, b: Value) -> Value:  # a's line assigns, b's line adds
        out = Value(a.data * b.data, (a, b), "*")

        def _backward() -> None:
            b.grad += a.data * out.grad
            a.grad = b.data * out.grad

        out._backward = _backward
        return out

    with pytest.raises(ExerciseFailed, match=r"a.grad is 3, expected 6"):
        check_mul(half_overwrite)


def test_check_mul_says_what_else_is_wrong() -> None:
    with pytest.raises(ExerciseFailed, match="must return a Value, got float"):
        check_mul(lambda a, b: a.data * b.data)
    with pytest.raises(ExerciseFailed, match="children .* must be a and b"):
        check_mul(make_mul(children=False))
    with pytest.raises(ExerciseFailed, match="stayed 0"):
        check_mul(make_mul(set_backward=False))
    with pytest.raises(ExerciseFailed, match="multiply the local derivatives by out.grad"):
        check_mul(make_mul(chain=False))


def test_check_mul_catches_an_overwrite_hidden_behind_a_special_case() -> None:
    def special_cased(a: Value, b: Value) -> Value:  # right for mul(a, a), overwrites otherwise
        out = Value(a.data * b.data, (a, b), "*")

        def _backward() -> None:
            if a is b:
                a.grad += 2 * a.data * out.grad
            else:
                a.grad = b.data * out.grad
                b.grad = a.data * out.grad

        out._backward = _backward
        return out

    three_paths = r"for f = a\*b \+ a\*a at a=3, b=-2, a.grad is -2, expected 4 = 2a \+ b, the sum over a's three paths"
    with pytest.raises(ExerciseFailed, match=three_paths + r".*use \+="):
        check_mul(special_cased)


@pytest.mark.parametrize("check, args", [
    (check_shared_tensor, ()), (check_mul, ()), (check_sigmoid, ()), (check_numerical_grad, ()),
    (check_accumulation_prediction, (48.0, 16.0, 3)),
])
def test_ch01_checkers_say_not_done_for_the_learner_copy(check, args, capsys) -> None:
    check(not_written, *args)  # no exception: the learner copy runs top to bottom
    out = capsys.readouterr().out
    assert out.startswith("[not done] Exercise 1.") and "not attempted yet" in out


def test_check_sigmoid_passes_the_reference(capsys) -> None:
    check_sigmoid(lambda v: 1 / (1 + (-v).exp()))
    assert "[passed] Exercise 1.4" in capsys.readouterr().out


def test_check_accumulation_prediction_explains_each_wrong_guess(capsys) -> None:
    check_accumulation_prediction(lambda: 48, 48.0, 16.0, 3)
    assert "[passed] Exercise 1.2" in capsys.readouterr().out
    cases = {16.0: "gradient of one backward.. call: each call adds", 0.0: "does not reset x.grad",
             32.0: "2 calls' worth; count the backward.. calls", 20.0: "work out dw/dx for one call first"}
    for guess, message in cases.items():
        with pytest.raises(ExerciseFailed, match=f"you predicted {guess:g}; the loop measured 48 = 3 x 16.*{message}"):
            check_accumulation_prediction(lambda guess=guess: guess, 48.0, 16.0, 3)
    with pytest.raises(ExerciseFailed, match="return your prediction as a number, got str"):
        check_accumulation_prediction(lambda: "48", 48.0, 16.0, 3)


def test_check_numerical_grad_passes_the_reference_and_the_library(capsys) -> None:
    check_numerical_grad(numerical_grad)  # the library's answer
    check_numerical_grad(numerical_grad)
    assert capsys.readouterr().out.count("[passed] Exercise 1.5") == 2


def test_check_numerical_grad_names_the_typical_mistakes() -> None:
    def one_sided(f, xs, h):
        return [(f([x + h * (j == i) for j, x in enumerate(xs)]) - f(xs)) / h for i in range(len(xs))]

    def over_h(f, xs, h):
        return [2 * g for g in numerical_grad(f, xs, h)]

    def all_at_once(f, xs, h):
        return [(f([x + h for x in xs]) - f([x - h for x in xs])) / (2 * h)] * len(xs)

    def in_place(f, xs, h):
        grads = []
        for i in range(len(xs)):
            xs[i] += h
            up = f(xs)
            xs[i] -= 2 * h
            grads.append((up - f(xs)) / (2 * h))
            xs[i] += h / 2  # does not come back exactly
        return grads

    with pytest.raises(ExerciseFailed, match="one-sided difference .* nudge both ways"):
        check_numerical_grad(one_sided)
    with pytest.raises(ExerciseFailed, match="twice torch's: .* divide their difference by 2h"):
        check_numerical_grad(over_h)
    with pytest.raises(ExerciseFailed, match="you nudged all inputs at once"):
        check_numerical_grad(all_at_once)
    with pytest.raises(ExerciseFailed, match="your function changed xs"):
        check_numerical_grad(in_place)
    with pytest.raises(ExerciseFailed, match="expected a list of 2 partial derivatives, got float"):
        check_numerical_grad(lambda f, xs, h: 1.0)
    with pytest.raises(ExerciseFailed, match="d f / d x1 is"):
        check_numerical_grad(lambda f, xs, h: numerical_grad(f, xs, h)[:1] + [0.0] + numerical_grad(f, xs, h)[2:])
    with pytest.raises(ExerciseFailed, match="your code raised TypeError"):
        check_numerical_grad(lambda f, xs, h: f(xs[0]))


def test_not_attempted_is_still_an_exercise_failure_for_other_callers() -> None:
    assert issubclass(NotAttempted, ExerciseFailed)
