"""Class counts, imbalance figures, positive rates and split overlaps, by hand."""

import math

import numpy as np
import pytest

from jaxdl.analysis import distribution


def test_imbalance_figures():
    stats = distribution.imbalance(distribution.class_counts(np.array([0] * 6 + [1] * 2), 2))
    assert (stats["min_count"], stats["max_count"], stats["imbalance_ratio"]) == (2, 6, 3.0)
    assert (stats["majority_share"], stats["minority_share"]) == (0.75, 0.25)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert stats["normalized_entropy"] == pytest.approx(entropy / math.log(2))


def test_an_absent_class_has_no_imbalance_ratio_and_lowers_the_evenness():
    stats = distribution.imbalance(np.array([4, 0, 2]))
    assert stats["imbalance_ratio"] is None and stats["classes_present"] == 2
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert stats["normalized_entropy"] == pytest.approx(entropy / math.log(3))


def test_positive_rates_with_an_attribute_without_positives():
    targets = np.array([[1, 0], [1, 0], [0, 0], [1, 0]], np.float32)
    stats = distribution.positive_rates(targets, ("a", "b"))
    assert stats["positives"] == {"a": 3, "b": 0}
    assert stats["positive_rate"] == {"a": 0.75, "b": 0.0}
    assert stats["imbalance_ratio"] == {"a": 3.0, "b": None}
    assert stats["label_cardinality"] == 0.75


def test_shared_files_per_pair_of_splits():
    shared = distribution.shared_files({"train": ["x", "y"], "val": ["y", "z"], "test": ["w"]})
    assert shared == {"train&val": ["y"], "train&test": [], "val&test": []}
