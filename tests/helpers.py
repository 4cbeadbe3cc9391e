"""Shared test helpers: task configs with a test-local cache, small models, random batches."""

import atexit
import contextlib
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn
from jax.experimental.compilation_cache import compilation_cache

from jaxdl import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(task: str, preset: str | None = None) -> ml_collections.ConfigDict:
    """`configs/<task>.py:get_config(preset)`, loaded from the file as config_flags does."""
    return config_lib.load_task_config(task, preset)


# One data cache for the whole session: the tiny synthetic ESC-50 (WAVs and log-mel features) is
# generated once instead of once per test module. Caches are keyed by content and settings, and
# tests that break files do so in copies of their own.
SESSION_CACHE = pathlib.Path(tempfile.mkdtemp(prefix="jaxdl-test-cache-"))
atexit.register(shutil.rmtree, SESSION_CACHE, ignore_errors=True)


def tiny_esc50_config(tmp_path: pathlib.Path, **train) -> ml_collections.ConfigDict:
    """Synthetic ESC-50 with 10 classes of 1 s clips and a narrow model: fast on 2 cores.

    `tmp_path` is kept for the callers' outputs; the data comes from the session cache.
    """
    del tmp_path
    config = load_config("esc50", "synthetic")
    config.data.cache_dir = str(SESSION_CACHE)
    config.data.synthetic.num_classes = 10
    config.data.synthetic.clips_per_class_per_fold = 4
    config.model.channels = (16, 32, 64)
    config.model.kernel_size = 3
    config.train.batch_size = 16
    config.train.epochs = 2
    config.train.lr = 1e-2
    config.train.log_every_steps = 2
    for key, value in train.items():
        config.train[key] = value
    return config


def initial_softmax_loss(model: nn.Module, x: np.ndarray) -> float:
    """Mean cross-entropy of a freshly initialised model on `x` (labels 0..B-1), train-mode BN.

    Init and forward are jitted together: one compile is cheaper on CPU than op-by-op ones.
    """

    @jax.jit
    def loss(x):
        variables = model.init(jax.random.key(0), x[:1])
        logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(len(x))).mean()

    return float(loss(x))


def tensorboard_scalars(log_dir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), …]} of every event file under `log_dir` (sub-directories included),
    read with TensorBoard's own EventAccumulator: `simple_value` scalars and the rank-0 tensors of
    the scalars plugin. Of a step written twice (a resumed run) the later write wins."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    directories = sorted({p.parent for p in pathlib.Path(log_dir).rglob("events.out.tfevents.*")})
    assert directories, f"no TensorBoard event files under {log_dir}"
    latest: dict[str, dict[int, tuple[float, float]]] = {}  # tag -> step -> (wall time, value)
    for directory in directories:
        # No purging: files of one directory are read in name order, which is not write order.
        accumulator = event_accumulator.EventAccumulator(
            str(directory),
            size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
            purge_orphaned_data=False,
        )
        accumulator.Reload()
        tags = accumulator.Tags()
        points = [
            (tag, e.step, e.wall_time, e.value)
            for tag in tags["scalars"]
            for e in accumulator.Scalars(tag)
        ]
        points += [
            (tag, e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto)))
            for tag in tags["tensors"]
            if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
            for e in accumulator.Tensors(tag)
        ]
        for tag, step, wall_time, value in points:
            steps = latest.setdefault(tag, {})
            if step not in steps or wall_time >= steps[step][0]:
                steps[step] = (wall_time, value)
    return {
        tag: [(step, value) for step, (_, value) in sorted(steps.items())]
        for tag, steps in sorted(latest.items())
    }


def tensorboard_hparams(log_dir: pathlib.Path) -> dict[str, dict]:
    """What TensorBoard's HParams tab shows for the run in `log_dir`: {"hparams": {name: value},
    "metrics": {tag: its last value, None if never written}}, read with TensorBoard's reader and
    its hparams plugin's own parsers."""
    from google.protobuf import json_format
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import metadata

    accumulator = event_accumulator.EventAccumulator(str(log_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    scalars = tensorboard_scalars(log_dir)
    return {
        "hparams": {
            name: json_format.MessageToDict(value) for name, value in start.hparams.items()
        },
        "metrics": {
            info.name.tag: scalars[info.name.tag][-1][1] if info.name.tag in scalars else None
            for info in experiment.metric_infos
        },
    }


@contextlib.contextmanager
def counting_compilations():
    """The XLA backend compilations inside the block, one list entry each. The session's persistent
    compilation cache is off meanwhile, so each entry is a real compilation, not a load from it
    (JAX decides whether to use its cache once until `reset_cache`, hence the resets)."""
    names = []
    cache_was_on = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()

    def listener(name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            names.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax.config.update("jax_enable_compilation_cache", cache_was_on)
        compilation_cache.reset_cache()
