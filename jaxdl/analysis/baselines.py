"""M0 baselines: the majority class (from train) and uniform random guessing, on val and test.

Each baseline becomes logits and is scored through the task's `Objective` (the same sums and
summaries as evaluation), so its accuracy and F1 mean exactly what they mean for a model.

- majority: logits = log of the train class frequencies (multi-class; argmax = the most frequent
  train class, the lowest label on a tie) or the log-odds of each attribute's train positive rate
  (multi-label; predicted positive when the rate exceeds 0.5, the per-attribute majority). Its
  loss is the cross-entropy of predicting the train prior: the best a constant prediction does.
- random: each example's class uniform over the C classes (multi-label: each attribute positive
  with p = 0.5). Expected values computed exactly: accuracy 1/C (0.5 per attribute) and F1 by
  summing over the binomial laws of its true and false positives (`expected_f1`); also simulated
  with `SIMULATION_DRAWS` seeded draws through the real metrics, as a check.
"""

import functools
from collections.abc import Mapping

import jax
import numpy as np
from scipy import special

from jaxdl.training.objectives import Objective

PRIOR_FLOOR = 1e-6  # a class or side absent from train still gets a finite loss
SIMULATION_DRAWS = 20
_NEGLIGIBLE = 1e-18  # binomial probabilities left out by `expected_f1` (error <= (n + 1)·1e-18)


@functools.lru_cache(maxsize=4)
def _sums_fn(objective: Objective):
    """The objective's metric sums of (logits, labels), every row counted: jitted once per task."""

    def sums(logits, labels):
        mask = jax.numpy.ones(labels.shape[0], np.float32)
        return objective.sums(logits, labels, mask, objective.loss(logits, labels))

    return jax.jit(sums)


def _score(objective: Objective, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The objective's summary of `logits` (N, C) against `labels`."""
    return objective.summary(_sums_fn(objective)(np.asarray(logits, np.float32), labels))


def prior_logits(kind: str, train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (C,) log class frequencies (multi-class) or (L,) log-odds of the positive rates."""
    if kind == "multiclass":
        counts = np.bincount(np.asarray(train_labels, np.int64), minlength=num_classes)
        return np.log(np.maximum(counts / counts.sum(), PRIOR_FLOOR)).astype(np.float32)
    rates = np.clip(np.asarray(train_labels, np.float64).mean(axis=0), PRIOR_FLOOR, 1 - PRIOR_FLOOR)
    return np.log(rates / (1 - rates)).astype(np.float32)


def majority(
    objective: Objective, train_labels: np.ndarray, eval_labels: Mapping[str, np.ndarray]
) -> dict:
    """The majority baseline fitted on `train_labels`, scored on each split of `eval_labels`."""
    num_classes = len(objective.names)
    logits = prior_logits(objective.kind, train_labels, num_classes)
    result = {
        split: _score(objective, np.broadcast_to(logits, (len(labels), num_classes)), labels)
        for split, labels in eval_labels.items()
    }
    if objective.kind == "multiclass":
        counts = np.bincount(train_labels, minlength=num_classes)
        chosen = int(np.argmax(counts))
        return {
            "class_index": chosen,
            "class": objective.names[chosen],
            "train_share": float(counts[chosen] / counts.sum()),
            "tied_classes": int((counts == counts[chosen]).sum()),
            **result,
        }
    rates = np.asarray(train_labels, np.float64).mean(axis=0)
    return {
        "predicted_positive": {
            n: bool(lg > 0) for n, lg in zip(objective.names, logits, strict=True)
        },
        "train_rate": {n: float(r) for n, r in zip(objective.names, rates, strict=True)},
        **result,
    }


def _binomial(n: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and probabilities of Bin(n, q), values under `_NEGLIGIBLE` left out."""
    if q in (0.0, 1.0):  # a certain outcome (e.g. one class): log(0) would give NaN below
        return np.array([n * q]), np.ones(1)
    k = np.arange(n + 1, dtype=np.float64)
    pmf = np.exp(
        special.gammaln(n + 1)
        - special.gammaln(k + 1)
        - special.gammaln(n - k + 1)
        + k * np.log(q)
        + (n - k) * np.log1p(-q)
    )
    keep = pmf > _NEGLIGIBLE
    return k[keep], pmf[keep]


def expected_f1(positives: int, negatives: int, q: float) -> float:
    """E[F1] of predicting "positive" independently with probability q for every example.

    F1 = 2TP / (P + TP + FP) with TP ~ Bin(P, q) and FP ~ Bin(negatives, q) independent; F1 = 0
    when there is no positive (P = 0), as in `metrics`. Exact to ~1e-12.
    """
    if positives == 0:
        return 0.0
    tp, p_tp = _binomial(positives, q)
    fp, p_fp = _binomial(negatives, q)
    return float(p_tp @ (2 * tp[:, None] / (positives + tp[:, None] + fp[None, :])) @ p_fp)


def random_expected(kind: str, names: tuple[str, ...], labels: np.ndarray) -> dict[str, float]:
    """Exact expected metrics of uniform random guessing on one split's labels.

    Multi-class: accuracy 1/C; macro_f1 = the mean over all C classes of each class's expected F1
    (the metric averages over the classes present in the labels or the predictions: with random
    guesses every class is predicted almost surely, so this is exact unless a class is both
    absent from the split and never guessed). Multi-label (p = 0.5): mean_accuracy 0.5, per-label
    and macro F1 (mean over all labels, as the metric), micro_f1 from the pooled counts.
    """
    n = len(labels)
    if kind == "multiclass":
        counts = np.bincount(np.asarray(labels, np.int64), minlength=len(names))
        q = 1.0 / len(names)
        return {
            "accuracy": q,
            "macro_f1": float(np.mean([expected_f1(int(c), n - int(c), q) for c in counts])),
        }
    positives = (np.asarray(labels) > 0).sum(axis=0).astype(int)
    f1 = [expected_f1(int(p), n - int(p), 0.5) for p in positives]
    total = int(positives.sum())
    return {
        "mean_accuracy": 0.5,
        "micro_f1": expected_f1(total, n * len(names) - total, 0.5),
        "macro_f1": float(np.mean(f1)),
        **{f"f1/{a}": v for a, v in zip(names, f1, strict=True)},
    }


def random_simulated(
    objective: Objective, labels: np.ndarray, seed: int, draws: int = SIMULATION_DRAWS
) -> dict[str, float]:
    """Mean and std over `draws` seeded random guessings of the headline metrics (`<metric>` and
    `<metric>_std`): accuracy and macro_f1, or mean_accuracy, micro_f1 and macro_f1."""
    rng = np.random.default_rng(seed)
    n, width = len(labels), len(objective.names)
    keys = (
        ("accuracy", "macro_f1")
        if objective.kind == "multiclass"
        else ("mean_accuracy", "micro_f1", "macro_f1")
    )
    values = {key: [] for key in keys}
    for _ in range(draws):
        if objective.kind == "multiclass":
            logits = np.eye(width, dtype=np.float32)[rng.integers(width, size=n)]
        else:
            logits = np.where(rng.random((n, width)) < 0.5, 1.0, -1.0)
        summary = _score(objective, logits, labels)
        for key in keys:
            values[key].append(summary[key])
    result = {"draws": draws, "seed": seed}
    for key, series in values.items():
        result[key], result[f"{key}_std"] = float(np.mean(series)), float(np.std(series))
    return result
