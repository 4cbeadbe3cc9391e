"""Masked-sum metrics against values computed by hand on small handmade batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.errors import DataError
from jaxdl.training.metrics import (
    add_sums,
    classification_summary,
    classification_sums,
    multilabel_summary,
    multilabel_sums,
    per_class_report,
)

# Six classes; the last row is padding (mask 0, NaN loss) that would otherwise count as class 5.
# Class 3 is predicted but never a label; classes 4 and 5 occur in neither.
LOGITS = jnp.array(
    [
        [5, 4, 3, 2, 1, 0],  # label 0, predicted 0
        [4, 5, 3, 2, 1, 0],  # label 0, predicted 1
        [0, 5, 4, 3, 2, 1],  # label 1, predicted 1
        [1, 2, 0, 5, 4, 3],  # label 2, predicted 3; label has the lowest logit: top-5 miss
        [0, 1, 5, 2, 3, 4],  # label 2, predicted 2
        [0, 0, 0, 0, 0, 9],  # padding
    ],
    dtype=jnp.float32,
)
LABELS = jnp.array([0, 0, 1, 2, 2, 5])
MASK = jnp.array([1, 1, 1, 1, 1, 0])
LOSSES = jnp.array([0.1, 0.2, 0.3, 0.4, 0.5, jnp.nan])


def test_classification_sums_by_hand():
    sums = classification_sums(LOGITS, LABELS, MASK, LOSSES)
    expected_confusion = np.zeros((6, 6), np.int32)
    for true, predicted in [(0, 0), (0, 1), (1, 1), (2, 3), (2, 2)]:
        expected_confusion[true, predicted] += 1
    assert int(sums["count"]) == 5
    assert float(sums["loss_sum"]) == pytest.approx(1.5)
    assert int(sums["correct"]) == 3
    assert int(sums["top5_correct"]) == 4
    assert sums["confusion"].dtype == jnp.int32
    np.testing.assert_array_equal(sums["confusion"], expected_confusion)


def test_classification_summary_by_hand():
    summary = classification_summary(classification_sums(LOGITS, LABELS, MASK, LOSSES))
    # Per-class F1 = 2TP/(2TP+FP+FN): classes 0, 1, 2 -> 2/3; class 3 (only predicted) -> 0;
    # classes 4 and 5 occur nowhere and are left out: (3 * 2/3 + 0) / 4.
    assert summary == pytest.approx(
        {"loss": 0.3, "accuracy": 0.6, "macro_f1": 0.5, "top5_accuracy": 0.8}
    )
    assert all(type(value) is float for value in summary.values())


def test_per_class_report_by_hand_has_no_nan():
    confusion = classification_sums(LOGITS, LABELS, MASK, LOSSES)["confusion"]
    rows = per_class_report(confusion, [f"c{i}" for i in range(6)])
    expected = [
        ("c0", 2, 1.0, 0.5, 2 / 3),
        ("c1", 1, 0.5, 1.0, 2 / 3),
        ("c2", 2, 1.0, 0.5, 2 / 3),
        ("c3", 0, 0.0, 0.0, 0.0),
        ("c4", 0, 0.0, 0.0, 0.0),
        ("c5", 0, 0.0, 0.0, 0.0),
    ]
    got = [(r["class"], r["support"], r["precision"], r["recall"], r["f1"]) for r in rows]
    assert got == [pytest.approx(row) for row in expected]


def test_top5_with_fewer_than_five_classes():
    logits = jnp.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    sums = classification_sums(logits, jnp.array([0, 1]), jnp.ones(2), jnp.zeros(2))
    assert int(sums["top5_correct"]) == 2
    assert classification_summary(sums)["accuracy"] == 0.0


def test_classification_sums_jit_matches_eager_and_batches_add_up():
    jitted = jax.jit(classification_sums)
    eager = classification_sums(LOGITS, LABELS, MASK, LOSSES)
    split = [jitted(LOGITS[s], LABELS[s], MASK[s], LOSSES[s]) for s in (slice(0, 3), slice(3, 6))]
    for summed in (jax.jit(add_sums)(*split), add_sums(*split)):
        for name in eager:
            np.testing.assert_allclose(summed[name], eager[name], rtol=1e-6)
    jitted_full = jitted(LOGITS, LABELS, MASK, LOSSES)
    for name in eager:
        np.testing.assert_allclose(jitted_full[name], eager[name], rtol=1e-6)


def test_summary_of_nothing_is_a_user_error():
    sums = classification_sums(LOGITS, LABELS, jnp.zeros(6), LOSSES)
    with pytest.raises(DataError, match="no examples"):
        classification_summary(sums)


LABEL_NAMES = ["Smiling", "Male", "Eyeglasses"]
ML_LOGITS = jnp.array(
    [
        [2.0, -1.0, -1.0],
        [-1.0, 3.0, -2.0],
        [1.0, 2.0, -1.0],
        [0.0, -3.0, -1.0],  # logit 0 is sigmoid 0.5: not positive
        [5.0, 5.0, 5.0],  # padding
    ]
)
ML_TARGETS = jnp.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 1, 1]])
ML_MASK = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
ML_LOSSES = jnp.array([0.2, 0.4, 0.6, 0.8, jnp.nan])


def test_multilabel_sums_by_hand():
    sums = jax.jit(multilabel_sums)(ML_LOGITS, ML_TARGETS, ML_MASK, ML_LOSSES)
    assert int(sums["count"]) == 4
    assert float(sums["loss_sum"]) == pytest.approx(2.0)
    np.testing.assert_array_equal(sums["tp"], [1, 2, 0])
    np.testing.assert_array_equal(sums["fp"], [1, 0, 0])
    np.testing.assert_array_equal(sums["fn"], [1, 0, 0])
    np.testing.assert_array_equal(sums["tn"], [1, 2, 4])


def test_multilabel_summary_by_hand():
    summary = multilabel_summary(
        multilabel_sums(ML_LOGITS, ML_TARGETS, ML_MASK, ML_LOSSES), LABEL_NAMES
    )
    # Eyeglasses has no positives and none predicted: F1 0, still in the macro mean.
    assert summary == pytest.approx(
        {
            "loss": 0.5,
            "mean_accuracy": 2.5 / 3,
            "micro_f1": 6 / 8,
            "macro_f1": 0.5,
            "accuracy/Smiling": 0.5,
            "accuracy/Male": 1.0,
            "accuracy/Eyeglasses": 1.0,
            "precision/Smiling": 0.5,
            "precision/Male": 1.0,
            "precision/Eyeglasses": 0.0,
            "recall/Smiling": 0.5,
            "recall/Male": 1.0,
            "recall/Eyeglasses": 0.0,
            "f1/Smiling": 0.5,
            "f1/Male": 1.0,
            "f1/Eyeglasses": 0.0,
        }
    )


def test_multilabel_batches_add_up():
    halves = [
        multilabel_sums(ML_LOGITS[s], ML_TARGETS[s], ML_MASK[s], ML_LOSSES[s])
        for s in (slice(0, 2), slice(2, 5))
    ]
    whole = multilabel_sums(ML_LOGITS, ML_TARGETS, ML_MASK, ML_LOSSES)
    summed = add_sums(*halves)
    for name in whole:
        np.testing.assert_allclose(summed[name], whole[name], rtol=1e-6)


def test_multilabel_summary_rejects_wrong_label_names():
    sums = multilabel_sums(ML_LOGITS, ML_TARGETS, ML_MASK, ML_LOSSES)
    with pytest.raises(ValueError, match="3 labels"):
        multilabel_summary(sums, ["Smiling"])
