"""Notebook 02's helpers: regression data, the replay sampler, plots, TensorBoard logs, checkers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

from course_lib.data import ReplaySampler, diabetes_split, make_linear_data
from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch02 import check_minibatch_epoch, check_mse_grad, check_zero_grad_loop
from course_lib.gradient_descent import fresh_log_dir, mse_grad, mse_many, read_scalars
from course_lib.plotting import plot_loss_curves, plot_paths_on_contours


def test_linear_data_recovers_its_weights_and_is_seeded() -> None:
    X, y = make_linear_data((2.0, -1.0), n_samples=5_000, noise_std=0.1, feature_std=(1.0, 0.5), seed=3)
    assert X.shape == (5_000, 2) and y.shape == (5_000,) and X.dtype == np.float64
    np.testing.assert_allclose(X.std(axis=0), [1.0, 0.5], rtol=0.05)
    np.testing.assert_allclose(np.linalg.lstsq(X, y, rcond=None)[0], [2.0, -1.0], atol=0.01)
    again = make_linear_data((2.0, -1.0), n_samples=5_000, noise_std=0.1, feature_std=(1.0, 0.5), seed=3)
    np.testing.assert_array_equal(y, again[1])
    noiseless = make_linear_data((1.0, 2.0, 3.0), 20, noise_std=0.0)
    np.testing.assert_allclose(noiseless[1], noiseless[0] @ [1.0, 2.0, 3.0])


def test_linear_data_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="feature_std must hold 2 positive numbers"):
        make_linear_data((1.0, 2.0), feature_std=(1.0, 0.0))
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        make_linear_data((1.0,), n_samples=0)
    with pytest.raises(ValueError, match="true_weights"):
        make_linear_data(())


def test_diabetes_split_is_standardised_with_training_statistics() -> None:
    split = diabetes_split(test_fraction=0.25, seed=0)
    assert split.X_train.shape == (331, 10) and split.X_test.shape == (111, 10)
    assert split.X_train.dtype == np.float64
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1, atol=1e-12)
    assert abs(split.y_train.mean()) < 1e-12 and split.y_train.std() == pytest.approx(1.0)
    assert abs(split.X_test.mean()) > 1e-6  # test part uses the training statistics, not its own
    assert diabetes_split(dtype=np.float32).X_train.dtype == np.float32


def test_replay_sampler_feeds_a_dataloader_the_given_orders() -> None:
    orders = np.array([[2, 0, 1, 3], [3, 1, 0, 2]])
    loader = DataLoader(TensorDataset(torch.arange(4)), batch_size=3, sampler=ReplaySampler(orders))
    assert [[b[0].tolist() for b in loader] for _ in range(2)] == [[[2, 0, 1], [3]], [[3, 1, 0], [2]]]
    with pytest.raises(RuntimeError, match="only 2 epochs"):
        list(loader)
    with pytest.raises(ValueError, match="orders must have shape"):
        ReplaySampler(np.arange(4))


def test_plots_draw_every_curve_and_path() -> None:
    X, y = make_linear_data((1.0, -1.0), 30)
    ax = plot_loss_curves({"a": (np.arange(3), [3.0, 2.0, 1.0]), "b": (np.arange(3), [2.0, 1.0, 0.5])}, title="t")
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"] and ax.get_yscale() == "log"
    paths = {"p": np.array([[0.0, 0.0], [0.5, -0.5], [1.0, -1.0]])}
    ax = plot_paths_on_contours(lambda W: mse_many(X, y, W), paths, title="c", minimum=np.array([1.0, -1.0]))
    labels = [line.get_label() for line in ax.get_lines()]
    assert "p" in labels and "minimum" in labels and ax.get_title() == "c"
    plt.close("all")
    with pytest.raises(ValueError, match="at least one"):
        plot_paths_on_contours(lambda W: mse_many(X, y, W), {}, title="empty")


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


# --- exercise checkers: the reference passes, each typical mistake gets its own explanation ---

@pytest.mark.parametrize(("wrong", "message"), [
    (lambda X, y, w: -mse_grad(X, y, w), "sign is flipped"),
    (lambda X, y, w: mse_grad(X, y, w) / 2, "factor 2"),
    (lambda X, y, w: mse_grad(X, y, w) * len(y), "mean, not a sum"),
    (lambda X, y, w: mse_grad(X, y, w)[:, None], "expected shape"),
    (lambda X, y, w: mse_grad(X, y, w) + 1, "values differ"),
])
def test_check_mse_grad_explains_mistakes(wrong, message: str, capsys: pytest.CaptureFixture) -> None:
    check_mse_grad(mse_grad)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match=message):
        check_mse_grad(wrong)


def _minibatch(X, y, w, lr, batch_size, order, *, use_order=True, drop_last=False):
    stop = len(y) - len(y) % batch_size if drop_last else len(y)
    for start in range(0, stop, batch_size):
        rows = order[start:start + batch_size] if use_order else np.arange(start, min(start + batch_size, len(y)))
        w = w - lr * mse_grad(X[rows], y[rows], w)
    return w


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda X, y, w, lr, b, order: w - lr * mse_grad(X, y, w), "one step on the whole data set"),
    (lambda X, y, w, lr, b, order: _minibatch(X, y, w, lr, b, order, use_order=False), "in the given order"),
    (lambda X, y, w, lr, b, order: _minibatch(X, y, w, lr, b, order, drop_last=True), "was skipped"),
    (lambda X, y, w, lr, b, order: w, "did not change"),
    (lambda X, y, w, lr, b, order: None, "return the weights"),
])
def test_check_minibatch_epoch_explains_mistakes(wrong, message: str, capsys: pytest.CaptureFixture) -> None:
    check_minibatch_epoch(_minibatch)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match=message):
        check_minibatch_epoch(wrong)


def _train_steps(model, X, y, lr, steps, *, zero_grad=True, step=True):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        nn.MSELoss()(model(X).squeeze(1), y).backward()
        if step:
            optimizer.step()
    return model


def test_check_zero_grad_loop_detects_accumulated_gradients(capsys: pytest.CaptureFixture) -> None:
    check_zero_grad_loop(_train_steps)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="gradients accumulate"):
        check_zero_grad_loop(lambda *args: _train_steps(*args, zero_grad=False))
    with pytest.raises(ExerciseFailed, match="did not change"):
        check_zero_grad_loop(lambda *args: _train_steps(*args, step=False))
    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        check_zero_grad_loop(lambda *args: (_ for _ in ()).throw(NotImplementedError()))
