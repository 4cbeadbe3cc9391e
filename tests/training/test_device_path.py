"""The device path (`data.augment_on=device`) trains: uint8 batches from the host pipeline,
normalised, flipped and cropped inside the jitted step, reach the host path's accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.data.device_augment import FlipCrop
from jaxdl.training import optim, steps
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import create_train_state
from tests.test_adding_a_task import SHAPES, SHAPES_CONFIG


@pytest.fixture
def shapes_config(tmp_path):
    tasks.register(SHAPES)
    path = tmp_path / "shapes.py"
    path.write_text(SHAPES_CONFIG)
    config = config_lib.load_config_file(path, "synthetic")
    config.data.cache_dir = str(tmp_path / "cache")
    config.augment.crop_padding = 2  # no contrast or rotation: flip and crop both move
    config.train.epochs = 3
    return config


def _train_and_test(config) -> tuple[float, np.dtype]:
    """Test accuracy after `train.epochs` epochs on the pipeline's batches, and the batches' x
    dtype; the steps are `steps.training_loss` and `steps.eval_logits`, as train's."""
    task = tasks.get(config)
    train, test = task.load_split(config, "train"), task.load_split(config, "test")
    size = config.train.batch_size
    tx = optim.make_optimizer(config.train, pipeline.num_train_batches(train.source, size))
    model = task.build_model(config, len(train.class_names))
    state = create_train_state(
        model, tx, config.seed, task.input_shape(config), task.step_inputs(config)
    )
    objective = make_objective(task.objective_kind, train.class_names)

    @jax.jit
    def step(state, batch):
        grad = jax.grad(steps.training_loss, has_aux=True)
        grads, (_, _, updates) = grad(state.params, state, batch, objective)
        return state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])

    host_task, host_config = task.host_view(config)
    for epoch in range(1, config.train.epochs + 1):
        for batch in pipeline.train_batches(
            train.source, host_task, host_config, epoch, size, augment=True
        ):
            state = step(state, {k: batch[k] for k in ("x", "y", "mask")})
    right = total = 0
    for batch in pipeline.eval_batches(test.source, host_task, host_config, size):
        predicted = jnp.argmax(jax.jit(steps.eval_logits)(state, batch["x"]), axis=-1)
        right += int(((predicted == batch["y"]) * batch["mask"]).sum())
        total += int(batch["mask"].sum())
    return right / total, batch["x"].dtype


def test_device_path_trains_like_the_host_path(shapes_config):
    shapes_config.data.augment_on = "device"
    assert tasks.get(shapes_config).step_inputs(shapes_config).augment == FlipCrop(0.5, 2)
    device_accuracy, dtype = _train_and_test(shapes_config)
    assert dtype == np.uint8  # a quarter of float32's bytes to the device
    shapes_config.data.augment_on = "host"
    host_accuracy, dtype = _train_and_test(shapes_config)
    assert dtype == np.float32
    # three easy patterns, chance 1/3: both paths learn them (1.0 for seeds 0-2, either path)
    assert device_accuracy > 0.6 and host_accuracy > 0.6
    assert abs(device_accuracy - host_accuracy) < 0.25
