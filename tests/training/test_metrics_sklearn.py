"""Evaluation metrics against scikit-learn on random data, through jaxdl's real eval path.

The logits are fed through the compiled `eval_step` and `loop.evaluate` (sums per batch, added
over 19 batches on device, the last one padded with masked rows) and `Objective.summary`, with a
pass-through model so the test chooses the logits. The padding rows are adversarial: confidently
wrong, about a class or label that occurs nowhere else, so counting them would change every metric.

Conventions pinned (sklearn's, as metrics.py documents them): single-label macro-F1 averages over
the classes that occur in the labels or the predictions (`f1_score(average="macro")` with its
default `labels=None`); multi-label macro-F1 averages over every label, a label with no positives
and none predicted counting 0 (`zero_division=0`); precision/recall/F1 are 0 where undefined.
"""

from collections.abc import Iterator

import jax
import numpy as np
import optax
import pytest
from sklearn import metrics as skm

from jaxdl.training import loop, steps
from jaxdl.training.metrics import per_class_report
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed

EXAMPLES, BATCH = 301, 16  # 19 batches, the last one 3 padded rows short
CLASSES = 40
NEVER_PREDICTED = range(0, 5)  # labels of some examples, suppressed logits
NEVER_LABELLED = range(34, 40)  # no example has these labels
ABSENT = 39  # neither a label nor a prediction
LABELS = 12
ML_NEVER_PREDICTED, ML_NEVER_POSITIVE, ML_ABSENT = 9, 11, 10


def _passthrough_state() -> TrainState:
    """A state whose model returns its input: the batch's `x` are the logits."""
    return TrainState.create(
        apply_fn=lambda variables, x, train: x,
        params={},
        batch_stats={},
        tx=optax.identity(),
        key=jax.random.key(0),
    )


def _batches(x: np.ndarray, y: np.ndarray, pad_x: np.ndarray, pad_y: np.ndarray) -> Iterator[dict]:
    """Batches of BATCH rows in order, the last padded with (pad_x, pad_y) rows of mask 0."""
    for start in range(0, len(x), BATCH):
        rows = slice(start, start + BATCH)
        real, missing = len(x[rows]), BATCH - len(x[rows])
        yield {
            "x": np.concatenate([x[rows], np.repeat(pad_x[None], missing, 0)]),
            "y": np.concatenate([y[rows], np.repeat(pad_y[None], missing, 0)]),
            "mask": np.concatenate([np.ones(real), np.zeros(missing)]).astype(np.float32),
        }


def _evaluate(
    kind: str, names: list[str], x: np.ndarray, y: np.ndarray, pad_x: np.ndarray, pad_y: np.ndarray
) -> tuple[dict, dict]:
    """(summary, host sums) of jaxdl's compiled eval step and epoch loop over the batches."""
    objective = make_objective(kind, names)
    mesh = distributed.make_mesh()
    compiled = steps.compile_steps(objective, mesh)
    state = distributed.put(_passthrough_state(), distributed.replicated(mesh))
    zeros = distributed.put(steps.zero_sums(objective, train=False), distributed.replicated(mesh))
    sums = loop.evaluate(compiled.eval, state, zeros, _batches(x, y, pad_x, pad_y), mesh, "eval")
    return objective.summary(sums), sums


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def multiclass():
    """Random logits for 40 classes, right about half the time, with absent classes."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NEVER_LABELLED.start, EXAMPLES)
    logits = rng.normal(size=(EXAMPLES, CLASSES))
    informed = rng.random(EXAMPLES) < 0.5
    logits[informed, labels[informed]] += 3.0
    logits[:, list(NEVER_PREDICTED) + [ABSENT]] -= 8.0
    logits = logits.astype(np.float32)
    pad_x = np.full(CLASSES, -5.0, np.float32)
    pad_x[NEVER_LABELLED.start] = 50.0  # labelled ABSENT, confidently something else (loss 55)
    names = [f"class{i}" for i in range(CLASSES)]
    summary, sums = _evaluate(
        "multiclass", names, logits, labels.astype(np.int32), pad_x, np.int32(ABSENT)
    )
    predicted = logits.argmax(axis=1)
    # the edge cases this data is meant to hold
    assert not set(NEVER_PREDICTED) & set(predicted) and set(NEVER_PREDICTED) <= set(labels)
    assert set(NEVER_LABELLED) & set(predicted) - set(labels) - {ABSENT}
    assert ABSENT not in set(labels) | set(predicted)
    return dict(
        summary=summary, sums=sums, logits=logits, labels=labels, predicted=predicted, names=names
    )


def test_multiclass_metrics_through_the_eval_loop_match_sklearn(multiclass):
    summary, logits = multiclass["summary"], multiclass["logits"]
    labels, predicted = multiclass["labels"], multiclass["predicted"]
    all_classes = np.arange(CLASSES)
    assert int(multiclass["sums"]["count"]) == EXAMPLES
    assert summary["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    assert summary["top5_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(labels, logits, k=5, labels=all_classes), abs=1e-12
    )
    assert summary["macro_f1"] == pytest.approx(
        skm.f1_score(labels, predicted, average="macro"), abs=1e-12
    )
    assert summary["loss"] == pytest.approx(
        skm.log_loss(labels, _softmax(logits.astype(np.float64)), labels=all_classes), rel=1e-5
    )
    # Leaving the absent class out matters: averaged over all 40 it would count as 0.
    over_all = skm.f1_score(labels, predicted, average="macro", labels=all_classes, zero_division=0)
    assert abs(summary["macro_f1"] - over_all) > 1e-3


def test_multiclass_confusion_and_per_class_report_match_sklearn(multiclass):
    labels, predicted = multiclass["labels"], multiclass["predicted"]
    confusion = np.asarray(multiclass["sums"]["confusion"])
    np.testing.assert_array_equal(
        confusion, skm.confusion_matrix(labels, predicted, labels=np.arange(CLASSES))
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=np.arange(CLASSES), zero_division=0
    )
    rows = per_class_report(confusion, multiclass["names"])
    for name, values in (
        ("precision", precision),
        ("recall", recall),
        ("f1", f1),
        ("support", support),
    ):
        np.testing.assert_allclose([row[name] for row in rows], values, atol=1e-12, err_msg=name)


def test_multilabel_metrics_through_the_eval_loop_match_sklearn():
    rng = np.random.default_rng(1)
    targets = (rng.random((EXAMPLES, LABELS)) < rng.uniform(0.1, 0.7, LABELS)).astype(np.int32)
    targets[:, [ML_ABSENT, ML_NEVER_POSITIVE]] = 0
    logits = rng.normal(size=(EXAMPLES, LABELS)) + 1.5 * (2 * targets - 1)
    logits[:, [ML_ABSENT, ML_NEVER_PREDICTED]] = -np.abs(logits[:, [ML_ABSENT, ML_NEVER_PREDICTED]])
    logits[:, ML_NEVER_POSITIVE] += 1.0  # predicted positive now and then, never a positive
    logits = logits.astype(np.float32)
    names = [f"attr{i}" for i in range(LABELS)]
    summary, sums = _evaluate(
        "multilabel",
        names,
        logits,
        targets,
        np.full(LABELS, -50.0, np.float32),
        np.ones(LABELS, np.int32),
    )
    predicted = (logits > 0).astype(np.int32)
    assert predicted[:, ML_NEVER_POSITIVE].any() and targets[:, ML_NEVER_PREDICTED].any()
    assert int(sums["count"]) == EXAMPLES

    assert summary["micro_f1"] == pytest.approx(
        skm.f1_score(targets, predicted, average="micro"), abs=1e-12
    )
    assert summary["macro_f1"] == pytest.approx(
        skm.f1_score(targets, predicted, average="macro", zero_division=0), abs=1e-12
    )
    assert summary["mean_accuracy"] == pytest.approx(
        1 - skm.hamming_loss(targets, predicted), abs=1e-12
    )
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = np.mean(
        [skm.log_loss(targets[:, j], probabilities[:, j], labels=[0, 1]) for j in range(LABELS)]
    )
    assert summary["loss"] == pytest.approx(bce, rel=1e-5)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        targets, predicted, zero_division=0
    )
    for j, name in enumerate(names):
        assert summary[f"accuracy/{name}"] == pytest.approx(
            skm.accuracy_score(targets[:, j], predicted[:, j]), abs=1e-12
        )
        assert [summary[f"{m}/{name}"] for m in ("precision", "recall", "f1")] == pytest.approx(
            [precision[j], recall[j], f1[j]], abs=1e-12
        ), name
    # The label with no positives and none predicted counts 0, not 1, in the macro mean.
    as_one = skm.f1_score(targets, predicted, average="macro", zero_division=1)
    assert abs(summary["macro_f1"] - as_one) > 1e-3
