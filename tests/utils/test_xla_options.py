"""The steps' XLA:CPU compile options: convolutions leave YNNPACK (which ran most course convs on
one core) for Eigen; a jaxlib without the option compiles with its defaults."""

import re

import jax
import ml_collections
import numpy as np

from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.training import optim, steps
from jaxdl.training.objectives import make_objective
from jaxdl.training.state import create_train_state
from jaxdl.utils import distributed, xla_options


def _ynn_convolutions(compiled_text: str) -> int:
    """How many YNNPACK fusions of the compiled program run a convolution."""
    bodies = dict(re.findall(r"^%(\S+) \(.*?\n(.*?)^}", compiled_text, re.M | re.S))
    called = re.findall(r'calls=%([\w.\-]+).*"kind":"__ynn_fusion"', compiled_text)
    return sum(" convolution(" in bodies.get(name, "") for name in called)


def _train_step(compile_with_options: bool) -> tuple[str, dict]:
    """A CelebA-model train step's compiled text and sums, compiled as jaxdl compiles its steps
    (`steps.compile_steps`) or with plain `jax.jit`."""
    objective = make_objective("multilabel", [f"a{i}" for i in range(3)])
    train = ml_collections.ConfigDict(dict(optimizer="sgd", lr=0.1, weight_decay=0.0, momentum=0.0))
    state = create_train_state(CelebaCNN(3, 32), optim.make_optimizer(train), 0, (16, 16, 3))
    batch = {
        "x": np.random.default_rng(0).standard_normal((4, 16, 16, 3), np.float32),
        "y": np.ones((4, 3), np.float32),
        "mask": np.ones(4, np.float32),
    }
    sums = {"epoch": steps.zero_sums(objective)}
    if compile_with_options:
        step = steps.compile_steps(objective, distributed.make_mesh(jax.devices()[:1])).train
    else:
        step = jax.jit(lambda s, t, b: steps.train_step(s, t, b, objective))
    text = step.lower(state, sums, batch).compile().as_text()
    return text, jax.device_get(step(state, sums, batch)[1])


def test_cpu_train_step_runs_its_convolutions_outside_ynnpack():
    default_text, default_sums = _train_step(compile_with_options=False)
    text, sums = _train_step(compile_with_options=True)
    # Without the option this jaxlib gives the convolutions to YNNPACK; if it stops doing so, the
    # option has nothing left to do and this test says so.
    assert _ynn_convolutions(default_text) > 0
    assert _ynn_convolutions(text) == 0
    assert " convolution(" in text  # still convolutions: XLA's Eigen ones
    assert "__ynn_fusion" in text  # dots and reductions stay on YNNPACK
    np.testing.assert_allclose(
        sums["epoch"]["loss_sum"], default_sums["epoch"]["loss_sum"], rtol=1e-5
    )


def test_a_jaxlib_without_the_option_compiles_with_its_defaults(monkeypatch):
    monkeypatch.setattr(
        xla_options, "CPU_STEP_OPTIONS", {"xla_cpu_option_no_jaxlib_has": "LIBRARY_FUSION_TYPE_DOT"}
    )
    xla_options._cpu_options_accepted.cache_clear()
    try:
        assert xla_options.step_compiler_options() is None
        assert float(xla_options.jit(lambda x: x * 2)(3.0)) == 6.0
    finally:
        xla_options._cpu_options_accepted.cache_clear()
