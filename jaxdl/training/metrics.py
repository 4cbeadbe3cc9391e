"""Evaluation metrics as masked sums on device, divided once on the host.

Each step computes sums over its batch (`classification_sums`, `multilabel_sums`) and adds them
to the running totals it was given, inside its compiled program (`add_sums`); the host fetches a
total once per log interval or epoch, then `*_summary` divides. Padded rows of a last partial
batch carry mask 0 and contribute nothing, so the result is exact, and no step waits for the host.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import DataError

Sums = dict[str, jax.Array]

TOP_K = 5
# What each objective reports (train.best_metric picks one of them).
METRIC_NAMES = {
    "multiclass": ("accuracy", "macro_f1", "top5_accuracy", "loss"),
    "multilabel": ("macro_f1", "micro_f1", "mean_accuracy", "loss"),
}


def _weights(mask: jax.Array) -> jax.Array:
    """(B,) {0,1} mask of any dtype -> (B,) int32 weights."""
    return (mask > 0).astype(jnp.int32)


def _masked_loss_sum(losses: jax.Array, weights: jax.Array) -> jax.Array:
    """Sum of per-example losses over kept rows; `where` so a NaN in a padded row cannot leak."""
    return jnp.where(weights > 0, losses, 0.0).sum(dtype=jnp.float32)


def classification_sums(
    logits: jax.Array, labels: jax.Array, mask: jax.Array, losses: jax.Array
) -> Sums:
    """Single-label sums for one batch: logits (B, C), labels (B,) int, mask (B,), losses (B,).

    Returns `count`, `loss_sum`, `correct`, `top5_correct` (top-k with k = min(5, C)) and
    `confusion` (C, C) int32, rows = true class, columns = predicted class.
    """
    num_classes = logits.shape[-1]
    weights = _weights(mask)
    predicted = jnp.argmax(logits, axis=-1)
    _, top_k = jax.lax.top_k(logits, min(TOP_K, num_classes))
    in_top_k = (top_k == labels[:, None]).any(axis=-1)
    # One scatter-add over B rows instead of a (B, C) x (B, C) one-hot matmul; out-of-range
    # cells (e.g. a padded row's label -1) are dropped, and their weight is 0 anyway.
    confusion = jax.ops.segment_sum(
        weights, labels * num_classes + predicted, num_segments=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    return {
        "count": weights.sum(),
        "loss_sum": _masked_loss_sum(losses, weights),
        "correct": (weights * (predicted == labels)).sum(),
        "top5_correct": (weights * in_top_k).sum(),
        "confusion": confusion,
    }


def multilabel_sums(
    logits: jax.Array, targets: jax.Array, mask: jax.Array, losses: jax.Array
) -> Sums:
    """Multi-label sums for one batch: logits (B, L), targets (B, L) {0,1}, mask (B,), losses (B,).

    A label is predicted positive when sigmoid(logit) > 0.5, i.e. logit > 0. Returns `count`,
    `loss_sum` and per-label (L,) int32 `tp`, `fp`, `fn`, `tn`.
    """
    weights = _weights(mask)[:, None]
    predicted = logits > 0
    positive = targets > 0
    return {
        "count": weights.sum(),
        "loss_sum": _masked_loss_sum(losses, weights[:, 0]),
        "tp": (weights * (predicted & positive)).sum(axis=0),
        "fp": (weights * (predicted & ~positive)).sum(axis=0),
        "fn": (weights * (~predicted & positive)).sum(axis=0),
        "tn": (weights * (~predicted & ~positive)).sum(axis=0),
    }


NONFINITE = "nonfinite_steps"  # train steps whose loss or gradients were not finite
FIRST_NONFINITE = "first_nonfinite_step"  # kept, not added: the first bad step of a total (0: none)
HEALTH = (NONFINITE, FIRST_NONFINITE)  # what a train step adds to its metric sums


def add_sums(a, b):
    """`b` added to the running total `a` (jit-able), key by key over the keys of `a`, so a total
    may keep a subset of a step's sums (a log interval's loss and health).

    Works on one member's dict and on a sequence of members' dicts; `first_nonfinite_step`
    keeps the earlier non-zero step instead of adding.
    """
    if isinstance(a, (list, tuple)):
        return type(a)(add_sums(x, y) for x, y in zip(a, b, strict=True))
    return {
        key: (
            jnp.where(a[key] > 0, a[key], b[key])
            if key == FIRST_NONFINITE
            else jnp.add(a[key], b[key])
        )
        for key in a
    }


def mean_loss(sums: Mapping[str, np.ndarray]) -> float:
    """Mean loss of fetched sums (a log interval's, an LR-finder step's): loss_sum / count."""
    return float(sums["loss_sum"]) / float(sums["count"])


def _to_host(sums: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
    """Fetch the sums once and check there is something to divide by."""
    host = {name: np.asarray(value) for name, value in jax.device_get(dict(sums)).items()}
    if host["count"] <= 0:
        raise DataError(
            "evaluation saw no examples (count = 0): the split is empty or every row was masked"
        )
    return host


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, 0 where the denominator is 0 (no NaN)."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN), 0 where undefined (no positives, none predicted)."""
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _confusion_counts(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, C) confusion (rows true, columns predicted) -> per-class (TP, FP, FN)."""
    tp = np.diag(confusion)
    return tp, confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp


def classification_summary(sums: Mapping[str, jax.Array]) -> dict[str, float]:
    """loss, accuracy, macro_f1 and top5_accuracy from accumulated `classification_sums`.

    macro_f1 averages per-class F1 = 2TP / (2TP + FP + FN) over the classes that occur in the
    labels or the predictions, as sklearn's `f1_score(average="macro")` does with its default
    `labels=None`; classes absent from both are left out rather than counted as 0.
    """
    host = _to_host(sums)
    count = float(host["count"])
    confusion = host["confusion"]
    tp, fp, fn = _confusion_counts(confusion)
    occurring = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    return {
        "loss": float(host["loss_sum"]) / count,
        "accuracy": float(host["correct"]) / count,
        "macro_f1": float(_f1(tp, fp, fn)[occurring].mean()),
        "top5_accuracy": float(host["top5_correct"]) / count,
    }


def per_class_report(confusion: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """One row per class: class, support, precision, recall, f1 (0 where undefined, never NaN).

    `confusion` is (C, C), rows = true class, columns = predicted class.
    """
    confusion = np.asarray(confusion)
    if confusion.shape != (len(class_names), len(class_names)):
        raise ValueError(
            f"confusion {confusion.shape} does not match {len(class_names)} class names"
        )
    tp, fp, fn = _confusion_counts(confusion)
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn)
    return [
        {
            "class": name,
            "support": int(tp[i] + fn[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
        }
        for i, name in enumerate(class_names)
    ]


def multilabel_summary(
    sums: Mapping[str, jax.Array], label_names: Sequence[str]
) -> dict[str, float]:
    """loss, mean_accuracy, micro_f1, macro_f1, and per-label metrics from `multilabel_sums`.

    Per label: `accuracy/<name>`, `precision/<name>`, `recall/<name>`, `f1/<name>`. macro_f1 is
    the mean over ALL labels, a label with no positives and no predicted positives counting as
    F1 0 (sklearn's multilabel `average="macro"` with `zero_division=0`); micro_f1 pools the
    counts of all labels.
    """
    host = _to_host(sums)
    tp, fp, fn, tn = host["tp"], host["fp"], host["fn"], host["tn"]
    if tp.shape != (len(label_names),):
        raise ValueError(f"sums have {tp.shape[0]} labels but {len(label_names)} label names")
    count = float(host["count"])
    accuracy = (tp + tn) / count
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn)
    summary = {
        "loss": float(host["loss_sum"]) / count,
        "mean_accuracy": float(accuracy.mean()),
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1": float(f1.mean()),
    }
    for metric, values in (
        ("accuracy", accuracy),
        ("precision", precision),
        ("recall", recall),
        ("f1", f1),
    ):
        summary.update(
            {f"{metric}/{name}": float(v) for name, v in zip(label_names, values, strict=True)}
        )
    return summary
