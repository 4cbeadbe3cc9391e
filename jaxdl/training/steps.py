"""Pure train/eval steps, jitted once with shardings and buffer donation.

`train_step(state, sums, batch) -> (state, sums)` and `eval_step(state, sums, batch) -> sums`
take the running metric *sums* and return them with the batch's added, inside the one compiled
program: totals never leave the device between log intervals, and a step costs one dispatch, not
one per metric. State and sums are donated (updated in place); a total starts from `zero_sums`.
A batch is `{"x": (B, ...) float32, "y": (B,) or (B, L), "mask": (B,) float32}`.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdl.training.metrics import FIRST_NONFINITE, HEALTH, NONFINITE, Sums, add_sums
from jaxdl.training.objectives import Objective
from jaxdl.training.state import TrainState
from jaxdl.utils import distributed, xla_options

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


def zero_sums(
    objective: Objective, train: bool = True, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Host zeros with the shapes and dtypes of one step's sums, where a running total starts:
    a train step's (`train`: with the non-finite counts) or an eval step's, or only `keys`.

    Sums keep no batch axis, so one example's shapes tell them.
    """
    classes = len(objective.names)
    labels = (1,) if objective.kind == "multiclass" else (1, classes)
    shapes = jax.eval_shape(
        objective.sums,
        jax.ShapeDtypeStruct((1, classes), jnp.float32),
        jax.ShapeDtypeStruct(labels, jnp.int32),
        jax.ShapeDtypeStruct((1,), jnp.float32),
        jax.ShapeDtypeStruct((1,), jnp.float32),
    )
    zeros = {name: np.zeros(s.shape, s.dtype) for name, s in shapes.items()}
    if train:
        zeros |= {name: np.zeros((), np.int32) for name in HEALTH}
    return zeros if keys is None else {name: zeros[name] for name in keys}


def train_step(
    state: TrainState,
    sums: dict[str, Sums],
    batch: dict,
    objective: Objective,
    skip_nonfinite: bool = False,
) -> tuple[TrainState, dict[str, Sums]]:
    """One optimizer step on a full batch; BatchNorm uses and updates batch statistics.

    `sums` maps names to running totals (the epoch's, the log interval's; a total may keep only
    some keys, `metrics.add_sums`); the step's metric sums are added to every one.
    A step whose loss or gradients are not finite is counted (`nonfinite_steps`, and the step
    number in `first_nonfinite_step`); with `skip_nonfinite` its update is also discarded
    (`train.nan_policy=skip`), otherwise the loop stops the run.
    """
    (_, (logits, losses, updates)), grads = jax.value_and_grad(training_loss, has_aux=True)(
        state.params, state, batch, objective
    )
    new_state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    step_sums = objective.sums(logits, batch["y"], batch["mask"], losses)
    # Non-finite loss or gradients are counted on device; the loop checks once per interval.
    grads_finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    bad = ~(jnp.isfinite(losses).all() & grads_finite)
    step_sums[NONFINITE] = bad.astype(jnp.int32)
    step_sums[FIRST_NONFINITE] = jnp.where(bad, new_state.step, 0).astype(jnp.int32)
    if skip_nonfinite:  # the step still counts (data position), its update does not

        def keep_old(new, old):
            return jax.tree.map(lambda n, o: jnp.where(bad, o, n), new, old)

        new_state = new_state.replace(
            params=keep_old(new_state.params, state.params),
            batch_stats=keep_old(new_state.batch_stats, state.batch_stats),
            opt_state=keep_old(new_state.opt_state, state.opt_state),
        )
    return new_state, {name: add_sums(total, step_sums) for name, total in sums.items()}


def eval_logits(state: TrainState, x: jax.Array) -> jax.Array:
    """Eval-mode forward pass: BatchNorm running statistics, no dropout."""
    return state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, x, train=False
    )


def eval_step(state: TrainState, sums: Sums, batch: dict, objective: Objective) -> Sums:
    """The running eval total `sums` plus the batch's."""
    logits = eval_logits(state, batch["x"])
    batch_sums = objective.sums(
        logits, batch["y"], batch["mask"], objective.loss(logits, batch["y"])
    )
    return add_sums(sums, batch_sums)


def predict_step(
    state: TrainState, sums: Sums, batch: dict, objective: Objective
) -> tuple[Sums, jax.Array]:
    """The running eval total plus the batch's, and per-example probabilities (for
    predictions.csv), in one pass."""
    logits = eval_logits(state, batch["x"])
    batch_sums = objective.sums(
        logits, batch["y"], batch["mask"], objective.loss(logits, batch["y"])
    )
    return add_sums(sums, batch_sums), objective.probabilities(logits)


@dataclasses.dataclass(frozen=True)
class CompiledSteps:
    """`train(state, {name: sums}, batch) -> (state, {name: sums})`,
    `eval(state, sums, batch) -> sums`, `predict(state, sums, batch) -> (sums, probabilities)`;
    the sums passed in are donated: use the returned ones."""

    train: Callable[[TrainState, dict, dict], tuple[TrainState, dict]]
    eval: Callable[[TrainState, Sums, dict], Sums]
    predict: Callable[[TrainState, Sums, dict], tuple[Sums, jax.Array]]


def compile_steps(objective: Objective, mesh: Mesh, skip_nonfinite: bool = False) -> CompiledSteps:
    """Jits the steps for `mesh`: state and sums replicated, batch split over `data`; the state
    and the sums are donated."""
    repl, data = distributed.replicated(mesh), distributed.data_sharded(mesh)
    return CompiledSteps(
        train=xla_options.jit(
            lambda s, t, b: train_step(s, t, b, objective, skip_nonfinite),
            in_shardings=(repl, repl, data),
            out_shardings=(repl, repl),
            donate_argnums=(0, 1),
        ),
        eval=xla_options.jit(
            lambda s, t, b: eval_step(s, t, b, objective),
            in_shardings=(repl, repl, data),
            out_shardings=repl,
            donate_argnums=1,
        ),
        predict=xla_options.jit(
            lambda s, t, b: predict_step(s, t, b, objective),
            in_shardings=(repl, repl, data),
            out_shardings=repl,
            donate_argnums=1,
        ),
    )


def compile_vmapped_steps(
    objective: Objective, mesh: Mesh, skip_nonfinite: bool = False
) -> CompiledSteps:
    """Steps over members stacked on a leading axis (sharded over `config`; their sums too), one
    shared batch.

    The accelerator path of grid search: one program for every member. On XLA:CPU per-member
    conv weights make it a grouped convolution, which is slow (docs/xla-cpu-traps.md).
    """
    members, data = distributed.config_sharded(mesh), distributed.data_sharded(mesh)
    axes = (0, 0, None)
    train = jax.vmap(lambda s, t, b: train_step(s, t, b, objective, skip_nonfinite), axes)
    evaluate = jax.vmap(lambda s, t, b: eval_step(s, t, b, objective), axes)
    predict = jax.vmap(lambda s, t, b: predict_step(s, t, b, objective), axes)
    shardings = (members, members, data)
    return CompiledSteps(
        train=xla_options.jit(
            train,
            in_shardings=shardings,
            out_shardings=(members, members),
            donate_argnums=(0, 1),
        ),
        eval=xla_options.jit(
            evaluate, in_shardings=shardings, out_shardings=members, donate_argnums=1
        ),
        predict=xla_options.jit(
            predict, in_shardings=shardings, out_shardings=members, donate_argnums=1
        ),
    )
