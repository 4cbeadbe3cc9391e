"""Test set-up done once: simulated CPU devices and the absl/grain quirks (jax-notes §D)."""

import os

# Four simulated CPU devices, so data-parallel code paths run on this machine. Must precede jax.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
from absl import flags  # noqa: E402

# Every skip must be listed in tests/allowed_skips.txt, or the run fails naming it.
from tests.skip_policy import (  # noqa: E402, F401
    pytest_collectreport,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# Partitionable threefry costs 2–3 s of compilation per new random shape on CPU; the tests need
# reproducible numbers within a process, not the partitioned stream.
jax.config.update("jax_threefry_partitionable", False)

# grain's multiprocessing prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()
