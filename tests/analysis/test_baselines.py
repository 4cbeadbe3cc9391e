"""Majority and random baselines against hand-computed values."""

import math

import numpy as np
import pytest

from jaxdl.analysis import baselines
from jaxdl.training.objectives import make_objective


def test_majority_class_scored_on_another_split():
    objective = make_objective("multiclass", ("a", "b", "c"))
    result = baselines.majority(objective, np.array([0, 0, 1, 2]), {"val": np.array([0, 1, 1, 2])})
    assert (result["class"], result["train_share"], result["tied_classes"]) == ("a", 0.5, 1)
    val = result["val"]
    assert val["accuracy"] == 0.25
    # "a" predicted 4 times, right once: F1 = 2/(2 + 3); "b" and "c" never predicted: 0.
    assert val["macro_f1"] == pytest.approx(0.4 / 3)
    # cross-entropy of the train prior (1/2, 1/4, 1/4) on a, b, b, c
    assert val["loss"] == pytest.approx(-(math.log(0.5) + 3 * math.log(0.25)) / 4, rel=1e-6)


def test_majority_tie_goes_to_the_lowest_label():
    objective = make_objective("multiclass", ("a", "b", "c"))
    result = baselines.majority(objective, np.array([2, 2, 1, 1]), {"val": np.array([1, 2])})
    assert (result["class_index"], result["tied_classes"]) == (1, 2)
    assert result["val"]["accuracy"] == 0.5


def test_per_attribute_majority_with_an_attribute_without_positives():
    names = ("frequent", "never", "rare")
    objective = make_objective("multilabel", names)
    train = np.array([[1, 0, 0], [1, 0, 1], [1, 0, 0], [0, 0, 0]], np.float32)
    val = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    result = baselines.majority(objective, train, {"val": val})
    assert result["predicted_positive"] == {"frequent": True, "never": False, "rare": False}
    assert result["train_rate"] == {"frequent": 0.75, "never": 0.0, "rare": 0.25}
    scores = result["val"]
    assert [scores[f"accuracy/{n}"] for n in names] == pytest.approx([0.6, 0.8, 0.6])
    assert scores["mean_accuracy"] == pytest.approx(2 / 3)
    # frequent: TP 3, FP 2 -> F1 = 6/8; never and rare: nothing predicted -> 0
    assert [scores[f"f1/{n}"] for n in names] == pytest.approx([0.75, 0.0, 0.0])
    assert scores["macro_f1"] == pytest.approx(0.25)
    assert scores["micro_f1"] == pytest.approx(6 / (6 + 2 + 3))  # TP 3, FP 2, FN 1 + 2
    # The never-seen attribute's prior is floored: its val positive costs -ln(1e-6), not inf.
    assert math.isfinite(scores["loss"]) and scores["loss"] > -math.log(1e-6) / 15


def test_expected_f1_hand_values():
    # P = 1, one negative, q = 1/2: TP and FP each 0 or 1; F1 = 1 (TP 1, FP 0) or 2/3 (TP 1, FP 1)
    assert baselines.expected_f1(1, 1, 0.5) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3)
    # P = 2, no negative: TP 1 -> 2/3 (p 1/2), TP 2 -> 1 (p 1/4)
    assert baselines.expected_f1(2, 0, 0.5) == pytest.approx(0.5 * 2 / 3 + 0.25)
    assert baselines.expected_f1(0, 5, 0.3) == 0.0
    assert baselines.expected_f1(3, 2, 1.0) == pytest.approx(6 / 8)  # always positive


def test_random_expectations_match_a_long_seeded_simulation():
    rng = np.random.default_rng(3)
    names = tuple("abcdefg")
    labels = rng.choice(7, size=60, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    expected = baselines.random_expected("multiclass", names, labels)
    assert expected["accuracy"] == 1 / 7
    simulated = baselines.random_simulated(
        make_objective("multiclass", names), labels, seed=0, draws=400
    )
    for key in ("accuracy", "macro_f1"):
        assert abs(simulated[key] - expected[key]) < 4 * simulated[f"{key}_std"] / 20, key

    attributes = ("common", "rare", "absent")
    targets = (rng.random((80, 3)) < [0.5, 0.1, 0.0]).astype(np.float32)
    expected = baselines.random_expected("multilabel", attributes, targets)
    assert expected["mean_accuracy"] == 0.5 and expected["f1/absent"] == 0.0
    simulated = baselines.random_simulated(
        make_objective("multilabel", attributes), targets, seed=1, draws=400
    )
    for key in ("mean_accuracy", "micro_f1", "macro_f1"):
        assert abs(simulated[key] - expected[key]) < 4 * simulated[f"{key}_std"] / 20, key
