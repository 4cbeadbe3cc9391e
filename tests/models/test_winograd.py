"""Winograd F(4×4, 3×3) for evaluation on CPU: the convolution's values to float64 direct
convolution's, where it is used (wide 3×3 layers of forward-only models) and where it is not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import layers, winograd
from jaxdl.models.celeba_net import CelebaCNN
from jaxdl.models.cub200_net import Cub200GroupedCNN


def direct_conv_float64(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-padded stride-1 cross-correlation in float64: nine shifted products."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    _, height, width, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(
        padded[:, i : i + height, j : j + width] @ kernel[i, j] for i in range(3) for j in range(3)
    )


@pytest.mark.parametrize(
    "shape",
    [(2, 8, 8, 16, 24), (2, 7, 10, 8, 12), (1, 13, 5, 4, 6), (3, 4, 4, 3, 5)],
    ids=["whole tiles", "ragged tiles", "tall", "one tile"],
)
def test_conv3x3_equals_float64_direct_convolution(shape):
    # Sizes that are not multiples of 4 make the last tiles read padding and be cropped; a
    # misplaced tile or padding row is off by O(1), not by rounding.
    batch, height, width, c_in, c_out = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, height, width, c_in)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32)
    expected = direct_conv_float64(x, kernel)
    got = np.asarray(jax.jit(winograd.conv3x3)(x, kernel))
    assert got.shape == expected.shape
    # Measured 2-3e-6 of the largest output; XLA's direct float32 convolution is near 2e-7.
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize(
    "x_shape, kernel_shape, dtype, expected",
    [
        ((8, 56, 56, 256), (3, 3, 256, 256), jnp.float32, True),
        ((8, 112, 112, 64), (3, 3, 64, 128), jnp.float32, True),  # 42.7 per value: gained 1.11×
        ((8, 224, 224, 64), (3, 3, 64, 64), jnp.float32, False),  # 32: no gain
        ((8, 56, 56, 256), (5, 5, 256, 256), jnp.float32, False),
        ((8, 56, 56, 256), (3, 3, 256, 256), jnp.bfloat16, False),
        ((8, 3, 56, 256), (3, 3, 256, 256), jnp.float32, False),  # not one whole tile high
    ],
)
def test_applies_to_wide_float32_3x3_layers_only(x_shape, kernel_shape, dtype, expected):
    assert winograd.applies(x_shape, kernel_shape, dtype) is expected


def _lowered(function, *args, platform: str = "cpu") -> str:
    """The program `function` runs when lowered for `platform`."""
    return jax.export.export(jax.jit(function), platforms=[platform])(*args).mlir_module()


def _convolutions(function, *args) -> int:
    return _lowered(function, *args).count("stablehlo.convolution")


def test_forward_only_conv_runs_winograd_on_cpu_and_keeps_its_values():
    x = np.random.default_rng(1).standard_normal((2, 12, 12, 64)).astype(np.float32)
    trained = layers.Conv(128, 3)
    evaluated = layers.Conv(128, 3, forward_only=True)
    variables = trained.init(jax.random.key(0), x)

    assert _convolutions(lambda v, x: trained.apply(v, x), variables, x) == 1
    assert _convolutions(lambda v, x: evaluated.apply(v, x), variables, x) == 0
    got = np.asarray(jax.jit(evaluated.apply)(variables, x))
    expected = direct_conv_float64(x, variables["params"]["kernel"]) + variables["params"]["bias"]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_forward_only_conv_is_xlas_convolution_when_lowered_for_an_accelerator(platform):
    x = np.zeros((2, 12, 12, 64), np.float32)
    evaluated = layers.Conv(128, 3, forward_only=True)
    variables = evaluated.init(jax.random.key(0), x)
    program = _lowered(lambda v, x: evaluated.apply(v, x), variables, x, platform=platform)
    assert program.count("stablehlo.convolution") == 1
    assert "stablehlo.dot_general" not in program


def test_forward_only_grouped_and_narrow_convs_stay_on_xla():
    x = np.random.default_rng(2).standard_normal((2, 12, 12, 64)).astype(np.float32)
    grouped = layers.Conv(128, 3, groups=4, forward_only=True)  # sliced: one conv per group
    narrow = layers.Conv(64, 3, forward_only=True)  # 64 -> 64: Winograd does not pay
    for module, convolutions in ((grouped, 4), (narrow, 1)):
        variables = module.init(jax.random.key(0), x)
        assert _convolutions(lambda v, x, m=module: m.apply(v, x), variables, x) == convolutions


@pytest.mark.parametrize(
    "model",
    [CelebaCNN(num_classes=5), Cub200GroupedCNN(num_classes=7, num_blocks=1)],
    ids=["celeba", "cub200"],
)
def test_models_built_for_evaluation_run_their_wide_layers_by_winograd(model):
    # Their eval-mode logits equal PyTorch's with these layers on Winograd:
    # tests/modes/test_import_torch.py (32×32 inputs, every reference architecture).
    x = np.random.default_rng(3).standard_normal((2, 32, 32, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)

    def evaluate(variables, x):
        return model.apply(variables, x, train=False)

    def train(variables, x):
        return model.apply(variables, x, train=True, mutable=["batch_stats"])

    assert _convolutions(evaluate, variables, x) < _convolutions(train, variables, x)
