"""Shared layers: the 2×2 max-pool's hand-written gradient is autodiff's, ties included; grouped
convs are dense convs on slices on CPU and one native grouped conv on accelerators, equal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import layers


def _autodiff_pool(x):
    b, h, w, c = x.shape
    return x[:, : h - h % 2, : w - w % 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (2, 6, 8, 4)])  # odd sizes crop a row/column
def test_max_pool_gradient_equals_autodiff_with_ties_split(shape):
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, shape), jnp.float32)  # many ties
    dy = jnp.asarray(
        np.random.default_rng(1).standard_normal(
            (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
        ),
        jnp.float32,
    )
    got = jax.vjp(layers.max_pool_2x2, x)[1](dy)[0]
    expected = jax.vjp(_autodiff_pool, x)[1](dy)[0]
    np.testing.assert_array_equal(layers.max_pool_2x2(x), _autodiff_pool(x))
    np.testing.assert_array_equal(got, expected)
    window_sums = (
        got[:, : shape[1] // 2 * 2, : shape[2] // 2 * 2]
        .reshape(shape[0], shape[1] // 2, 2, shape[2] // 2, 2, shape[3])
        .sum(axis=(2, 4))
    )
    np.testing.assert_allclose(window_sums, dy, rtol=1e-6)  # each window passes on exactly dy


def test_max_pool_gradient_equals_torch_without_ties():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 6, 8, 4)).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal((2, 3, 4, 4)).astype(np.float32)
    got = jax.vjp(layers.max_pool_2x2, jnp.asarray(x))[1](jnp.asarray(dy))[0]
    expected = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    torch.nn.functional.max_pool2d(expected, 2).backward(torch.tensor(dy).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(got, expected.grad.permute(0, 2, 3, 1).numpy())


def test_batch_norm_training_step_equals_torch():
    """Output, input and parameter gradients and running statistics after one training step
    equal torch's BatchNorm2d (momentum 0.1, unbiased running variance), from running
    statistics and a scale away from their initial values."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 3.0, (3, 4, 5, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    stats = {"mean": rng.normal(0, 1, 6), "var": rng.uniform(0.5, 2, 6)}
    params = {"scale": rng.uniform(-1.5, 1.5, 6), "bias": rng.normal(0, 1, 6)}
    variables = jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float32), {"params": params, "batch_stats": stats}
    )

    def loss(params, x):
        y, updates = layers.batch_norm(True).apply(
            {**variables, "params": params}, x, mutable=["batch_stats"]
        )
        return jnp.sum(y * dy), (y, updates["batch_stats"])

    (_, (y, new_stats)), (dparams, dx) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    )(variables["params"], jnp.asarray(x))
    bn = torch.nn.BatchNorm2d(6).train()
    with torch.no_grad():
        for name, value in (("running_mean", stats["mean"]), ("running_var", stats["var"])):
            getattr(bn, name).copy_(torch.tensor(value))
        bn.weight.copy_(torch.tensor(params["scale"]))
        bn.bias.copy_(torch.tensor(params["bias"]))
    tx = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    ty = bn(tx)
    ty.backward(torch.tensor(dy).permute(0, 3, 1, 2))
    nhwc = lambda t: t.detach().permute(0, 2, 3, 1).numpy()  # noqa: E731
    for got, expected in (
        (y, nhwc(ty)),
        (dx, nhwc(tx.grad)),
        (dparams["scale"], bn.weight.grad.numpy()),
        (dparams["bias"], bn.bias.grad.numpy()),
        (new_stats["mean"], bn.running_mean.numpy()),
        (new_stats["var"], bn.running_var.numpy()),
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_forms_agree_in_output_and_gradients(groups):
    """The CPU form (dense convs on slices) and the accelerator form (one feature_group_count
    conv), both run here on CPU: same outputs, input and kernel gradients."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 5, 8), np.float32)  # 8 -> 16: group widths differ
    kernel = rng.standard_normal((3, 3, 8 // groups, 16), np.float32)
    cotangent = rng.standard_normal((2, 7, 5, 16), np.float32)
    results = []
    forms = (layers.grouped_conv_native, layers.grouped_conv_sliced)
    for form in forms:

        def loss(x, kernel, form=form):
            return (form(x, kernel, groups) * cotangent).sum()

        results.append((form(x, kernel, groups), *jax.grad(loss, argnums=(0, 1))(x, kernel)))
    for form, result in zip(forms[1:], results[1:], strict=True):
        for got, native in zip(result, results[0], strict=True):
            np.testing.assert_allclose(got, native, rtol=1e-5, atol=1e-4, err_msg=form.__name__)


def _lowered(function, platform: str) -> str:
    x = jax.ShapeDtypeStruct((2, 6, 6, 8), jnp.float32)
    kernel = jax.ShapeDtypeStruct((3, 3, 2, 16), jnp.float32)
    return jax.export.export(jax.jit(function), platforms=[platform])(x, kernel).mlir_module()


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_grouped_conv_is_one_native_conv_when_lowered_for_an_accelerator(platform):
    def train_like(x, kernel):  # forward and both gradients, as a training step has them
        return jax.grad(lambda x, k: layers.grouped_conv(x, k, 4).sum(), argnums=(0, 1))(x, kernel)

    forward = _lowered(lambda x, k: layers.grouped_conv(x, k, 4), platform)
    assert forward.count("stablehlo.convolution") == 1
    assert "feature_group_count = 4" in forward
    backward = _lowered(train_like, platform)
    assert backward.count("stablehlo.convolution") == 2  # input and kernel gradients
    assert "stablehlo.concatenate" not in backward


def test_grouped_conv_is_sliced_into_dense_convs_on_cpu():
    lowered = _lowered(lambda x, k: layers.grouped_conv(x, k, 4), "cpu")
    assert lowered.count("stablehlo.convolution") == 4
    assert "feature_group_count = 4" not in lowered
