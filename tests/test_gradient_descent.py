"""course_lib.gradient_descent: hand-written NumPy gradient descent agrees with torch.autograd and
torch.optim in float64; TensorBoard logs round-trip."""

import warnings

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from course_lib.data import batch_indices, epoch_orders
from course_lib.gradient_descent import (
    SGD,
    Adam,
    descend,
    fresh_log_dir,
    max_stable_lr,
    mse,
    mse_grad,
    mse_many,
    overshoot,
    read_scalars,
    with_bias_column,
)


def regression(seed: int = 0, m: int = 40, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d))
    return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=m), rng.normal(size=d)


@pytest.mark.parametrize("seed", range(5))
def test_mse_and_gradient_match_autograd(seed: int) -> None:
    X, y, w = regression(seed)
    w_t = torch.tensor(w, requires_grad=True)
    loss = torch.nn.functional.mse_loss(torch.from_numpy(X) @ w_t, torch.from_numpy(y))
    loss.backward()
    assert mse(X, y, w) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(mse_grad(X, y, w), w_t.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_mse_many_evaluates_each_row_and_keeps_grid_shape() -> None:
    X, y, _ = regression(d=2)
    W = np.random.default_rng(1).normal(size=(4, 5, 2))
    surface = mse_many(X, y, W)
    assert surface.shape == (4, 5)
    assert surface[2, 3] == pytest.approx(mse(X, y, W[2, 3]), rel=1e-13)


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda: SGD(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (lambda: SGD(0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (lambda: Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (lambda: Adam(0.1, betas=(0.8, 0.99), eps=1e-6),
     lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
], ids=["sgd", "momentum", "adam", "adam-custom"])
def test_optimizers_follow_torch_optim_on_random_gradients(ours, theirs) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=4)
    param = torch.nn.Parameter(torch.tensor(w))
    optimizer, reference = ours(), theirs([param])
    for _ in range(50):
        grad = rng.normal(size=4) * rng.uniform(0.01, 10)
        w = optimizer.step(w, grad)
        param.grad = torch.tensor(grad)
        reference.step()
        np.testing.assert_allclose(w, param.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_optimizers_reject_bad_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        SGD(0.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        Adam(0.1, betas=(0.9, 1.5))


def test_batch_size_decides_the_number_of_steps() -> None:
    X, y, w0 = regression(m=10)
    orders = epoch_orders(10, 2, seed=0)
    for batch_size, steps in [(10, 2), (1, 20), (4, 6)]:
        run = descend(X, y, w0, SGD(0.01), orders, batch_size)
        assert len(run.batch_losses) == steps and run.weights.shape == (steps + 1, 3)
        assert run.steps_per_epoch == steps // 2 and run.epochs[-1] == 2.0
        assert run.losses[0] == pytest.approx(mse(X, y, w0)) and not run.diverged


def test_descend_matches_a_torch_training_loop_in_float64() -> None:
    X, y, w0 = regression(m=20)
    orders = epoch_orders(20, 3, seed=1)
    run = descend(X, y, w0, Adam(0.05), orders, batch_size=6)
    w = torch.nn.Parameter(torch.tensor(w0))
    optimizer = torch.optim.Adam([w], lr=0.05)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    trajectory = [w0]
    for order in orders:
        for idx in batch_indices(order, 6):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(X_t[idx] @ w, y_t[idx]).backward()
            optimizer.step()
            trajectory.append(w.detach().numpy().copy())
    assert np.abs(np.array(trajectory) - run.weights).max() <= 1e-10


def test_gradient_descent_converges_to_least_squares() -> None:
    X, y, w0 = regression()
    run = descend(X, y, w0, SGD(0.5 * max_stable_lr(X)), epoch_orders(len(y), 200, seed=0), batch_size=len(y))
    np.testing.assert_allclose(run.weights[-1], np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-8)


def test_divergence_is_detected_without_warnings_or_nan() -> None:
    X, y, w0 = regression()
    orders = epoch_orders(len(y), 2_000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning would fail the test
        stable = descend(X, y, w0, SGD(0.99 * max_stable_lr(X)), orders[:50], batch_size=len(y))
        unstable = descend(X, y, w0, SGD(1.01 * max_stable_lr(X)), orders, batch_size=len(y))
        absurd = descend(X, y, w0, SGD(1e200), orders, batch_size=len(y))
    assert not stable.diverged
    assert unstable.diverged and len(unstable.batch_losses) < 2_000
    assert unstable.losses[-1] > 1e6 * unstable.losses[0] and np.isfinite(unstable.losses[-1])
    assert absurd.diverged and len(absurd.batch_losses) <= 2


def test_descend_rejects_mismatched_shapes() -> None:
    X, y, w0 = regression()
    with pytest.raises(ValueError, match="expected X"):
        descend(X, y[:-1], w0, SGD(0.1), epoch_orders(len(y), 1, 0), 4)
    with pytest.raises(ValueError, match="orders must have shape"):
        descend(X, y, w0, SGD(0.1), epoch_orders(len(y) - 1, 1, 0), 4)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        descend(X, y, w0, SGD(0.1), epoch_orders(len(y), 1, 0), 0)


def test_tensorboard_scalars_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr("course_lib.env.repo_root", lambda: tmp_path)
    log_dir = fresh_log_dir("test_run")
    (log_dir / "stale.txt").write_text("from an earlier run")
    log_dir = fresh_log_dir("test_run")
    assert not any(log_dir.iterdir()) and log_dir == tmp_path / "outputs" / "tensorboard" / "test_run"
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for step in range(1, 4):
            writer.add_scalar("mse/train", 1.0 / step, step)
    scalars = read_scalars(log_dir)
    assert list(scalars) == ["mse/train"]
    np.testing.assert_array_equal(scalars["mse/train"][0], [1, 2, 3])
    np.testing.assert_allclose(scalars["mse/train"][1], [1.0, 0.5, 1 / 3], rtol=1e-7)
    with pytest.raises(FileNotFoundError, match="no TensorBoard event file"):
        read_scalars(tmp_path)


def test_overshoot_measures_how_far_a_path_runs_past_the_minimum() -> None:
    minimum = np.array([1.0, -1.0])
    path = np.array([[-1.0, 1.0], [0.5, 0.0], [1.5, -0.5], [1.2, -0.9]])   # passes w1 by 0.5, never w2
    np.testing.assert_allclose(overshoot(path, minimum), [0.5, 0.0])
    np.testing.assert_allclose(overshoot(path[:2], minimum), [0.0, 0.0])   # approaches, never passes
    X, y, _ = regression(m=60, d=2)
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
    w0, orders = w_ls + 3.0, epoch_orders(len(y), 20, seed=0)
    plain = descend(X, y, w0, SGD(0.1), orders, batch_size=len(y)).weights
    heavy = descend(X, y, w0, SGD(0.1, momentum=0.9), orders, batch_size=len(y)).weights
    assert np.all(overshoot(plain, w_ls) == 0)          # lr < 1 / lambda_max: every step stays on its side
    assert overshoot(heavy, w_ls).max() > 0.5           # momentum carries it well past
    with pytest.raises(ValueError, match="expected path"):
        overshoot(path, minimum[:1])


def test_with_bias_column_appends_ones() -> None:
    X = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(with_bias_column(X), [[0, 1, 1], [2, 3, 1], [4, 5, 1]])


def _valley(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An ill-conditioned least-squares problem: its features' spreads differ tenfold (curvatures ~100x)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(128, 2)) * np.array([1.0, 0.1])
    y = X @ np.array([2.0, -1.0]) + 0.5 * rng.normal(size=128)
    curvatures, directions = np.linalg.eigh(2 / len(X) * X.T @ X)
    return X, y, curvatures, directions


def test_batch_descent_shrinks_each_eigen_error_by_its_factor() -> None:
    X, y, curvatures, directions = _valley()
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
    lr = 2 / curvatures.sum()
    run = descend(X, y, np.array([-2.0, 2.0]), SGD(lr), np.tile(np.arange(len(y)), (20, 1)), batch_size=len(y))
    errors = (run.weights - w_ls) @ directions   # (steps + 1, 2): error along each eigenvector
    np.testing.assert_allclose(errors[1:], errors[:-1] * (1 - lr * curvatures), rtol=1e-9, atol=1e-12)


def test_tuned_momentum_beats_batch_descent_in_a_narrow_valley() -> None:
    X, y, curvatures, _ = _valley()
    floor = mse(X, y, np.linalg.lstsq(X, y, rcond=None)[0])
    orders = np.tile(np.arange(len(y)), (50, 1))
    root_condition = np.sqrt(curvatures[1] / curvatures[0])
    heavy_ball = SGD(4 / np.sqrt(curvatures).sum() ** 2, momentum=((root_condition - 1) / (root_condition + 1)) ** 2)
    plain = descend(X, y, np.array([-2.0, 2.0]), SGD(2 / curvatures.sum()), orders, batch_size=len(y))
    fast = descend(X, y, np.array([-2.0, 2.0]), heavy_ball, orders, batch_size=len(y))
    assert plain.losses[-1] > 2 * floor and fast.losses[-1] < 1.01 * floor
