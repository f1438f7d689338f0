"""Notebook 01's checkers explain the typical mistakes."""

from collections.abc import Callable

import numpy as np
import pytest
import torch

from course_lib.autograd import Value
from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch01 import check_mul, check_shared_tensor, check_sigmoid


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
    assert capsys.readouterr().out.count("[passed] Exercise 1.1") == 2


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
    assert "[passed] Exercise 1.2" in capsys.readouterr().out


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
    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        check_mul(lambda a, b: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(ExerciseFailed, match="must return a Value, got float"):
        check_mul(lambda a, b: a.data * b.data)
    with pytest.raises(ExerciseFailed, match="children must be"):
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
