"""M1: the model layer by layer (type, output shape, parameters) and the parameter count of every
combination of the two model hyper-parameters in `config.grid.model`.

Shapes come from `jax.eval_shape`: nothing is allocated or computed, so the full-size models of
every grid combination are summarised in about a second each.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from jaxdl import tasks
from jaxdl.training.state import count_params


def _own_arrays(tree: dict, path: tuple[str, ...]) -> dict:
    """The arrays held directly by the module at `path` (its submodules' are theirs)."""
    for name in path:
        tree = tree.get(name, {})
    return {name: value for name, value in tree.items() if not isinstance(value, dict)}


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """One row per submodule in call order: layer, type, output_shape (per example), params,
    param_shapes ({name: shape}), state (non-trainable BatchNorm statistics)."""
    types: dict[tuple[str, ...], str] = {}

    def record(module: nn.Module, method: str) -> bool:
        types.setdefault(module.path, type(module).__name__)
        return method == "__call__"

    def shapes():
        x = jnp.zeros((1, *input_shape), jnp.float32)
        variables = model.init(jax.random.key(0), x)
        _, captured = model.apply(
            variables, x, capture_intermediates=record, mutable=["intermediates"]
        )
        return variables, captured["intermediates"]

    variables, outputs = jax.eval_shape(shapes)
    params, state = variables["params"], variables.get("batch_stats", {})
    rows = []
    for path, kind in types.items():
        if not path:
            continue
        own = _own_arrays(params, path)
        output = _own_arrays(outputs, path).get("__call__", ())
        rows.append(
            {
                "layer": "/".join(path),
                "type": kind,
                "output_shape": list(output[0].shape[1:]) if output else None,
                "params": sum(math.prod(v.shape) for v in own.values()),
                "param_shapes": {name: list(v.shape) for name, v in own.items()},
                "state": sum(math.prod(v.shape) for v in _own_arrays(state, path).values()),
            }
        )
    if sum(row["params"] for row in rows) != count_params(params):
        raise AssertionError("layer table misses parameters of nested modules")
    return rows


def parameter_count(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *input_shape)))
    return count_params(variables["params"])


def grid_counts(
    config: ml_collections.ConfigDict, num_classes: int, input_shape: tuple[int, ...]
) -> list[dict]:
    """Parameters of every combination of the model's two hyper-parameters: the values of
    `config.grid.model` (the configured value for a key it lacks). Rows: {key: value, ...,
    "params", "configured": whether it is `config.model`'s combination}."""
    keys = tasks.hyperparameter_names(config)
    values = [
        list(config.grid.model[k]) if k in config.grid.model else [config.model[k]] for k in keys
    ]
    rows = []
    for combination in itertools.product(*values):
        variant = ml_collections.ConfigDict(config.to_dict())
        for key, value in zip(keys, combination, strict=True):
            variant.model[key] = value
        rows.append(
            {
                **{k: plain(v) for k, v in zip(keys, combination, strict=True)},
                "params": parameter_count(tasks.build_model(variant, num_classes), input_shape),
                "configured": all(
                    plain(v) == plain(config.model[k])
                    for k, v in zip(keys, combination, strict=True)
                ),
            }
        )
    return rows


def plain(value):
    """Tuples as lists, so values compare and serialise alike (JSON has no tuples)."""
    return list(value) if isinstance(value, (list, tuple)) else value
