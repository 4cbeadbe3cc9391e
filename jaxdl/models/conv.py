"""2-D convolution with a fast kernel gradient for thin inputs on XLA:CPU.

The course models' first convolutions read one channel (the ESC-50 log-mel) or three (RGB).
XLA:CPU computes their kernel gradient as a "large window, tiny output" convolution, 1.4-3×
slower than one matrix product over an im2col of the input, and their forward pass as a GEMM
whose rows are the kernel offsets. `conv_general_dilated` is a drop-in for
`lax.conv_general_dilated` (what `nn.Conv(conv_general_dilated=…)` calls) that, on CPU, for a
stride-1 conv with at most `MAX_IM2COL_ROWS` rows in that im2col (kh·kw·C_in), computes

    dK[i, j, c, o] = Σ_{n,h,w} x_pad[n, h+i, w+j, c] · dy[n, h, w, o]

as (kh·kw·C_in, S) @ (S, C_out) per chunk of images, and, for one float32 channel, the forward
pass as kh·kw shifted multiply-adds (`one_channel_conv`). Every other conv, and every conv on an
accelerator, is `lax.conv_general_dilated` unchanged: with the steps' compile options
(`utils/xla_options.py`) XLA:CPU's own Eigen convolution and its gradients were faster than any
rewrite measured for wider inputs (`benchmarks/README.md`).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

# Values of the stacked im2col per chunk: about this many float32 values (≈ 6 MB).
CHUNK_VALUES = 1_500_000
# Most rows (kh·kw·C_in) of the im2col product: 5×5 on one channel and 3×3 on three ran 1.4-3×
# faster than XLA's kernel gradient; 16 channels (144 rows) ran slower.
MAX_IM2COL_ROWS = 49
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
    """`lax.conv_general_dilated`, with the GEMM kernel gradient where it applies (module doc)."""
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
    simple = (
        all(s == 1 for s in window_strides)
        and all(d == 1 for d in (lhs_dilation or ()))
        and all(d == 1 for d in (rhs_dilation or ()))
        and feature_group_count == 1
        and batch_group_count == 1
        and precision is None
        and preferred_element_type is None
        and lhs.ndim == 4
        and _is_nhwc(dimension_numbers, lhs.shape, rhs.shape)
    )
    if not (simple and fast_kernel_gradient_applies()):
        return plain(lhs, rhs)
    pads = (
        lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
        if isinstance(padding, str)
        else padding
    )
    pads = tuple(tuple(int(v) for v in pair) for pair in pads)
    kh, kw, c_in = rhs.shape[:3]
    if kh * kw * c_in > MAX_IM2COL_ROWS:
        return plain(lhs, rhs)
    if c_in == 1 and lhs.dtype == rhs.dtype == jnp.float32:
        return one_channel_conv(lhs, rhs, pads)
    return thin_conv(lhs, rhs, pads)


def fast_kernel_gradient_applies() -> bool:
    """True on CPU, the only backend whose own kernel gradient is the slow one."""
    return jax.default_backend() == "cpu"


def _is_nhwc(dimension_numbers, lhs_shape, rhs_shape) -> bool:
    wanted = lax.conv_dimension_numbers(lhs_shape, rhs_shape, NHWC)
    given = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    return given == wanted


def _xla_conv(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def thin_conv(x: jax.Array, kernel: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """Stride-1 conv of a thin x (N, H, W, C_in), kernel (kh, kw, C_in, C_out), explicit `pads`:
    XLA's forward pass and input gradient, `kernel_gradient`'s kernel gradient."""
    return _xla_conv(x, kernel, pads)


def _conv_forward(x, kernel, pads):
    return _xla_conv(x, kernel, pads), (x, kernel)


def _conv_backward(pads, residuals, dy):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda inputs: _xla_conv(inputs, kernel, pads), x)
    (dx,) = input_vjp(dy)  # a first layer's: dropped by XLA, as nothing uses it
    return dx, kernel_gradient(x, dy, kernel.shape[:2], pads)


thin_conv.defvjp(_conv_forward, _conv_backward)


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
    """Stride-1 conv of a one-channel input (the ESC-50 log-mel), x (N, H, W, 1).

    Its forward pass is kh·kw shifted multiply-adds, one elementwise pass that XLA fuses with the
    bias add and the BatchNorm statistics after it: XLA:CPU's convolution of one input channel
    is a GEMM with one row per kernel offset, and it ran 1.6-2× slower (ESC-50 conv0 with ReLU,
    batch 64: 87 ms against 142 ms). The gradients are `thin_conv`'s.
    """
    return _shifted_conv(x, kernel, pads)


def _one_channel_forward(x, kernel, pads):
    return _shifted_conv(x, kernel, pads), (x, kernel)


one_channel_conv.defvjp(_one_channel_forward, _conv_backward)


def _images_per_chunk(n: int, most: int) -> int:
    """The largest divisor of the batch n up to `most`, so no chunk computes on padding images
    (a batch of 64 in chunks of 12 wasted 8 images' products); `most` itself, padded, when the
    divisor would halve the chunks."""
    divisor = max(d for d in range(1, most + 1) if n % d == 0)
    return divisor if 2 * divisor > most else most


def _chunks(n: int, per_image: int) -> tuple[int, int, int]:
    """(images per chunk, chunks, zero images added) for n images of `per_image` stacked values.

    Image a·chunks + b goes to chunk b: the loop runs over the minor part of the batch, so a batch
    sharded over devices stays sharded (each device sums its own images, then one all-reduce)
    instead of being gathered."""
    images = _images_per_chunk(n, max(1, min(n, CHUNK_VALUES // per_image)))
    chunks = -(-n // images)
    return images, chunks, chunks * images - n


def kernel_gradient(
    x: jax.Array, dy: jax.Array, kernel_size: Sequence[int], pads: Sequence[Sequence[int]]
) -> jax.Array:
    """dL/dkernel (kh, kw, C_in, C_out) of a stride-1 NHWC conv with few input channels.

    x (N, H, W, C_in) is the conv's input, dy (N, Ho, Wo, C_out) the output's cotangent. Every
    kernel offset of x over the output grid is stacked (an im2col, kh·kw·C_in rows, few since
    C_in is), so each chunk of images is one product, (kh·kw·C_in, S) @ (S, C_out), with dy as
    it is."""
    kh, kw = kernel_size
    (top, bottom), (left, right) = pads
    n, _, _, c_in = x.shape
    _, out_h, out_w, c_out = dy.shape
    positions = out_h * out_w
    images, chunks, extra = _chunks(n, kh * kw * c_in * positions)
    x_pad = jnp.pad(x, ((0, extra), (top, bottom), (left, right), (0, 0)))
    # (C_in, images, chunks, Hp, Wp): a thin input is cheap to put channels first.
    x_pad = x_pad.reshape(images, chunks, *x_pad.shape[1:]).transpose(4, 0, 1, 2, 3)
    dy_flat = jnp.pad(dy, ((0, extra), (0, 0), (0, 0), (0, 0)))
    dy_flat = dy_flat.reshape(images, chunks, positions, c_out)

    def add_chunk(chunk, total):
        images_x = lax.dynamic_index_in_dim(x_pad, chunk, axis=2, keepdims=False)
        offsets = jnp.stack(
            [images_x[:, :, i : i + out_h, j : j + out_w] for i in range(kh) for j in range(kw)]
        )
        images_dy = lax.dynamic_index_in_dim(dy_flat, chunk, axis=1, keepdims=False)
        return total + offsets.reshape(-1, images * positions) @ images_dy.reshape(-1, c_out)

    total = lax.fori_loop(0, chunks, add_chunk, jnp.zeros((kh * kw * c_in, c_out), dy.dtype))
    return total.reshape(kh, kw, c_in, c_out).astype(x.dtype)
