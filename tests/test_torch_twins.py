"""The reference PyTorch architectures (`jaxdl.interop.torch_models`), written independently of
jaxdl's Flax models, have the parameter counts and feature-map sizes the reports give, the Flax
models have the same counts and logits, and the benchmark twins are those architectures."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import tasks
from jaxdl.training.state import count_params as count_jax_params
from tests.helpers import REPO, load_config

torch = pytest.importorskip("torch")
from jaxdl.interop import torch_checkpoint  # noqa: E402
from jaxdl.interop import torch_models as reference  # noqa: E402
from tests.torch_reference import with_random_batch_norms  # noqa: E402

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
    model = reference.TORCH_MODELS[config.model.name](
        num_classes=tasks.by_name(task).num_classes, **overrides
    )
    return twins.count_params(model)


def jax_param_count(task: str, overrides: dict) -> int:
    config = _config(task, overrides)
    model = tasks.build_model(config, tasks.by_name(task).num_classes)
    x = jnp.zeros((1, *tasks.by_name(task).input_shape(config)), jnp.float32)
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
        assert spec.num_classes == tasks.by_name(task).num_classes
    assert twins.twin_spec("tiny_imagenet").batch_size == 32
    assert twins.twin_spec("cub200").batch_size == 32
    assert twins.twin_spec("celeba").batch_size == 64
    assert twins.twin_spec("celeba").multilabel
    assert not twins.twin_spec("cub200").multilabel


def test_default_hparams_are_final_configs():
    for task in twins.TWINS:
        assert twins.count_params(twins.build_torch_model(task)) == jax_param_count(task, {})


def _output_shapes(model, input_shape: tuple[int, ...], names: list[str]) -> dict[str, tuple]:
    """(C, H, W) after each named submodule, from one forward on the `meta` device (no compute)."""
    shapes = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        model.to("meta")(torch.empty(1, *input_shape, device="meta"))
    return shapes


def test_esc50_twin_pads_and_pools_as_the_report():
    """Conv2d(1 → 32, 5×5, padding=2) ... MaxPool2d(2) on blocks 1–2 of a (1, 64, 501) log-mel."""
    assert reference.ESC50CNN2D(kernel_size=5).block1[0].padding == (2, 2)
    assert reference.ESC50CNN2D(kernel_size=3).block1[0].padding == (1, 1)
    shapes = _output_shapes(reference.ESC50CNN2D(), (1, 64, 501), ["block1", "block2", "block3"])
    assert shapes == {"block1": (32, 32, 250), "block2": (64, 16, 125), "block3": (128, 16, 125)}


@pytest.mark.parametrize(("num_modules", "side"), [(4, 32), (6, 16)])
def test_tiny_imagenet_twin_pools_after_modules_2_and_4(num_modules, side):
    """M = 4: 64×64 → 32×32 after module 2; M = 6: → 16×16 after module 4 too."""
    model = reference.InceptionTinyNet(num_modules=num_modules)
    assert _output_shapes(model, (3, 64, 64), ["features"]) == {"features": (192, side, side)}


def test_tiny_imagenet_twin_refuses_depths_the_reference_does_not_build():
    with pytest.raises(ValueError, match=r"num_modules=5"):
        reference.InceptionTinyNet(num_modules=5)
    with pytest.raises(ValueError, match=r"summing to 192"):
        reference.InceptionTinyNet(branch_channels=(64, 64, 32))


def test_cub200_and_celeba_twin_feature_maps():
    """CUB-200: pools after stages 1 and 2 only (224 → 56); CelebA: 64 → 32 → 16 → GAP."""
    cub = reference.Cub200GroupedCNN(num_blocks=2, groups=2)
    last_relu = str(len(cub) - 4)  # [..., ReLU, AdaptiveAvgPool2d, Flatten, Linear]
    assert _output_shapes(cub, (3, 224, 224), [last_relu]) == {last_relu: (256, 56, 56)}
    celeba = _output_shapes(reference.CNNMultiLabel(), (3, 64, 64), ["block1", "block2", "block3"])
    assert celeba == {"block1": (64, 32, 32), "block2": (128, 16, 16), "block3": (256, 1, 1)}


def test_esc50_logits_equal_jaxdl_at_the_reference_input_size():
    """At 64 × 501 (odd time axis: torch's pools drop the last frame) the twin, weights and BN
    statistics random, gives jaxdl's eval-mode logits once its tensors are mapped onto Flax."""
    torch.manual_seed(0)
    twin = with_random_batch_norms(reference.ESC50CNN2D())
    config = load_config("esc50")
    model = tasks.build_model(config, 50)
    x = np.random.default_rng(0).standard_normal((2, 64, 501, 1)).astype(np.float32)
    tensors = {
        k: v.numpy() for k, v in twin.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    saved = torch_checkpoint.TorchCheckpoint(Path("twin"), tensors, {}, None, {}, None)
    variables = torch_checkpoint.flax_variables(
        model, jax.eval_shape(model.init, jax.random.key(0), x), saved
    )
    with torch.no_grad():
        expected = twin(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    logits = np.asarray(jax.jit(model.apply)(variables, x))
    assert np.abs(expected).max() > 0.1
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
