"""What a task optimises and how it is scored: per-example loss, masked metric sums, summary.

Multi-class tasks use softmax cross-entropy; multi-label tasks (CelebA) sigmoid BCE. The sums are
accumulated on device and turned into metrics once on the host (exact with padded batches). Loss,
sums and probabilities are computed from float32 logits whatever the model's compute dtype.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxdl.training import metrics


@dataclasses.dataclass(frozen=True)
class Objective:
    """Loss and metrics of one task; `names` are the class or label names."""

    kind: str  # "multiclass" | "multilabel"
    names: tuple[str, ...]
    loss: Callable[[jax.Array, jax.Array], jax.Array]  # (logits, labels) -> (B,) losses
    sums: Callable[..., dict]  # (logits, labels, mask, losses) -> dict of device sums
    summary: Callable[[dict], dict[str, float]]  # host: sums -> metric values
    probabilities: Callable[[jax.Array], jax.Array]  # logits -> per-class/label probabilities

    @property
    def chance_loss(self) -> float:
        """Expected initial loss of an uninformed model: ln C (softmax) or ln 2 (sigmoid)."""
        return float(jnp.log(len(self.names))) if self.kind == "multiclass" else float(jnp.log(2.0))


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def sigmoid_binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean over labels per example (torch `BCEWithLogitsLoss` averages over N×L overall)."""
    return optax.sigmoid_binary_cross_entropy(logits, targets.astype(logits.dtype)).mean(axis=-1)


def on_float32(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with its first argument, the logits, cast to float32 (model.dtype=bfloat16
    computes them in bfloat16; the loss and metrics stay float32)."""

    def cast(logits: jax.Array, *args: Any) -> Any:
        return function(logits.astype(jnp.float32), *args)

    return cast


def make_objective(kind: str, names: Sequence[str]) -> Objective:
    names = tuple(names)
    if kind == "multiclass":
        return Objective(
            kind,
            names,
            on_float32(softmax_cross_entropy),
            on_float32(metrics.classification_sums),
            metrics.classification_summary,
            on_float32(lambda z: jax.nn.softmax(z, axis=-1)),
        )
    if kind == "multilabel":
        return Objective(
            kind,
            names,
            on_float32(sigmoid_binary_cross_entropy),
            on_float32(metrics.multilabel_sums),
            lambda sums: metrics.multilabel_summary(sums, names),
            on_float32(jax.nn.sigmoid),
        )
    raise ValueError(f"objective kind must be 'multiclass' or 'multilabel', got {kind!r}")
