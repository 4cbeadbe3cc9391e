"""Assembles what every mode needs from a config: model, objective, fresh state, compiled steps."""

import dataclasses
from collections.abc import Sequence

import ml_collections
from flax import linen as nn
from jax.sharding import Mesh

from jaxdl import tasks
from jaxdl.tasks.spec import Task
from jaxdl.training import optim, steps
from jaxdl.training.objectives import Objective, make_objective
from jaxdl.training.state import TrainState, create_train_state
from jaxdl.utils import distributed


@dataclasses.dataclass(frozen=True)
class Components:
    task: Task
    objective: Objective
    model: nn.Module
    state: TrainState  # freshly initialised, replicated over the mesh
    steps: steps.CompiledSteps
    mesh: Mesh


def build(config: ml_collections.ConfigDict, names: Sequence[str], mesh: Mesh | None = None,
          seed: int | None = None) -> Components:
    """Everything for `config` with `names` (class or label names from the data)."""
    mesh = mesh or distributed.make_mesh()
    task = tasks.get(config)
    objective = make_objective(task.objective_kind, names)
    model = tasks.build_model(config, num_classes=len(names))
    state = create_train_state(model, optim.make_optimizer(config.train),
                               config.seed if seed is None else seed, task.input_shape(config))
    state = distributed.put(state, distributed.replicated(mesh))
    return Components(task, objective, model, state, steps.compile_steps(objective, mesh), mesh)
