"""XLA compiler options for jaxdl's jitted steps: on CPU, convolutions go to Eigen, not YNNPACK.

jax 0.10's XLA:CPU hands dots, reductions and convolutions to YNNPACK. YNNPACK ran most of the
course models' convolutions on one core of two (CPU time equal to wall time: the 3×3 layers of
CelebA and Tiny ImageNet, 64-192 channels, at 115-150 GFLOP/s), and their kernel gradients at
23-70 GFLOP/s. XLA's other convolution, Eigen's, runs the same layers on every core: forward
and input gradient at 230-340 GFLOP/s, kernel gradient at 150-260 (`benchmarks/README.md`).
Dots and reductions stay on YNNPACK, whose reductions are the fast ones.

The option is a per-program compile option (it enters JAX's compilation-cache key), set only
where it is known: a jaxlib that no longer has it compiles the steps with its defaults, and
`tests/utils/test_xla_options.py` fails so that the choice is made again.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax

# YNNPACK keeps what it does best here; convolutions, left out of the list, fall back to Eigen.
CPU_STEP_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    )
}


@functools.cache
def _cpu_options_accepted() -> bool:
    """Whether this jaxlib knows `CPU_STEP_OPTIONS` (an unknown option fails the compile)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_STEP_OPTIONS).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return False
    return True


def step_compiler_options() -> dict[str, str] | None:
    """The compile options for a step run on the default backend: `CPU_STEP_OPTIONS` on CPU
    (when this jaxlib has them), none elsewhere."""
    if jax.default_backend() != "cpu" or not _cpu_options_accepted():
        return None
    return dict(CPU_STEP_OPTIONS)


def jit(fun: Callable, **kwargs: Any) -> Callable:
    """`jax.jit(fun, **kwargs)` with `step_compiler_options()`: for every program that runs the
    model (train, eval and predict steps, the first-batch checks)."""
    return jax.jit(fun, compiler_options=step_compiler_options(), **kwargs)
