"""Pure train/eval steps, jitted once with shardings and buffer donation.

`train_step(state, batch) -> (state, sums)` and `eval_step(state, batch) -> sums` return metric
*sums* that stay on device; the loop adds them up and fetches them once per logging interval.
A batch is `{"x": (B, ...) float32, "y": (B,) or (B, L), "mask": (B,) float32}`.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxdl.training.objectives import Objective
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed


def train_step(state: TrainState, batch: dict, objective: Objective) -> tuple[TrainState, dict]:
    """One optimizer step on a full batch; BatchNorm uses and updates batch statistics."""
    dropout_key = jax.random.fold_in(state.key, state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, batch["x"], train=True,
            mutable=["batch_stats"], rngs={"dropout": dropout_key},
        )
        losses = objective.loss(logits, batch["y"])
        return losses.mean(), (logits, losses, updates)

    (_, (logits, losses, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    sums = objective.sums(logits, batch["y"], batch["mask"], losses)
    # Non-finite loss or gradients are counted on device; the loop checks once per interval.
    grads_finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    sums["nonfinite_steps"] = (~(jnp.isfinite(losses).all() & grads_finite)).astype(jnp.int32)
    return state, sums


def eval_logits(state: TrainState, x: jax.Array) -> jax.Array:
    """Eval-mode forward pass: BatchNorm running statistics, no dropout."""
    return state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)


def eval_step(state: TrainState, batch: dict, objective: Objective) -> dict:
    logits = eval_logits(state, batch["x"])
    return objective.sums(logits, batch["y"], batch["mask"], objective.loss(logits, batch["y"]))


def predict_step(state: TrainState, batch: dict, objective: Objective) -> tuple[dict, jax.Array]:
    """Eval sums and per-example probabilities (for predictions.csv) in one pass."""
    logits = eval_logits(state, batch["x"])
    sums = objective.sums(logits, batch["y"], batch["mask"], objective.loss(logits, batch["y"]))
    return sums, objective.probabilities(logits)


@dataclasses.dataclass(frozen=True)
class CompiledSteps:
    train: Callable[[TrainState, dict], tuple[TrainState, dict]]
    eval: Callable[[TrainState, dict], dict]
    predict: Callable[[TrainState, dict], tuple[dict, jax.Array]]


def compile_steps(objective: Objective, mesh: Mesh) -> CompiledSteps:
    """Jits the steps for `mesh`: state replicated, batch split over `data`, state donated."""
    repl, data = distributed.replicated(mesh), distributed.data_sharded(mesh)
    return CompiledSteps(
        train=jax.jit(lambda s, b: train_step(s, b, objective), in_shardings=(repl, data),
                      out_shardings=(repl, repl), donate_argnums=0),
        eval=jax.jit(lambda s, b: eval_step(s, b, objective), in_shardings=(repl, data),
                     out_shardings=repl),
        predict=jax.jit(lambda s, b: predict_step(s, b, objective), in_shardings=(repl, data),
                        out_shardings=repl),
    )
