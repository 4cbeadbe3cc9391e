"""A split's labels, its class counts or attribute positive rates, and imbalance figures (D2–D4)."""

from collections.abc import Mapping, Sequence

import numpy as np
from tqdm import tqdm


def read_labels(source, description: str) -> tuple[np.ndarray, list[str]]:
    """(labels, file names) of every record of a split source, in source order.

    labels: int64 (N,) class indices, or float32 (N, L) 0/1 attribute targets (multi-label).
    """
    labels, filenames = [], []
    for index in tqdm(range(len(source)), desc=description, unit=" records", leave=False):
        record = source[index]
        labels.append(record["label"])
        filenames.append(record["filename"])
    array = np.asarray(labels)
    return (array.astype(np.int64) if array.ndim == 1 else array.astype(np.float32)), filenames


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C,) examples per class."""
    return np.bincount(np.asarray(labels, np.int64), minlength=num_classes)


def imbalance(counts: np.ndarray) -> dict:
    """Imbalance figures of one split's class counts (C,).

    - imbalance_ratio: largest / smallest class count (the imbalance ratio of the class-imbalance
      literature; 1 = balanced), None when a class has no example;
    - majority_share / minority_share: the largest / smallest class's fraction of the split;
    - normalized_entropy: H(p) / ln C of the class frequencies (Pielou's evenness: 1 = balanced,
      towards 0 as one class dominates), over all C classes, absent ones included.
    """
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    shares = counts / max(total, 1)
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    return {
        "examples": total,
        "classes": len(counts),
        "classes_present": int((counts > 0).sum()),
        "min_count": int(counts.min()),
        "max_count": int(counts.max()),
        "imbalance_ratio": float(counts.max() / counts.min()) if counts.min() > 0 else None,
        "majority_share": float(shares.max()),
        "minority_share": float(shares.min()),
        "normalized_entropy": entropy / np.log(len(counts)) if len(counts) > 1 else 1.0,
    }


def positive_rates(targets: np.ndarray, names: Sequence[str]) -> dict:
    """Per-attribute figures of one split's 0/1 targets (N, L).

    positives, positive_rate, and imbalance_ratio = majority / minority side of the attribute
    (None when one side is empty); label_cardinality = mean positive attributes per example.
    """
    targets = np.asarray(targets) > 0
    examples = len(targets)
    positives = targets.sum(axis=0)
    negatives = examples - positives
    larger, smaller = np.maximum(positives, negatives), np.minimum(positives, negatives)
    return {
        "examples": examples,
        "positives": {n: int(p) for n, p in zip(names, positives, strict=True)},
        "positive_rate": {
            n: float(p) / max(examples, 1) for n, p in zip(names, positives, strict=True)
        },
        "imbalance_ratio": {
            n: (float(a / b) if b > 0 else None)
            for n, a, b in zip(names, larger, smaller, strict=True)
        },
        "label_cardinality": float(targets.sum(axis=1).mean()) if examples else 0.0,
    }


def shared_files(filenames: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """File names found in two splits, per pair "a&b" (empty lists when the splits are disjoint)."""
    splits = list(filenames)
    sets = {split: set(names) for split, names in filenames.items()}
    return {
        f"{a}&{b}": sorted(sets[a] & sets[b]) for i, a in enumerate(splits) for b in splits[i + 1 :]
    }
