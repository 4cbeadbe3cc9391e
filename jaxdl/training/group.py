"""The one assembler: configurations → task, objective, model, fresh states, compiled steps, mesh.

Every mode builds its model here, as a group of members that share an architecture and are fed the
same batches: `train`, `evaluate`, `lr_finder`, `analyze`, `bench` and `import_torch` a group of
one; `grid_search` and `compare` one group per architecture. The group's `train`/`eval` take and
return the states and running metric sums of *all* members (zeros from `zero_sums`), so the epoch
loop (`loop.train_epoch`, `loop.evaluate`) drives one member or many through the same code.

Strategies (`grid.strategy`):
- `sequential`: one compiled single-member step, called for each member on each shared batch.
  The fast path on XLA:CPU, where vmapped per-member convolutions become slow grouped convs. Its
  validation runs the predict step (sums and probabilities), so `train` scores its best checkpoint
  on the test split with the program it validated with: nothing is initialised or compiled twice.
- `vmap`: members stacked on a leading axis and `jax.vmap`ped in one program, sharded over the
  `config` axis of a `("config", "data")` mesh. The accelerator path.
Learning rate and weight decay are injected hyper-parameters of the optimizer state: each member's
state is initialised by its own config's optimizer, so its values enter once, there, and members of
different lr / weight decay / seed share the compiled program.
"""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn
from jax.sharding import Mesh

from jaxdl import tasks
from jaxdl.errors import ConfigError
from jaxdl.tasks.spec import Task
from jaxdl.training import optim, steps
from jaxdl.training.objectives import Objective, make_objective
from jaxdl.training.state import TrainState, create_train_state
from jaxdl.utils import distributed

STRATEGIES = ("sequential", "vmap")
GIB = 2**30


def resolve_strategy(strategy: str) -> str:
    """`auto`: sequential on CPU (docs/xla-cpu-traps.md), vmap on GPU/TPU."""
    if strategy == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "vmap"
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"grid.strategy={strategy!r} is invalid: expected one of {['auto', *STRATEGIES]}"
        )
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
            raise ConfigError(
                "members of one group must differ only in train.lr, train.weight_decay and seed"
            )


@dataclasses.dataclass(frozen=True)
class Group:
    task: Task
    objective: Objective
    model: nn.Module
    mesh: Mesh
    strategy: str
    size: int
    steps: steps.CompiledSteps  # one member's steps (sequential) or the vmapped ones
    states: Any  # tuple of TrainStates (sequential) or one stacked TrainState (vmap)

    def train(self, states, sums: dict, batch: dict) -> tuple[Any, dict]:
        """One step of every member on `batch`, its sums added to each running total of `sums`
        ({name: the group's sums}, from `zero_sums`, donated): (states, sums)."""
        if self.strategy == "vmap":
            return self.steps.train(states, sums, batch)
        outputs = [
            self.steps.train(state, {name: total[i] for name, total in sums.items()}, batch)
            for i, state in enumerate(states)
        ]
        return (
            tuple(o[0] for o in outputs),
            {name: tuple(o[1][name] for o in outputs) for name in sums},
        )

    def eval(self, states, sums, batch: dict) -> Any:
        """The group's eval sums `sums` (from `zero_sums(train=False)`, donated) plus every
        member's of `batch`."""
        if self.strategy == "vmap":
            return self.steps.eval(states, sums, batch)
        return tuple(
            self.steps.predict(state, total, batch)[0]
            for state, total in zip(states, sums, strict=True)
        )

    def zero_sums(self, train: bool = True, keys: Sequence[str] | None = None) -> Any:
        """Zeros on the devices, in the group's layout, where running sums start: a train step's
        (`train`), an eval step's, or only `keys` of them (`steps.zero_sums`)."""
        zeros = steps.zero_sums(self.objective, train, keys)
        if self.strategy == "sequential":
            sharding = distributed.replicated(self.mesh)
            return tuple(distributed.put(zeros, sharding) for _ in range(self.size))
        stacked = {k: np.zeros((self.size, *v.shape), v.dtype) for k, v in zeros.items()}
        return distributed.put(stacked, distributed.config_sharded(self.mesh))

    @property
    def state(self) -> TrainState:
        """The fresh state of a group of one (the modes that build a single model)."""
        if self.size != 1:
            raise ValueError(f"a group of {self.size} members has no single state")
        return self.member_states(self.states)[0]

    def member_states(self, states) -> list[TrainState]:
        if self.strategy == "sequential":
            return list(states)
        members = [jax.tree.map(lambda x, i=i: x[i], states) for i in range(self.size)]
        if jax.process_count() == 1:
            return members
        # With members laid across hosts a member's slice sits on its own hosts only, and Orbax's
        # multi-process save needs every process to hold the state it saves.
        return [distributed.put(m, distributed.replicated(self.mesh)) for m in members]

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

    def train_step_bytes(self, sums: dict, batch: dict) -> int | None:
        """Bytes one device needs to run the vmapped train step on this group's states, `sums`
        and `batch` (as the loop passes them), by XLA's analysis of the compiled program:
        arguments and outputs, less the outputs written in place of donated arguments, plus
        temporaries. None where the backend gives no analysis.

        The program compiled here is the one the run then calls: jax keeps it (same function,
        same argument shapes and shardings), so the check costs no second compilation.
        """
        if self.strategy != "vmap":
            raise ValueError("only a vmapped group's step is measured")
        stats = self.steps.train.lower(self.states, sums, batch).compile().memory_analysis()
        if stats is None:
            return None
        return (
            stats.argument_size_in_bytes
            + stats.output_size_in_bytes
            - stats.alias_size_in_bytes
            + stats.temp_size_in_bytes
        )

    def with_members(
        self, configs: Sequence[ml_collections.ConfigDict], steps_per_epoch: int = 1
    ) -> "Group":
        """Fresh states of `configs`, as many members of this group's architecture as it has, on
        its mesh and compiled steps (the next chunk of a grid group trained in chunks): nothing is
        compiled again, since the states hold this group's model and optimizer objects."""
        configs = list(configs)
        if len(configs) != self.size:
            raise ValueError(f"{len(configs)} members for a group of {self.size}")
        _check_shared_architecture(configs)
        tx = (self.states[0] if self.strategy == "sequential" else self.states).tx
        input_shape = self.task.input_shape(configs[0])
        states = _member_states(self.model, input_shape, configs, steps_per_epoch, tx)
        return dataclasses.replace(self, states=self.join_states(states))


def memory_budget(limit_gb: float) -> tuple[int, str] | None:
    """(bytes, where the figure comes from) that a vmapped group's step may use on each device:
    `grid.memory_limit_gb` if set; else the allocator's limit of the local devices (GPU, TPU);
    else, on CPU, the host's physical memory shared by its devices. None: nothing to go by."""
    if limit_gb:
        return round(limit_gb * GIB), "grid.memory_limit_gb"
    devices = jax.local_devices()
    limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
    if all(limits):
        return min(limits), f"what jax may allocate on each {devices[0].device_kind}"
    if jax.default_backend() == "cpu":
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return host // len(devices), f"the host's memory, shared by {len(devices)} CPU device(s)"
    return None


def _member_states(
    model: nn.Module,
    input_shape: tuple[int, ...],
    configs: Sequence[ml_collections.ConfigDict],
    steps_per_epoch: int,
    tx: optax.GradientTransformation | None = None,
) -> list[TrainState]:
    """A fresh state per member from its seed, its optimizer state initialised by its own config's
    optimizer (its lr and weight decay). Every state then holds one optimizer object, `tx` or the
    first member's: it is static in TrainState, so jit caches on it, and the update reads the
    injected lr and weight decay from the state, not from the object."""
    optimizers = [optim.make_optimizer(c.train, steps_per_epoch) for c in configs]
    shared = optimizers[0] if tx is None else tx
    return [
        create_train_state(model, own, c.seed, input_shape, tasks.get(c).step_inputs(c)).replace(
            tx=shared
        )
        for c, own in zip(configs, optimizers, strict=True)
    ]


def build(
    configs: Sequence[ml_collections.ConfigDict],
    names: Sequence[str],
    strategy: str = "sequential",
    mesh: Mesh | None = None,
    steps_per_epoch: int = 1,
) -> Group:
    """A group training `configs` (same architecture) on data with classes/labels `names`.

    `steps_per_epoch` places the lr schedule's epochs (`optim.make_optimizer`); modes that never
    step the optimizer by the schedule may leave it at 1.
    """
    configs = list(configs)
    _check_shared_architecture(configs)
    strategy = resolve_strategy(strategy)
    base = configs[0]
    task = tasks.get(base)
    objective = make_objective(task.objective_kind, names)
    model = task.build_model(base, len(names))  # one object: jit caches on it (static in the state)
    states = _member_states(model, task.input_shape(base), configs, steps_per_epoch)
    skip = base.train.nan_policy == "skip"
    if strategy == "sequential":
        mesh = mesh or distributed.make_mesh()
        compiled = steps.compile_steps(objective, mesh, skip)
    else:
        mesh = mesh or distributed.make_grid_mesh(len(configs))
        compiled = steps.compile_vmapped_steps(objective, mesh, skip)
    group = Group(task, objective, model, mesh, strategy, len(configs), compiled, ())
    return dataclasses.replace(group, states=group.join_states(states))
