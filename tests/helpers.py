"""Shared test helpers: task configs with a test-local cache, small models, random batches."""

import atexit
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn

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
