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

from jaxdl.training.metrics import FIRST_NONFINITE
from jaxdl.training.objectives import Objective
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed

NAN_POLICIES = ("stop", "skip")  # train.nan_policy: end the run | skip the step (update dropped)


def training_loss(params, state: TrainState, batch: dict, objective: Objective):
    """Mean loss of `batch` as a training step sees it (BatchNorm on batch statistics, dropout keyed
    by the step), with (logits, per-example losses, BatchNorm updates) as auxiliary output.

    What `train_step` differentiates; analyze's first-batch check takes its gradients too.
    """
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats},
        batch["x"],
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": jax.random.fold_in(state.key, state.step)},
    )
    losses = objective.loss(logits, batch["y"])
    return losses.mean(), (logits, losses, updates)


def train_step(
    state: TrainState, batch: dict, objective: Objective, skip_nonfinite: bool = False
) -> tuple[TrainState, dict]:
    """One optimizer step on a full batch; BatchNorm uses and updates batch statistics.

    A step whose loss or gradients are not finite is counted (`nonfinite_steps`, and the step
    number in `first_nonfinite_step`); with `skip_nonfinite` its update is also discarded
    (`train.nan_policy=skip`), otherwise the loop stops the run.
    """
    (_, (logits, losses, updates)), grads = jax.value_and_grad(training_loss, has_aux=True)(
        state.params, state, batch, objective
    )
    new_state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    sums = objective.sums(logits, batch["y"], batch["mask"], losses)
    # Non-finite loss or gradients are counted on device; the loop checks once per interval.
    grads_finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    bad = ~(jnp.isfinite(losses).all() & grads_finite)
    sums["nonfinite_steps"] = bad.astype(jnp.int32)
    sums[FIRST_NONFINITE] = jnp.where(bad, new_state.step, 0).astype(jnp.int32)
    if skip_nonfinite:  # the step still counts (data position), its update does not

        def keep_old(new, old):
            return jax.tree.map(lambda n, o: jnp.where(bad, o, n), new, old)

        new_state = new_state.replace(
            params=keep_old(new_state.params, state.params),
            batch_stats=keep_old(new_state.batch_stats, state.batch_stats),
            opt_state=keep_old(new_state.opt_state, state.opt_state),
        )
    return new_state, sums


def eval_logits(state: TrainState, x: jax.Array) -> jax.Array:
    """Eval-mode forward pass: BatchNorm running statistics, no dropout."""
    return state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, x, train=False
    )


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


def compile_steps(objective: Objective, mesh: Mesh, skip_nonfinite: bool = False) -> CompiledSteps:
    """Jits the steps for `mesh`: state replicated, batch split over `data`, state donated."""
    repl, data = distributed.replicated(mesh), distributed.data_sharded(mesh)
    return CompiledSteps(
        train=jax.jit(
            lambda s, b: train_step(s, b, objective, skip_nonfinite),
            in_shardings=(repl, data),
            out_shardings=(repl, repl),
            donate_argnums=0,
        ),
        eval=jax.jit(
            lambda s, b: eval_step(s, b, objective), in_shardings=(repl, data), out_shardings=repl
        ),
        predict=jax.jit(
            lambda s, b: predict_step(s, b, objective),
            in_shardings=(repl, data),
            out_shardings=repl,
        ),
    )


def compile_vmapped_steps(
    objective: Objective, mesh: Mesh, skip_nonfinite: bool = False
) -> CompiledSteps:
    """Steps over members stacked on a leading axis (sharded over `config`), one shared batch.

    The accelerator path of grid search: one program for every member. On XLA:CPU per-member
    conv weights make it a grouped convolution, which is slow (docs/xla-cpu-traps.md).
    """
    members, data = distributed.config_sharded(mesh), distributed.data_sharded(mesh)
    train = jax.vmap(lambda s, b: train_step(s, b, objective, skip_nonfinite), in_axes=(0, None))
    evaluate = jax.vmap(lambda s, b: eval_step(s, b, objective), in_axes=(0, None))
    predict = jax.vmap(lambda s, b: predict_step(s, b, objective), in_axes=(0, None))
    return CompiledSteps(
        train=jax.jit(
            train, in_shardings=(members, data), out_shardings=(members, members), donate_argnums=0
        ),
        eval=jax.jit(evaluate, in_shardings=(members, data), out_shardings=members),
        predict=jax.jit(predict, in_shardings=(members, data), out_shardings=members),
    )
