"""The binary-classification data sets of notebook 04."""

import numpy as np
import pytest

from course_lib.data import breast_cancer_feature_names, breast_cancer_split, imbalanced_split


def test_breast_cancer_split_is_standardised_and_stratified() -> None:
    split = breast_cancer_split(test_fraction=0.25, seed=0)
    assert split.X_train.shape == (426, 30) and split.X_test.shape == (143, 30)
    assert split.X_train.dtype == np.float32 and split.y_train.dtype == np.int64
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1, atol=1e-4)
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01
    assert len(breast_cancer_feature_names()) == 30 and breast_cancer_feature_names()[0] == "mean radius"
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
