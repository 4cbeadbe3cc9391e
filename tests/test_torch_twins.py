"""The PyTorch twins in benchmarks/torch_models.py have exactly the JAX models' parameter counts."""

import sys

import jax
import jax.numpy as jnp
import pytest

from jaxdl.models import build_model
from jaxdl.training.state import count_params as count_jax_params
from tests.helpers import REPO, load_config

torch = pytest.importorskip("torch")
sys.path.insert(0, str(REPO / "benchmarks"))
import torch_models  # noqa: E402

# (twin / config task, model overrides, reference parameter count)
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


def jax_param_count(task: str, overrides: dict) -> int:
    config = load_config(task)
    for key, value in overrides.items():
        config.model[key] = value
    spec = torch_models.twin_spec(task)
    channels, height, width = spec.input_shape
    model = build_model(config, spec.num_classes)
    x = jnp.zeros((1, height, width, channels), jnp.float32)
    variables = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    )
    return count_jax_params(variables["params"])


@pytest.mark.parametrize(("task", "overrides", "expected"), CASES)
def test_twin_param_count_matches_jax_and_reference(task, overrides, expected):
    torch_count = torch_models.count_params(torch_models.build_torch_model(task, **overrides))
    assert torch_count == expected
    assert jax_param_count(task, overrides) == expected


def test_twin_metadata():
    assert torch_models.twin_spec("tiny_imagenet").batch_size == 32
    assert torch_models.twin_spec("cub200").batch_size == 32
    assert torch_models.twin_spec("celeba").batch_size == 64
    assert torch_models.twin_spec("celeba").multilabel
    assert not torch_models.twin_spec("cub200").multilabel


def test_default_hparams_are_final_configs():
    for task in ("esc50", "tiny_imagenet", "cub200", "celeba"):
        assert torch_models.count_params(torch_models.build_torch_model(task)) == jax_param_count(
            task, {}
        )
