"""Test set-up done once: simulated CPU devices, the skip policy and the absl/grain quirks."""

import atexit
import os
import pathlib
import shutil
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
# One persistent XLA compilation cache for the session, through jaxdl's own setting
# ($JAXDL_COMPILE_CACHE, jaxdl/utils/runtime.py): modes run in this process or in subprocess tests
# use it as a user's run would. The suite compiles the same tiny models again and again, so every
# program is kept, however fast it compiled, and the folder is not bounded (a bound costs a scan
# of all entries per write: thousands here). A fresh folder per session, whatever the caller's
# environment says. Counting tests turn it off (helpers); tests of the cache use their own folders.
_XLA_CACHE = tempfile.mkdtemp(prefix="jaxdl-tests-xla-")
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
os.environ["JAXDL_COMPILE_CACHE"] = _XLA_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")

from absl import flags  # noqa: E402

from jaxdl.utils import runtime  # noqa: E402

# Every skip must be listed in tests/allowed_skips.txt, or the run fails naming it.
from tests.skip_policy import (  # noqa: E402, F401
    pytest_collectreport,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# The same folder for what tests jit themselves, here and (jax's own variable) in subprocesses.
_KEYED = runtime.keyed_folder(pathlib.Path(_XLA_CACHE))
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_KEYED)
runtime.use_compile_cache(_KEYED)

# grain's multiprocessing prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()
