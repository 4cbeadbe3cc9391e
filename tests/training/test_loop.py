"""The epoch loop: the device prefetch gives every batch once, in order, already split over
`data`; the step adds the metric sums, one compiled program per step."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.training import fit, group, loop
from jaxdl.training.data import training_data
from jaxdl.utils import distributed
from tests.helpers import counting_compilations, tensorboard_scalars, tiny_esc50_config


def test_device_batches_are_the_host_batches_in_order_and_run_ahead():
    mesh = distributed.make_mesh()  # the 4 simulated CPU devices
    pulled = []

    def host_batches():
        for i in range(5):
            pulled.append(i)
            yield {
                "x": np.full((4, 3), i, np.float32),
                "y": np.arange(4, dtype=np.int32) + i,
                "mask": np.ones(4, np.float32),
                "path": [f"clip{i}.wav"] * 4,
            }

    seen = []
    for i, batch in enumerate(loop.device_batches(host_batches(), mesh, ahead=2)):
        # When batch i is handed out, the copies of up to two later batches are already issued.
        assert len(pulled) == min(i + 3, 5)
        assert set(batch) == set(loop.MODEL_KEYS)  # strings stay on the host
        assert batch["x"].sharding == distributed.data_sharded(mesh)
        seen.append((float(batch["x"][0, 0]), np.asarray(batch["y"]).tolist()))
    assert seen == [(float(i), [i, i + 1, i + 2, i + 3]) for i in range(5)]


def test_an_epoch_compiles_its_train_step_alone_and_adds_no_sums_on_the_host(tmp_path):
    """The running sums (the epoch's and the log interval's) are added inside the compiled step:
    a 3-step epoch compiles one program. Adding each step's sums eagerly, as the loop once did
    (about 16 small programs dispatched per step), compiles an add for each kind of sum."""
    config = tiny_esc50_config(tmp_path)
    config.model.channels = (4, 8, 8)
    trainer = group.build([config], [str(i) for i in range(10)])
    shape = tasks.get(config).input_shape(config)
    rng = np.random.default_rng(0)
    batches = [
        {
            "x": rng.standard_normal((8, *shape)).astype(np.float32),
            "y": rng.integers(0, 10, 8).astype(np.int32),
            "mask": np.ones(8, np.float32),
        }
        for _ in range(3)
    ]
    sums = {"epoch": trainer.zero_sums(), "interval": trainer.zero_sums(keys=fit.INTERVAL_KEYS)}
    jax.clear_caches()  # element-wise programs compiled by earlier tests would not count
    with counting_compilations() as compiled:
        _, sums = loop.train_epoch(
            trainer.train, trainer.states, sums, batches, 3, trainer.mesh, ""
        )
        (epoch,) = trainer.member_sums(sums["epoch"])
    assert len(compiled) == 1
    assert epoch["count"] == 24


def test_loss_step_is_the_mean_loss_of_each_log_interval_at_its_last_step(tmp_path):
    """fit logs `train/loss_step` every 3 steps of 2 epochs of 7 (an interval spans the epoch
    boundary) although it reads each interval one interval late: the values are the interval
    means of the steps' own losses, replayed step by step on the same batches."""
    config = tiny_esc50_config(tmp_path, log_every_steps=3)
    config.model.channels = (4, 8, 8)
    data = training_data(config, jax.device_count())
    trainer = group.build([config], data.names, steps_per_epoch=7)
    states = jax.tree.map(jnp.copy, trainer.states)  # fit donates the group's
    fit.fit([fit.Member("run", config, tmp_path / "logs", tmp_path / "ckpt")], data, trainer)
    logged = tensorboard_scalars(tmp_path / "logs")

    losses, counts = [], []  # of each step, from zeros, with fit's compiled step
    for epoch in (1, 2):
        batches = pipeline.train_batches(
            data.train, data.task, config, epoch, data.batch_size, data.augment
        )
        for batch in batches:
            sums = {
                "epoch": trainer.zero_sums(),
                "interval": trainer.zero_sums(keys=fit.INTERVAL_KEYS),
            }
            states, sums = trainer.train(states, sums, loop.to_device(batch, trainer.mesh))
            (own,) = trainer.member_sums(sums["interval"])
            losses.append(own["loss_sum"])
            counts.append(own["count"])
    expected = []
    for end in (3, 6, 9, 12):
        total = np.float32(0)
        for loss in losses[end - 3 : end]:
            total = np.float32(total + loss)  # in the order and precision the device adds
        expected.append((end, float(total) / float(sum(counts[end - 3 : end]))))
    assert [step for step, _ in logged["train/loss_step"]] == [3, 6, 9, 12]
    np.testing.assert_allclose(logged["train/loss_step"], expected, rtol=1e-6)
    assert [step for step, _ in logged["train/lr"]] == [3, 6, 9, 12]
