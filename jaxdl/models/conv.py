"""2-D convolution whose one-channel forward pass is shifted multiply-adds on XLA:CPU.

ESC-50's first conv reads one channel (the log-mel). XLA:CPU runs such a convolution as a thin
GEMM, one row per kernel offset (25 for a 5×5 kernel): slower than kh·kw shifted multiply-adds,
one elementwise pass that XLA fuses with what follows (`one_channel_conv`).
`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (what
`nn.Conv(conv_general_dilated=…)` calls) that takes that path for a stride-1, one-group, float32
conv of one input channel on CPU, and is `lax.conv_general_dilated` unchanged for every other
conv and on accelerators.

Every other CPU rewrite measured was dropped once the steps ran XLA's Eigen convolutions
(`utils/xla_options.py`): GEMM kernel gradients, 1×1 convs as one product, im2col kernel
gradients of RGB stems (`benchmarks/README.md`).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    """`lax.conv_general_dilated`, with `one_channel_conv` where it applies (module doc)."""
    plain = functools.partial(
        lax.conv_general_dilated,
        window_strides=window_strides,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    applies = (
        lhs.ndim == 4
        and lhs.shape[-1] == 1
        and lhs.dtype == rhs.dtype == jnp.float32
        and all(s == 1 for s in window_strides)
        and all(d == 1 for d in (lhs_dilation or ()))
        and all(d == 1 for d in (rhs_dilation or ()))
        and feature_group_count == 1
        and batch_group_count == 1
        and precision is None
        and preferred_element_type is None
        and _is_nhwc(dimension_numbers, lhs.shape, rhs.shape)
        and shifted_forward_applies()
    )
    if not applies:
        return plain(lhs, rhs)
    pads = (
        lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
        if isinstance(padding, str)
        else padding
    )
    return one_channel_conv(lhs, rhs, tuple(tuple(int(v) for v in pair) for pair in pads))


def shifted_forward_applies() -> bool:
    """True on CPU; accelerators' own convolutions handle one channel well."""
    return jax.default_backend() == "cpu"


def _is_nhwc(dimension_numbers, lhs_shape, rhs_shape) -> bool:
    wanted = lax.conv_dimension_numbers(lhs_shape, rhs_shape, NHWC)
    given = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    return given == wanted


def _xla_conv(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=NHWC)


def _shifted_conv(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
    """Stride-1 conv of a one-channel x (N, H, W, 1) as kh·kw shifted multiply-adds."""
    kh, kw = kernel.shape[:2]
    x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_h, out_w = x_pad.shape[1] - kh + 1, x_pad.shape[2] - kw + 1
    terms = (
        x_pad[:, i : i + out_h, j : j + out_w, :] * kernel[i, j, 0]
        for i in range(kh)
        for j in range(kw)
    )
    return functools.reduce(jnp.add, terms)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def one_channel_conv(
    x: jax.Array, kernel: jax.Array, pads: tuple[tuple[int, int], ...]
) -> jax.Array:
    """Stride-1 conv of a one-channel input (the ESC-50 log-mel), x (N, H, W, 1), explicit `pads`.

    The forward pass is kh·kw shifted multiply-adds: 1.6× faster than XLA:CPU's convolution on
    ESC-50's conv0 with its ReLU (batch 64: 87 against 142 ms), and the ESC-50 eval step 1.10×
    faster. The gradients are XLA's own (a rewrite of the kernel gradient gained 1 % in the
    train step).
    """
    return _shifted_conv(x, kernel, pads)


def _one_channel_forward(x, kernel, pads):
    return _shifted_conv(x, kernel, pads), (x, kernel)


def _one_channel_backward(pads, residuals, dy):
    x, kernel = residuals
    _, vjp = jax.vjp(lambda x, kernel: _xla_conv(x, kernel, pads), x, kernel)
    return vjp(dy)


one_channel_conv.defvjp(_one_channel_forward, _one_channel_backward)
