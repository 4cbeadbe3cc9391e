"""Members that train together: configurations sharing an architecture, fed the same batches.

`train` is a group of one; `grid_search` and `compare` make one group per architecture. The
group's `train`/`eval` take and return the states and metric sums of *all* members, so the epoch
loop (`loop.train_epoch`, `loop.evaluate`) drives one member or many through the same code.

Strategies (`grid.strategy`):
- `sequential`: one compiled single-member step, called for each member on each shared batch.
  The fast path on XLA:CPU, where vmapped per-member convolutions become slow grouped convs.
- `vmap`: members stacked on a leading axis and `jax.vmap`ped in one program, sharded over the
  `config` axis of a `("config", "data")` mesh. The accelerator path.
Learning rate and weight decay live in each member's optimizer state (`inject_hyperparams`), so
members of different lr / weight decay / seed share the compiled program.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from jaxdl import tasks
from jaxdl.errors import ConfigError
from jaxdl.training import optim, steps
from jaxdl.training.objectives import Objective, make_objective
from jaxdl.training.state import TrainState, create_train_state
from jaxdl.utils import distributed

STRATEGIES = ("sequential", "vmap")


def resolve_strategy(strategy: str) -> str:
    """`auto`: sequential on CPU (docs/xla-cpu-traps.md), vmap on GPU/TPU."""
    if strategy == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "vmap"
    if strategy not in STRATEGIES:
        raise ConfigError(f"grid.strategy={strategy!r} is invalid: expected auto, vmap or sequential")
    return strategy


def _check_shared_architecture(configs: Sequence[ml_collections.ConfigDict]) -> None:
    """Members may differ only in lr, weight decay and seed."""
    def shared(config):
        rest = config.to_dict()
        rest.pop("seed"), rest.pop("run_name")
        rest["train"] = {k: v for k, v in rest["train"].items() if k not in ("lr", "weight_decay")}
        return rest

    first = shared(configs[0])
    for config in configs[1:]:
        if shared(config) != first:
            raise ConfigError("members of one group must differ only in train.lr, "
                              "train.weight_decay and seed")


def member_state(model, tx: optax.GradientTransformation, config: ml_collections.ConfigDict,
                 input_shape: tuple[int, ...]) -> TrainState:
    """A fresh state for `config`'s seed, with its own lr and weight decay in the optimizer state."""
    state = create_train_state(model, tx, config.seed, input_shape)
    opt_state = optax.tree_utils.tree_set(
        state.opt_state, learning_rate=jnp.asarray(config.train.lr, jnp.float32),
        weight_decay=jnp.asarray(config.train.weight_decay, jnp.float32))
    return state.replace(opt_state=opt_state)


@dataclasses.dataclass(frozen=True)
class Group:
    objective: Objective
    mesh: Mesh
    strategy: str
    size: int
    states: Any  # tuple of TrainStates (sequential) or one stacked TrainState (vmap)
    train: Callable[[Any, dict], tuple[Any, Any]]  # (states, batch) -> (states, sums)
    eval: Callable[[Any, dict], Any]  # (states, batch) -> sums

    def member_states(self, states) -> list[TrainState]:
        if self.strategy == "sequential":
            return list(states)
        return [jax.tree.map(lambda x, i=i: x[i], states) for i in range(self.size)]

    def member_sums(self, sums) -> list[dict]:
        """Host copies of each member's sums."""
        sums = distributed.fetch(sums)
        if self.strategy == "sequential":
            return list(sums)
        return [{k: v[i] for k, v in sums.items()} for i in range(self.size)]

    def join_states(self, states: Sequence[TrainState]):
        """The inverse of `member_states` (after a restore)."""
        if self.strategy == "sequential":
            return tuple(distributed.put(s, distributed.replicated(self.mesh)) for s in states)
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        return distributed.put(stacked, distributed.config_sharded(self.mesh))

    def join_sums(self, sums: Sequence[dict]):
        """Host sums of each member back into the group's device layout (a resumed epoch)."""
        if self.strategy == "sequential":
            return tuple(distributed.put(s, distributed.replicated(self.mesh)) for s in sums)
        stacked = {k: jnp.stack([jnp.asarray(s[k]) for s in sums]) for k in sums[0]}
        return distributed.put(stacked, distributed.config_sharded(self.mesh))


def build(configs: Sequence[ml_collections.ConfigDict], names: Sequence[str],
          strategy: str = "sequential", mesh: Mesh | None = None) -> Group:
    """A group training `configs` (same architecture) on data with classes/labels `names`."""
    configs = list(configs)
    _check_shared_architecture(configs)
    strategy = resolve_strategy(strategy)
    base = configs[0]
    task = tasks.get(base)
    objective = make_objective(task.objective_kind, names)
    # One model and one optimizer object: jit caches on them (they are static in TrainState).
    model = tasks.build_model(base, num_classes=len(names))
    tx = optim.make_optimizer(base.train)
    states = [member_state(model, tx, c, task.input_shape(base)) for c in configs]
    skip = base.train.nan_policy == "skip"
    if strategy == "sequential":
        mesh = mesh or distributed.make_mesh()
        compiled = steps.compile_steps(objective, mesh, skip)

        def train(states, batch):
            outputs = [compiled.train(s, batch) for s in states]
            return tuple(o[0] for o in outputs), tuple(o[1] for o in outputs)

        def evaluate(states, batch):
            return tuple(compiled.eval(s, batch) for s in states)

        group = Group(objective, mesh, strategy, len(configs), (), train, evaluate)
    else:
        mesh = mesh or distributed.make_grid_mesh(len(configs))
        compiled = steps.compile_vmapped_steps(objective, mesh, skip)
        group = Group(objective, mesh, strategy, len(configs), (), compiled.train, compiled.eval)
    return dataclasses.replace(group, states=group.join_states(states))
