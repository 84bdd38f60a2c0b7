"""Every metric in helpers.metrics checked against scikit-learn on real predictions."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import helpers
from helpers import metrics


@pytest.fixture(scope="module")
def predictions():
    """Scores of a quickly trained linear model on the real digits (imperfect on purpose)."""
    from sklearn.linear_model import LogisticRegression

    digits = helpers.load_digits()
    x_tr = digits.x_train[:300].flatten(1).numpy() / 255.0
    x_te = digits.x_test.flatten(1).numpy() / 255.0
    clf = LogisticRegression(max_iter=30, C=0.01).fit(x_tr, digits.y_train[:300].numpy())
    scores = torch.from_numpy(clf.decision_function(x_te))
    return digits.y_test, scores


def test_accuracy(predictions):
    y, s = predictions
    pred = s.argmax(1)
    assert metrics.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics.accuracy(y, pred) < 1.0  # the test is not vacuous


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy(predictions, k):
    y, s = predictions
    ref = skm.top_k_accuracy_score(y.numpy(), s.numpy(), k=k, labels=list(range(10)))
    assert metrics.top_k_accuracy(y, s, k=k) == pytest.approx(ref)


def test_top_k_refuses_bad_k(predictions):
    y, s = predictions
    with pytest.raises(ValueError, match="k=11"):
        metrics.top_k_accuracy(y, s, k=11)


def test_confusion_matrix(predictions):
    y, s = predictions
    pred = s.argmax(1)
    ours = metrics.confusion_matrix(y, pred, 10).numpy()
    np.testing.assert_array_equal(ours, skm.confusion_matrix(y, pred, labels=list(range(10))))


def test_precision_recall_f1(predictions):
    y, s = predictions
    pred = s.argmax(1)
    ours = metrics.precision_recall_f1(y, pred, 10)
    p, r, f, support = skm.precision_recall_fscore_support(y, pred, labels=list(range(10)), zero_division=0)
    np.testing.assert_allclose(ours["precision"].numpy(), p)
    np.testing.assert_allclose(ours["recall"].numpy(), r)
    np.testing.assert_allclose(ours["f1"].numpy(), f)
    np.testing.assert_array_equal(ours["support"].numpy(), support)


def test_zero_division_is_zero_like_sklearn():
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 0, 0]  # class 1 never predicted, class 2 never occurs
    ours = metrics.precision_recall_f1(y_true, y_pred, 3)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(ours["precision"].numpy(), p)
    np.testing.assert_allclose(ours["recall"].numpy(), r)
    np.testing.assert_allclose(ours["f1"].numpy(), f)


def test_classification_report_macro_matches_sklearn(predictions):
    y, s = predictions
    pred = s.argmax(1)
    frame = metrics.classification_report(y, pred, [str(i) for i in range(10)])
    ref = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert frame.loc["macro avg", "precision"] == pytest.approx(ref[0], abs=1e-4)
    assert frame.loc["macro avg", "recall"] == pytest.approx(ref[1], abs=1e-4)
    assert frame.loc["macro avg", "f1"] == pytest.approx(ref[2], abs=1e-4)
    assert frame.loc["macro avg", "support"] == len(y)


def test_most_confused_counts_off_diagonal(predictions):
    y, s = predictions
    pred = s.argmax(1)
    cm = skm.confusion_matrix(y, pred, labels=list(range(10)))
    np.fill_diagonal(cm, 0)
    top = metrics.most_confused(y, pred, [str(i) for i in range(10)], top=3)
    assert top[0][2] == cm.max()
    assert [c for *_, c in top] == sorted([c for *_, c in top], reverse=True)
