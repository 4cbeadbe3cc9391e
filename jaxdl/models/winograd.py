"""Winograd F(4×4, 3×3): the 3×3 convolutions of evaluation on XLA:CPU with a quarter of the
multiplications.

XLA:CPU's convolution (Eigen) runs wide 3×3 layers close to the host's GEMM ceiling, so the only
way to run them faster is to do less arithmetic. Winograd's algorithm (Lavin & Gray, 2016) cuts
each 6×6 input tile to 36 transformed values per channel, multiplies them channel by channel
with the transformed kernel (36 GEMMs of (tiles × C_in)·(C_in × C_out), 36 products per 16
outputs instead of 144), and turns the 36 products back into a 4×4 output tile. The transforms
are additions over 2.25 times the activations, so the trade pays where a pixel costs much
arithmetic for the memory it moves: `applies` (docs/numerics.md has the accuracy, about 1e-5 of
the largest output where the direct convolution is near 2e-7, and benchmarks/README.md the
figures).

Only forward-only programs use it (`layers.Conv.forward_only`: evaluation and prediction):
training keeps XLA's convolution and its exact gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TILE = 4  # output tile side: each 6×6 input tile gives 4×4 outputs
# C_in·C_out / (C_in + C_out), the arithmetic a layer does per value it moves, from which the
# trade paid on an Intel Xeon (benchmarks/README.md): 1.11× at 64 → 128 channels (42.7), 1.3-1.8×
# from 128 channels up, and nothing at 64 → 64 (32).
MIN_ARITHMETIC_PER_VALUE = 40

# Lavin & Gray's F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞: y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A.
INPUT_TRANSFORM = np.array(  # Bᵀ
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float32,
)
KERNEL_TRANSFORM = np.array(  # G
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float32,
)
OUTPUT_TRANSFORM = np.array(  # Aᵀ
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    np.float32,
)


def applies(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], dtype) -> bool:
    """Whether a same-padded stride-1 conv of x (B, H, W, C_in) with kernel (kh, kw, C_in,
    C_out) is one Winograd runs faster: 3×3, float32 (bfloat16 has too few bits for the
    transforms), at least one whole tile, and wide enough (`MIN_ARITHMETIC_PER_VALUE`)."""
    kh, kw, c_in, c_out = kernel_shape
    return (
        (kh, kw) == (3, 3)
        and jnp.dtype(dtype) == jnp.float32
        and min(x_shape[1:3]) >= TILE
        and c_in * c_out / (c_in + c_out) >= MIN_ARITHMETIC_PER_VALUE
    )


def _combine(coefficients: np.ndarray, terms: list[jax.Array]) -> jax.Array:
    """Σ coefficient·term, skipping zeros and multiplying by ±1 for free (XLA keeps what it is
    given: a multiplication by a zero array is still a pass)."""
    total = None
    for coefficient, term in zip(coefficients.tolist(), terms, strict=True):
        if coefficient == 0:
            continue
        scaled = term if coefficient == 1 else -term if coefficient == -1 else coefficient * term
        total = scaled if total is None else total + scaled
    return total


def _transform_input(x: jax.Array, tiles_h: int, tiles_w: int) -> jax.Array:
    """(B, H, W, C) -> (36, B·tiles_h·tiles_w, C): Bᵀ d B of every 6×6 tile d of the zero-padded
    input, tiles 4 apart; rows first (6 strided row slices), then columns."""
    batch, height, width, channels = x.shape
    padded = jnp.pad(
        x,
        ((0, 0), (1, TILE * tiles_h - height + 1), (1, TILE * tiles_w - width + 1), (0, 0)),
    )
    last_row, last_col = TILE * (tiles_h - 1), TILE * (tiles_w - 1)
    rows = [
        lax.slice(
            padded,
            (0, i, 0, 0),
            (batch, i + last_row + 1, padded.shape[2], channels),
            (1, TILE, 1, 1),
        )
        for i in range(6)
    ]
    values = []
    for row in (_combine(coefficients, rows) for coefficients in INPUT_TRANSFORM):
        columns = [
            lax.slice(
                row, (0, 0, j, 0), (batch, tiles_h, j + last_col + 1, channels), (1, 1, TILE, 1)
            )
            for j in range(6)
        ]
        values.append(jnp.stack([_combine(c, columns) for c in INPUT_TRANSFORM]))
    return jnp.stack(values).reshape(36, batch * tiles_h * tiles_w, channels)


def _transform_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, C_in, C_out) -> (36, C_in, C_out): G g Gᵀ for every channel pair."""
    g = KERNEL_TRANSFORM
    transformed = jnp.einsum("ai,bj,ijcf->abcf", g, g, kernel, precision=lax.Precision.HIGHEST)
    return transformed.reshape(36, *kernel.shape[2:])


def _transform_output(products: jax.Array, batch: int, tiles_h: int, tiles_w: int) -> jax.Array:
    """(36, B·tiles, C_out) -> (B, 4·tiles_h, 4·tiles_w, C_out): Aᵀ m A of every tile, columns
    of m first, written straight into the image layout (one pass)."""
    m = products.reshape(6, 6, batch, tiles_h, tiles_w, -1)
    half = [[_combine(a_u, list(m[:, b])) for b in range(6)] for a_u in OUTPUT_TRANSFORM]
    rows = [
        jnp.stack([_combine(a_v, half_u) for a_v in OUTPUT_TRANSFORM], axis=3) for half_u in half
    ]  # each (B, tiles_h, tiles_w, 4, C_out)
    return jnp.stack(rows, axis=2).reshape(batch, TILE * tiles_h, TILE * tiles_w, -1)


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Same-padded stride-1 conv of x (B, H, W, C_in) with kernel (3, 3, C_in, C_out), NHWC:
    `lax.conv_general_dilated`'s result to about 1e-5 of its largest value. H and W need not be
    multiples of 4 (the last tiles read zeros and are cropped)."""
    batch, height, width, _ = x.shape
    tiles_h, tiles_w = -(-height // TILE), -(-width // TILE)
    values = _transform_input(x, tiles_h, tiles_w)
    products = jnp.einsum("ptc,pcf->ptf", values, _transform_kernel(kernel))
    y = _transform_output(products, batch, tiles_h, tiles_w)
    return y[:, :height, :width, :]
