"""course_lib.data: the data sets (bundled or generated) and the batching helpers."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from torch.utils.data import DataLoader, TensorDataset

from course_lib.data import (
    ReplaySampler,
    batch_indices,
    batch_slices,
    breast_cancer_feature_names,
    breast_cancer_split,
    diabetes_split,
    digits_split,
    epoch_orders,
    imbalanced_split,
    make_linear_data,
    minibatches,
    rank_batches,
)


def split_sizes(n_samples: int, test_fraction: float) -> tuple[int, int]:
    """Train and test sizes of scikit-learn's train_test_split: the test part is rounded up."""
    n_test = math.ceil(test_fraction * n_samples)
    return n_samples - n_test, n_test


def test_digits_split_shapes_and_standardisation() -> None:
    split = digits_split(test_fraction=0.25)
    images = load_digits().images
    assert split.X_train.shape[1:] == (1, *images.shape[1:]) and split.X_train.dtype == np.float32
    assert (len(split.X_train), len(split.X_test)) == split_sizes(len(images), 0.25)
    assert abs(split.X_train.mean()) < 1e-5 and abs(split.X_train.std() - 1) < 1e-4
    assert set(np.unique(split.y_test)) == set(range(10))
    with pytest.raises(ValueError, match="test_fraction must be a number > 0.0"):
        digits_split(test_fraction=0.0)


def test_breast_cancer_split_is_standardised_and_stratified() -> None:
    split = breast_cancer_split(test_fraction=0.25, seed=0)
    n_samples, n_features = load_breast_cancer().data.shape
    n_train, n_test = split_sizes(n_samples, 0.25)
    assert split.X_train.shape == (n_train, n_features) and split.X_test.shape == (n_test, n_features)
    assert split.X_train.dtype == np.float32 and split.y_train.dtype == np.int64
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1, atol=1e-4)
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01
    assert len(breast_cancer_feature_names()) == n_features and breast_cancer_feature_names()[0] == "mean radius"
    with pytest.raises(ValueError, match="test_fraction"):
        breast_cancer_split(test_fraction=0)


def test_imbalanced_split_has_the_requested_share_of_positives() -> None:
    split = imbalanced_split(n_samples=4000, positive_fraction=0.05, seed=1)
    y = np.concatenate([split.y_train, split.y_test])
    assert len(y) == 4000 and abs(y.mean() - 0.05) < 0.01
    X = np.concatenate([split.X_train, split.X_test])
    gap = np.linalg.norm(X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0))
    assert abs(gap - 2.0) < 0.3
    np.testing.assert_array_equal(imbalanced_split(seed=1).X_train, split.X_train)
    with pytest.raises(ValueError, match="positive_fraction"):
        imbalanced_split(positive_fraction=0.7)


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
    n_samples, n_features = load_diabetes().data.shape
    n_train, n_test = split_sizes(n_samples, 0.25)
    assert split.X_train.shape == (n_train, n_features) and split.X_test.shape == (n_test, n_features)
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


def test_minibatches_cover_everything_once_in_the_same_order_for_numpy_and_torch() -> None:
    X, y = np.arange(10.0)[:, None], np.arange(10)
    batches = list(minibatches(X, y, 4, np.random.default_rng(0)))
    tensor_batches = list(minibatches(torch.from_numpy(X), torch.from_numpy(y), 4, np.random.default_rng(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(np.array_equal(a[1], t[1].numpy()) for a, t in zip(batches, tensor_batches, strict=True))


def test_epoch_orders_are_seeded_permutations_and_batches_cover_them() -> None:
    orders = epoch_orders(10, 3, seed=7)
    assert orders.shape == (3, 10)
    assert all(sorted(order) == list(range(10)) for order in orders)
    np.testing.assert_array_equal(orders, epoch_orders(10, 3, seed=7))
    assert not np.array_equal(orders[0], orders[1])
    batches = batch_indices(orders[0], 4)
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), orders[0])


@pytest.mark.parametrize(("n_samples", "batch_size"), [(10, 4), (8, 4), (3, 5), (1, 1), (0, 3)])
def test_batch_slices_cover_every_row_once_in_order(n_samples: int, batch_size: int) -> None:
    slices = batch_slices(n_samples, batch_size)
    rows = np.arange(n_samples)
    np.testing.assert_array_equal(np.concatenate([rows[s] for s in slices] or [rows]), rows)
    assert len(slices) == math.ceil(n_samples / batch_size)
    assert all(s.stop - s.start == batch_size for s in slices[:-1])
    assert not slices or 0 < slices[-1].stop - slices[-1].start <= batch_size


def test_batching_rejects_a_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        batch_slices(4, 0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        batch_indices(np.arange(4), 0)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_rank_batches_together_form_the_same_global_batches_for_any_world_size(world_size: int) -> None:
    X, y = torch.arange(100.0)[:, None], torch.arange(100)
    global_batches = [yb for _, yb in rank_batches(X, y, 12, seed=3)]
    loaders = [rank_batches(X, y, 12, rank, world_size, seed=3) for rank in range(world_size)]
    per_rank = [[yb for _, yb in loader] for loader in loaders]
    assert len(global_batches) == 100 // 12 and all(len(steps) == len(global_batches) for steps in per_rank)
    for step, batch in enumerate(global_batches):
        together = torch.cat([steps[step] for steps in per_rank])
        assert len(together) == 12 and sorted(together.tolist()) == sorted(batch.tolist())
    for loader in loaders:
        loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(loaders[0]))[1], per_rank[0][0])  # a new order each epoch
    with pytest.raises(ValueError, match=r"global_batch_size must be divisible by world_size \(5\), got 12"):
        rank_batches(X, y, 12, 0, 5)
