"""D11 and M2: one training batch's exact shapes against the model's, and the first-batch check
(initial loss against theory, gradient norms, every gradient finite and non-zero).

The loss and gradients are those of the first training step (`steps.training_loss`: train-mode
BatchNorm, dropout on), at the freshly initialised state, on the first batch of epoch 1 exactly
as `train` draws it (shuffled, augmented when `augment.enabled`).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdl.data import pipeline
from jaxdl.tasks.spec import Task
from jaxdl.training import loop, steps
from jaxdl.training.group import Group
from jaxdl.utils import xla_options

# An uninformed model's loss is within this relative distance of ln C (or ln 2); farther means
# over-confident initial logits (a too-large init scale) or a mislabelled batch.
INITIAL_LOSS_TOLERANCE = 0.1
# Gradients below this fraction of the global norm are listed as negligible: e.g. a conv bias
# followed by BatchNorm, whose gradient is 0 in exact arithmetic (the batch mean removes it).
NEGLIGIBLE_FRACTION = 1e-6
# A parameter with an exactly zero gradient is "loss-independent" when adding a random draw to
# it moves the loss by less than this fraction: a conv bias that a training BatchNorm removes
# (jaxdl hands it to the BatchNorm's mean, so its gradient is exactly 0). A zero gradient on a
# parameter the loss does depend on is a gradient that does not flow: all_nonzero is false.
INDEPENDENT_FRACTION = 1e-5


def first_train_batch(
    source, task: Task, config: ml_collections.ConfigDict, batch_size: int
) -> dict:
    """The first batch of epoch 1, as numpy arrays {"x", "y", "mask"}."""
    return next(
        iter(
            pipeline.train_batches(
                source, task, config, 1, batch_size, augment=bool(config.augment.enabled)
            )
        )
    )


def batch_shapes(batch: dict, parts: Group, input_shape: tuple[int, ...]) -> dict:
    """Shapes and dtypes of the batch against `input_shape` (the task's model input, per example)
    and the number of outputs; the model runs on the batch's shape (eval_shape: nothing computed)
    """
    size, outputs = len(batch["x"]), len(parts.objective.names)
    expected_x = [size, *input_shape]
    expected_y = [size] if parts.objective.kind == "multiclass" else [size, outputs]
    logits = jax.eval_shape(
        steps.eval_logits, parts.state, jax.ShapeDtypeStruct(batch["x"].shape, batch["x"].dtype)
    )
    return {
        "x_shape": list(batch["x"].shape),
        "x_dtype": str(batch["x"].dtype),
        "y_shape": list(batch["y"].shape),
        "y_dtype": str(batch["y"].dtype),
        "expected_x_shape": expected_x,
        "expected_y_shape": expected_y,
        "x_matches": list(batch["x"].shape) == expected_x,
        "y_matches": list(batch["y"].shape) == expected_y,
        "logits_shape": list(logits.shape),
        "logits_match": list(logits.shape) == [size, outputs],
    }


def _name(path) -> str:
    return "/".join(str(getattr(key, "key", key)) for key in path)


def gradient_check(parts: Group, batch: dict, layer_order: Sequence[str] = ()) -> dict:
    """Initial loss vs `objective.chance_loss`, global and per-tensor gradient L2 norms.

    Returns loss, chance_loss, relative_gap (|loss - chance| / chance), within_tolerance,
    global_grad_norm, all_finite, all_nonzero (every gradient the loss depends on is non-zero),
    loss_independent (zero-gradient tensors the loss does not depend on), negligible (tensors
    under negligible_fraction of the global norm), and "gradients": one row per parameter tensor
    {parameter, shape, param_norm, grad_norm, finite, nonzero}, layers in `layer_order` (call
    order), else by name.
    """
    objective = parts.objective

    @xla_options.jit
    def shifted_loss(state, batch, shift):
        params = jax.tree.map(jnp.add, state.params, shift)
        return steps.training_loss(params, state, batch, objective)[0]

    @xla_options.jit
    def loss_and_norms(state, batch):
        (loss, _), grads = jax.value_and_grad(steps.training_loss, has_aux=True)(
            state.params, state, batch, objective
        )
        norms = jax.tree.map(lambda g: jnp.sqrt(jnp.sum(jnp.square(g))), grads)
        finite = jax.tree.map(lambda g: jnp.all(jnp.isfinite(g)), grads)
        params = jax.tree.map(lambda p: jnp.sqrt(jnp.sum(jnp.square(p))), state.params)
        return loss, norms, finite, params

    device_batch = loop.to_device(batch, parts.mesh)
    loss, norms, finite, param_norms = jax.device_get(loss_and_norms(parts.state, device_batch))
    flat_norms = jax.tree_util.tree_flatten_with_path(norms)[0]
    independent = []
    shapes = [np.shape(leaf) for leaf in jax.tree.leaves(parts.state.params)]
    for index, (path, g) in enumerate(flat_norms):
        if g == 0:
            # Random per element: a uniform shift of a softmax head's bias leaves its loss as is.
            shift = [
                np.random.default_rng(index).standard_normal(shape).astype(np.float32)
                if i == index
                else np.zeros(shape, np.float32)
                for i, shape in enumerate(shapes)
            ]
            shift = jax.tree.unflatten(jax.tree.structure(norms), shift)
            moved = float(shifted_loss(parts.state, device_batch, shift)) - float(loss)
            if abs(moved) <= INDEPENDENT_FRACTION * max(1.0, abs(float(loss))):
                independent.append(_name(path))
    rows = [
        {
            "parameter": _name(path),
            "shape": list(np.shape(leaf)),
            "param_norm": float(p),
            "grad_norm": float(g),
            "finite": bool(f),
            "nonzero": bool(g > 0),
        }
        for (path, g), f, p, leaf in zip(
            flat_norms,
            jax.tree.leaves(finite),
            jax.tree.leaves(param_norms),
            jax.tree.leaves(parts.state.params),
            strict=True,
        )
    ]
    position = {layer: i for i, layer in enumerate(layer_order)}
    rows.sort(
        key=lambda r: (
            position.get(r["parameter"].rpartition("/")[0], len(position)),
            r["parameter"],
        )
    )
    chance = objective.chance_loss
    gap = abs(float(loss) - chance) / chance
    global_norm = float(np.sqrt(sum(r["grad_norm"] ** 2 for r in rows)))
    return {
        "loss": float(loss),
        "chance_loss": chance,
        "chance_formula": "ln C" if objective.kind == "multiclass" else "ln 2",
        "relative_gap": gap,
        "within_tolerance": gap <= INITIAL_LOSS_TOLERANCE,
        "tolerance": INITIAL_LOSS_TOLERANCE,
        "global_grad_norm": global_norm,
        "all_finite": bool(np.isfinite(loss)) and all(r["finite"] for r in rows),
        "all_nonzero": all(r["nonzero"] or r["parameter"] in independent for r in rows),
        "loss_independent": sorted(independent),
        "negligible": [
            r["parameter"] for r in rows if r["grad_norm"] < NEGLIGIBLE_FRACTION * global_norm
        ],
        "negligible_fraction": NEGLIGIBLE_FRACTION,
        "gradients": rows,
    }
