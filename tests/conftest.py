"""Test set-up done once: simulated CPU devices, the skip policy and the absl/grain quirks."""

import os
import tempfile

# Four simulated CPU devices, so data-parallel code paths run on this machine. LLVM optimisation
# level 1 compiles XLA:CPU fusions several times faster (the tests are compile-bound: jax's default
# partitionable threefry, which users and these tests run, costs ~0.7 s of compilation per new
# random shape at the default level) and changes only the rounding of fused arithmetic. Must
# precede jax; subprocesses inherit it.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=1"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent XLA compilation cache for the session, shared by the subprocess tests: the suite
# compiles the same tiny models again and again. A fresh folder per session, so nothing from
# another jax version or machine is ever read. Counting tests turn it off (helpers).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jaxdl-tests-xla-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from absl import flags  # noqa: E402

# Every skip must be listed in tests/allowed_skips.txt, or the run fails naming it.
from tests.skip_policy import (  # noqa: E402, F401
    pytest_collectreport,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# grain's multiprocessing prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()
