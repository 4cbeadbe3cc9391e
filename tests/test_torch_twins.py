"""The reference PyTorch architectures (`jaxdl.interop.torch_models`) have exactly the JAX models'
parameter counts, the figures the reports give; the benchmark twins are those architectures."""

import sys

import jax
import jax.numpy as jnp
import pytest

from jaxdl.data.tasks import TASKS
from jaxdl.models import build_model
from jaxdl.training.state import count_params as count_jax_params
from tests.helpers import REPO, load_config

torch = pytest.importorskip("torch")
from jaxdl.interop import torch_models as reference  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import torch_models as twins  # noqa: E402

# (task, model overrides, reference parameter count)
CASES = [
    ("esc50", dict(channels=(32, 64, 128), kernel_size=3), 99_570),
    ("esc50", dict(channels=(32, 64, 128), kernel_size=5), 263_922),
    ("esc50", dict(channels=(48, 96, 192), kernel_size=3), 218_450),
    ("esc50", dict(channels=(48, 96, 192), kernel_size=5), 587_858),
    ("tiny_imagenet", dict(num_modules=4, branch_channels=(64, 64, 64)), 492_424),
    ("tiny_imagenet", dict(num_modules=4, branch_channels=(48, 72, 72)), 533_384),
    ("tiny_imagenet", dict(num_modules=6, branch_channels=(64, 64, 64)), 763_528),
    ("tiny_imagenet", dict(num_modules=6, branch_channels=(48, 72, 72)), 829_064),
    ("cub200", dict(num_blocks=2, groups=2), 2_012_488),
    ("cub200", dict(num_blocks=2, groups=4), 1_625_416),
    ("cub200", dict(num_blocks=3, groups=2), 3_176_392),
    ("cub200", dict(num_blocks=3, groups=4), 2_595_784),
    ("celeba", dict(channels_block3=192), 298_757),
    ("celeba", dict(channels_block3=256), 372_997),
]


def _config(task: str, overrides: dict):
    config = load_config(task)
    for key, value in overrides.items():
        config.model[key] = value
    return config


def torch_param_count(task: str, overrides: dict) -> int:
    config = _config(task, overrides)
    model = reference.TORCH_MODELS[config.model.name](num_classes=TASKS[task].num_classes,
                                                      **overrides)
    return twins.count_params(model)


def jax_param_count(task: str, overrides: dict) -> int:
    config = _config(task, overrides)
    model = build_model(config, TASKS[task].num_classes)
    x = jnp.zeros((1, *TASKS[task].input_shape(config)), jnp.float32)
    variables = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    )
    return count_jax_params(variables["params"])


@pytest.mark.parametrize(("task", "overrides", "expected"), CASES)
def test_reference_param_count_matches_jax_and_reports(task, overrides, expected):
    assert torch_param_count(task, overrides) == expected
    assert jax_param_count(task, overrides) == expected


def test_benchmark_twins_are_the_reference_architectures():
    config_names = {task: load_config(task).model.name for task in twins.TWINS}
    for task, spec in twins.TWINS.items():
        assert spec.build is reference.TORCH_MODELS[config_names[task]], task
        assert spec.num_classes == TASKS[task].num_classes
    assert twins.twin_spec("tiny_imagenet").batch_size == 32
    assert twins.twin_spec("cub200").batch_size == 32
    assert twins.twin_spec("celeba").batch_size == 64
    assert twins.twin_spec("celeba").multilabel
    assert not twins.twin_spec("cub200").multilabel


def test_default_hparams_are_final_configs():
    for task in twins.TWINS:
        assert twins.count_params(twins.build_torch_model(task)) == jax_param_count(task, {})
