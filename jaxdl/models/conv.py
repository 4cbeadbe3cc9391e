"""2-D convolution with a fast kernel gradient on XLA:CPU.

XLA:CPU computes the gradient of a convolution with respect to its kernel 3–10× slower than the
forward pass (a "large window, tiny output" convolution: 23 GFLOP/s against 250 for the forward
pass on the ESC-50 model's second 5×5 conv, `benchmarks/README.md`), and that gradient was most of
a CPU training step. `conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (what
`nn.Conv(conv_general_dilated=…)` calls) whose forward pass and input gradient are XLA's own and
whose kernel gradient is a sequence of ordinary matrix products (120–160 GFLOP/s on XLA:CPU
here):

    dK[i, j, c, o] = Σ_{n,h,w} x_pad[n, h+i, w+j, c] · dy[n, h, w, o]

With each padded image flattened row-major (row stride Wp) and dy zero-padded to the same
(Hp, Wp) grid, a kernel offset (i, j) is the shift i·Wp + j of one flat sequence. The kw column
shifts are stacked once, (kw·C_in, S); each kernel row i is then one matrix product of that
stack's slice at i·Wp with dy, (kw·C_in, S') @ (S', C_out), per chunk of images, summed in a
`fori_loop`. Positions that read across a row or image border meet a zero of dy. RGB and
one-channel inputs take an im2col instead, every offset stacked, one product per chunk
(`_thin_kernel_gradient`); inputs between the two (e.g. 16 channels, 3×3) keep XLA's gradient.

The fast path is taken for what the course models use (stride 1, no dilation, one group, any
explicit or SAME padding) on CPU; otherwise, and on accelerators (where cuDNN's kernel gradient
is fast), it is `lax.conv_general_dilated` unchanged. Two forward passes change as well, with
the same gradients: a float32 input with one channel (the ESC-50 log-mel) takes
`one_channel_conv` (shifted multiply-adds), and a 1×1 conv takes `pointwise_conv` (one
`dot_general`).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

# Column-shifted slices per chunk: about this many float32 values (≈ 6 MB); one ESC-50 image per
# chunk ran 10–30 % faster than two.
CHUNK_VALUES = 1_500_000
# Below this many stacked rows (kw·C_in) one product per kernel row is too thin (3×3 on 3
# channels ran at 0.76× of XLA's own gradient): an im2col of every kernel offset is stacked
# instead, one product per chunk (`_thin_kernel_gradient`), up to MAX_IM2COL_ROWS rows (kh·kw·C_in:
# 2–5× XLA's for 5×5 on 1 channel and 3×3 on 3; 8 or 16 channels ran at 0.5–1× of it). In
# between, XLA's own gradient is used.
MIN_STACKED_ROWS = 64
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
    if kw * c_in < MIN_STACKED_ROWS and kh * kw * c_in > MAX_IM2COL_ROWS:
        return plain(lhs, rhs)  # neither product is faster than XLA's own gradient here
    if c_in == 1 and lhs.dtype == rhs.dtype == jnp.float32:
        return one_channel_conv(lhs, rhs, pads)
    if rhs.shape[:2] == (1, 1) and pads == ((0, 0), (0, 0)):
        return pointwise_conv(lhs, rhs)
    return conv_nhwc(lhs, rhs, pads)


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
def conv_nhwc(x: jax.Array, kernel: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """Stride-1 conv, x (N, H, W, C_in), kernel (kh, kw, C_in, C_out), explicit `pads`."""
    return _xla_conv(x, kernel, pads)


def _conv_forward(x, kernel, pads):
    return _xla_conv(x, kernel, pads), (x, kernel)


def _conv_backward(pads, residuals, dy):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda inputs: _xla_conv(inputs, kernel, pads), x)
    (dx,) = input_vjp(dy)  # XLA's transposed conv runs near forward speed; dropped when unused
    return dx, kernel_gradient(x, dy, kernel.shape[:2], pads)


conv_nhwc.defvjp(_conv_forward, _conv_backward)


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
    is a GEMM with one row per kernel offset, and it ran 2× slower (ESC-50 conv0, batch 16:
    72–90 ms against 154–184 ms with bias and ReLU). The gradients are XLA's own.
    """
    return _shifted_conv(x, kernel, pads)


def _one_channel_forward(x, kernel, pads):
    return _shifted_conv(x, kernel, pads), (x, kernel)


one_channel_conv.defvjp(_one_channel_forward, _conv_backward)


def _pointwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.dot_general(x, kernel[0, 0], (((3,), (0,)), ((), ())))


@jax.custom_vjp
def pointwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 1×1 stride-1 conv, x (N, H, W, C_in), kernel (1, 1, C_in, C_out), as matrix products.

    XLA:CPU ran the forward 1×1 convolutions of Tiny ImageNet's modules (192 → 64 channels at
    64×64) 1.6× slower than the same product as a `dot_general`. The gradients are `conv_nhwc`'s:
    autodiff of the product, or its kernel gradient as a position-contracting product, made the
    train step slower (XLA:CPU transposes dy or x first).
    """
    return _pointwise(x, kernel)


def _pointwise_forward(x, kernel):
    return _pointwise(x, kernel), (x, kernel)


pointwise_conv.defvjp(_pointwise_forward, functools.partial(_conv_backward, ((0, 0), (0, 0))))


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
    """dL/dkernel (kh, kw, C_in, C_out) of a stride-1 NHWC conv, as chunked GEMMs (module doc).

    x (N, H, W, C_in) is the conv's input, dy (N, Ho, Wo, C_out) the output's cotangent.
    """
    kh, kw = kernel_size
    if kw * x.shape[-1] < MIN_STACKED_ROWS:
        return _thin_kernel_gradient(x, dy, kernel_size, pads)
    (top, bottom), (left, right) = pads
    n, h, w, c_in = x.shape
    _, out_h, out_w, c_out = dy.shape
    hp, wp = h + top + bottom, w + left + right
    span = hp * wp  # one padded image, flat; dy on the same grid, zero outside (out_h, out_w)
    rows = out_h * wp  # the flat positions where dy can be non-zero
    images, chunks, extra = _chunks(n, kw * c_in * span)
    # x channels first, (C_in, images, chunks, H, W), in one transposing pass; each chunk is
    # padded inside the loop, in the pass that stacks it (padding first cost a pass of its own).
    x_t = jnp.pad(x, ((0, extra), (0, 0), (0, 0), (0, 0)))
    x_t = x_t.reshape(images, chunks, h, w, c_in).transpose(4, 0, 1, 2, 3)
    dy_chunks = jnp.pad(dy, ((0, extra), (0, 0), (0, 0), (0, 0)))
    dy_chunks = dy_chunks.reshape(images, chunks, out_h, out_w, c_out)

    def add_chunk(chunk, total):
        images_x = lax.dynamic_index_in_dim(x_t, chunk, axis=2, keepdims=False)
        images_x = jnp.pad(images_x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        # (C_in, images, span + kw - 1): a shift of the last axis is a contiguous run.
        images_x = jnp.pad(images_x.reshape(c_in, images, span), ((0, 0), (0, 0), (0, kw - 1)))
        # Column shifts stacked once (kw·C_in rows); a row shift i is then a slice at i·wp.
        by_column = jnp.concatenate(
            [lax.slice_in_dim(images_x, j, j + span, axis=2) for j in range(kw)], axis=0
        )
        images_dy = lax.dynamic_index_in_dim(dy_chunks, chunk, axis=1, keepdims=False)
        images_dy = jnp.pad(images_dy, ((0, 0), (0, 0), (0, wp - out_w), (0, 0)))
        images_dy = images_dy.reshape(images * rows, c_out)
        per_row = [
            lax.slice_in_dim(by_column, i * wp, i * wp + rows, axis=2).reshape(
                kw * c_in, images * rows
            )
            @ images_dy
            for i in range(kh)
        ]
        return total + jnp.stack(per_row)

    total = lax.fori_loop(0, chunks, add_chunk, jnp.zeros((kh, kw * c_in, c_out), dy.dtype))
    return total.reshape(kh, kw, c_in, c_out).astype(x.dtype)


def _thin_kernel_gradient(
    x: jax.Array, dy: jax.Array, kernel_size: Sequence[int], pads: Sequence[Sequence[int]]
) -> jax.Array:
    """`kernel_gradient` for few input channels (one or three): stacks every kernel offset of
    x over the output grid (an im2col, kh·kw·C_in rows, small since C_in is), so each chunk is
    one product, (kh·kw·C_in, S) @ (S, C_out), with dy as it is: neither padded nor read kh
    times. 2–5× faster than the column-shift stacking or XLA's own gradient here."""
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
