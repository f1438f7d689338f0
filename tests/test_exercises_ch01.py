"""Notebook 01's checkers explain the typical mistakes."""

import numpy as np
import pytest
import torch

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch01 import check_gradients_for, check_shared_tensor, check_sigmoid


def test_ch01_checkers_catch_typical_mistakes() -> None:
    with pytest.raises(ExerciseFailed, match="holds a copy"):
        check_shared_tensor(lambda a: torch.tensor(a))
    with pytest.raises(ExerciseFailed, match="each gradient includes the previous ones"):
        check_gradients_for(lambda xs: list(np.cumsum([8 * x for x in xs])))
    with pytest.raises(ExerciseFailed, match="must return a Value"):
        check_sigmoid(lambda v: 1 / (1 + np.exp(-v.data)))
