"""Layers shared by the architectures, written for speed on XLA:CPU and parity with torch."""

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from jaxdl.models import winograd
from jaxdl.models.conv import NHWC, conv_general_dilated

# model.dtype: the compute dtype of convolutions and activations. Parameters, BatchNorm statistics,
# the classification head and the loss stay float32 (docs/numerics.md).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _pool_windows(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H//2, 2, W//2, 2, C), dropping an odd last row/column (floor mode)."""
    b, h, w, c = x.shape
    return x[:, : h - h % 2, : w - w % 2, :].reshape(b, h // 2, 2, w // 2, 2, c)


def _pool_corners(x: jax.Array) -> list[jax.Array]:
    """The four positions of every 2×2 window as strided slices, each (B, H//2, W//2, C)."""
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return [x[:, i::2, j::2, :] for i in range(2) for j in range(2)]


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2×2 max-pool, stride 2, floor mode (torch `MaxPool2d(2)`), on (B, H, W, C).

    Written without reductions: XLA:CPU hands reductions to a library kernel that fuses nothing,
    so a `max` over a reshaped window axis first wrote the whole windowed input out again. The
    maximum of four strided slices and this gradient are elementwise, so XLA fuses each into one
    pass, together with the BatchNorm and ReLU before it. The gradient is autodiff's, ties
    included (the cotangent split equally between tied maxima, bitwise): one pass for the share
    dy / #maxima per window, one for dx.
    """
    top_left, top_right, bottom_left, bottom_right = _pool_corners(x)
    return jnp.maximum(jnp.maximum(top_left, top_right), jnp.maximum(bottom_left, bottom_right))


def _max_pool_forward(x):
    y = max_pool_2x2(x)
    return y, (x, y)


def _max_pool_backward(residuals, dy):
    x, y = residuals
    share = dy / sum((corner == y).astype(dy.dtype) for corner in _pool_corners(x))
    b, h, w, c = x.shape
    windows = _pool_windows(x)  # (B, H/2, 2, W/2, 2, C): y and share broadcast over the window
    dx = jnp.where(
        windows == y[:, :, None, :, None, :], share[:, :, None, :, None, :], jnp.zeros((), dy.dtype)
    )
    dx = dx.reshape(b, h - h % 2, w - w % 2, c)
    return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_forward, _max_pool_backward)


def global_average_pool(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C) float32: the head and the loss stay float32 under bfloat16."""
    return x.astype(jnp.float32).mean(axis=(1, 2))


class Affine(NamedTuple):
    """A per-channel affine map y·scale + shift: an evaluation-mode BatchNorm."""

    scale: jax.Array
    shift: jax.Array


def _channel_sums(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Σa and Σb over every axis but the last. Two reductions, not one: XLA:CPU's library kernel
    fuses each one's elementwise product (x·x or g·x is never written out) and sums accurately,
    while a variadic reduce, a stacked pair or a product with ones ran in XLA's own sequential
    loops, several times slower and 1e-3 off over 2M positions (docs/numerics.md)."""
    axes = tuple(range(a.ndim - 1))
    return jnp.sum(a, axes), jnp.sum(b, axes)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm_train(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float, dtype: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode BatchNorm over every axis but the last: (y in `dtype`, batch mean, biased
    batch variance), the statistics and arithmetic float32 and Flax's own (so y matches
    nn.BatchNorm's).

    Its gradient is written out so that it reads the activations in two passes, as the forward
    does (the sums, then the normalisation): Σg and Σg·x per channel (fused reductions), then
    dx = scale·rstd·(g − mean(g) − x̂·mean(g·x̂)) in one elementwise pass; autodiff of Flax's
    BatchNorm made three elementwise passes and five reductions. The cotangents of the returned
    statistics are honoured (per-channel terms of the same pass).
    """
    return _batch_norm_forward(x, scale, bias, epsilon, dtype)[0]


def _batch_norm_forward(x, scale, bias, epsilon, dtype):
    n = x.size // x.shape[-1]
    x32 = x.astype(jnp.float32)
    sum_x, sum_xx = _channel_sums(x32, x32 * x32)
    mean = sum_x / n
    var = jnp.maximum(0.0, sum_xx / n - mean * mean)  # Flax's fast variance, clipped likewise
    rstd = lax.rsqrt(var + epsilon)
    y = ((x32 - mean) * (rstd * scale) + bias).astype(dtype)
    return (y, mean, var), (x, scale, mean, rstd)


def _batch_norm_backward(epsilon, dtype, residuals, cotangents):
    x, scale, mean, rstd = residuals
    dy, dmean, dvar = cotangents
    n = x.size // x.shape[-1]
    g, x32 = dy.astype(jnp.float32), x.astype(jnp.float32)
    sum_g, sum_gx = _channel_sums(g, g * x32)
    # Σg·(x − mean), from Σg·x: a fused reduction, where x − mean was written out first. It
    # cancels as much as Flax's E[x²] − E[x]² does (docs/numerics.md).
    sum_g_centred = sum_gx - mean * sum_g
    mul = rstd * scale
    # dx = g·mul + (x − mean)·k_centred + k_const, with the mean's and variance's own cotangents
    k_centred = (2.0 * dvar - mul * rstd * rstd * sum_g_centred) / n
    k_const = (dmean - mul * sum_g) / n
    dx = g * mul + (x32 - mean) * k_centred + k_const
    return dx.astype(x.dtype), sum_g_centred * rstd, sum_g


batch_norm_train.defvjp(_batch_norm_forward, _batch_norm_backward)


class BatchNorm(nn.BatchNorm):
    """Flax's BatchNorm with torch's running variance: torch folds the *unbiased* batch variance
    (n/(n-1) times the biased one that normalises the batch) into the running average.

    Same variables as nn.BatchNorm, so checkpoints and imported PyTorch statistics are unchanged.
    Its statistics and normalisation are float32 whatever `dtype` (the output's) is. In training
    it runs `batch_norm_train` (fewer passes over the activations than autodiff of Flax's; Flax's
    own code still serves `mask`).

    Called with `conv`, it normalises `conv(x)`; in evaluation it then folds itself into the
    convolution instead (`Conv.__call__`'s `fold`): one conv with kernel W·s and bias
    (b − mean)·s + β, s = γ/√(var + ε), and no pass of its own over the activations.
    """

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask=None, conv=None):
        training = not nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        if conv is not None and not training and not self.is_initializing():
            return conv(x, fold=self.affine())
        if training and mask is None and not self.is_initializing():
            return self._train(*conv(x, defer_bias=True)) if conv is not None else self._train(x)
        if conv is not None:
            x = conv(x)
        before = self.get_variable("batch_stats", "var")
        y = super().__call__(x, use_running_average, mask=mask)
        if training and not self.is_initializing():
            self._torch_variance(before, x.size // x.shape[-1])
        return y

    def concat(self, parts: Sequence[jax.Array]) -> jax.Array:
        """This BatchNorm of `parts` concatenated along the channels (Tiny ImageNet's branches).

        In evaluation the per-channel affine map is applied to each part before the
        concatenation, which XLA:CPU fuses with the ReLUs that made the parts: the
        concatenation's own pass then writes the normalised activations, where it wrote them
        to be normalised by another pass (Tiny ImageNet eval 1.02-1.04×). In training the batch
        statistics need the whole concatenation: `self(concatenate(parts))`.
        """
        if not self.use_running_average or self.is_initializing():
            return self(jnp.concatenate(parts, axis=-1))
        scale, shift = self.affine()
        edges = list(itertools.accumulate(part.shape[-1] for part in parts))[:-1]
        normalised = [
            (part * part_scale + part_shift).astype(self.dtype or part.dtype)
            for part, part_scale, part_shift in zip(
                parts, jnp.split(scale, edges), jnp.split(shift, edges), strict=True
            )
        ]
        return jnp.concatenate(normalised, axis=-1)

    def _train(self, x: jax.Array, shift: jax.Array | None = None) -> jax.Array:
        """`batch_norm_train` of x + shift on this module's variables, updating the running
        statistics as nn.BatchNorm does, then to torch's variance.

        A per-channel `shift` (the conv's bias) moves the batch mean and nothing else, so it is
        added to the mean instead of to x: no pass over the activations for the bias, none for
        its gradient, which is exactly 0 (autodiff's Σ dx was 0 up to rounding)."""
        params = self.variables["params"]
        dtype = self.dtype or jnp.result_type(x, params["scale"], params["bias"])
        y, mean, var = batch_norm_train(x, params["scale"], params["bias"], self.epsilon, dtype)
        if shift is not None:
            mean = mean + shift
        stats, m = self.variables["batch_stats"], self.momentum
        before = stats["var"]
        self.put_variable("batch_stats", "mean", m * stats["mean"] + (1 - m) * mean)
        self.put_variable("batch_stats", "var", m * before + (1 - m) * var)
        self._torch_variance(before, x.size // x.shape[-1])
        return y

    def _torch_variance(self, before: jax.Array, n: int) -> None:
        """Flax stored m·before + (1-m)·biased; torch wants m·before + (1-m)·biased·n/(n-1)."""
        after = self.get_variable("batch_stats", "var")
        self.put_variable(
            "batch_stats", "var", after + (after - self.momentum * before) / max(n - 1, 1)
        )

    def affine(self) -> Affine:
        """The evaluation-mode normalisation as y·scale + shift, from the running statistics
        (Flax's own arithmetic: (y − mean)·(γ·rsqrt(var + ε)) + β)."""
        mean = self.get_variable("batch_stats", "mean")
        scale = lax.rsqrt(self.get_variable("batch_stats", "var") + self.epsilon)
        scale = scale * self.get_variable("params", "scale")
        return Affine(scale, self.get_variable("params", "bias") - mean * scale)


def batch_norm(train: bool, name: str | None = None, dtype: Any = jnp.float32) -> BatchNorm:
    """BatchNorm matching torch's: torch momentum 0.1 is Flax momentum 0.9, eps 1e-5, and the
    running variance from the unbiased batch variance; its output in `dtype`."""
    return BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name
    )


def torch_kernel_init(key, shape, dtype=jnp.float32):
    """torch's default conv/linear weight init: kaiming_uniform(a=√5) = U(±1/√fan_in)."""
    fan_in = math.prod(shape[:-1])
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_bias_init(fan_in: int):
    """torch's default bias init: U(±1/√fan_in) of the layer's weight."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def initializers(init: str, fan_in: int) -> dict:
    """Kernel/bias initialisers for `init` ∈ {"flax", "torch"} (torch: comparable initial
    losses)."""
    if init == "torch":
        return {"kernel_init": torch_kernel_init, "bias_init": torch_bias_init(fan_in)}
    if init == "flax":
        return {}
    raise ValueError(f"model.init must be 'flax' or 'torch', got {init!r}")


def _shifts_3x3(padded: jax.Array) -> list[jax.Array]:
    """The nine (B, H, W, C) slices of a (B, H+2, W+2, C) array, one per 3×3 window offset."""
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    return [padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)]


def _pad_3x3(x: jax.Array, value: float) -> jax.Array:
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=value)


@jax.custom_vjp
def max_pool_3x3_same(x: jax.Array) -> jax.Array:
    """3×3 max-pool, stride 1, padding 1 (torch `MaxPool2d(3, 1, 1)`): (B, H, W, C) -> same shape.

    Pads with -inf like torch, so border windows take the max of their in-image values only; the
    output equals `nn.max_pool`'s. Forward and gradient are elementwise over the nine shifted
    slices, one pass for the forward and two for the gradient (the share dy / #maxima of each
    window, then each input's sum over the windows it is a maximum of): XLA's select-and-scatter
    was 6× slower on CPU, autodiff of the shifted maxima made eight passes. The gradient is
    autodiff's rule for a max (the cotangent split equally between tied maxima).
    """
    return functools.reduce(jnp.maximum, _shifts_3x3(_pad_3x3(x, -jnp.inf)))


def _max_pool_3x3_forward(x):
    y = max_pool_3x3_same(x)
    return y, (x, y)


def _max_pool_3x3_backward(residuals, dy):
    x, y = residuals
    maxima = sum((s == y).astype(dy.dtype) for s in _shifts_3x3(_pad_3x3(x, -jnp.inf)))
    # x[p] lies in the windows centred at p + e, e ∈ {-1, 0, 1}²: the same nine slices of the
    # padded y and share (windows outside the image pass on nothing).
    shares = _shifts_3x3(_pad_3x3(dy / maxima, 0.0))
    maxes = _shifts_3x3(_pad_3x3(y, -jnp.inf))
    zero = jnp.zeros((), dy.dtype)
    return (sum(jnp.where(x == m, s, zero) for m, s in zip(maxes, shares, strict=True)),)


max_pool_3x3_same.defvjp(_max_pool_3x3_forward, _max_pool_3x3_backward)


def _dense_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Same-padded stride-1 conv (`models/conv.py`: XLA's, or shifted adds for one channel)."""
    return conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=NHWC)


def grouped_conv_sliced(x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
    """A grouped conv as `groups` dense convs on channel slices, concatenated: output group g
    from input slice g and kernel[..., g·F/G:(g+1)·F/G]. XLA:CPU's native grouped conv has a
    10–40× slower gradient (docs/xla-cpu-traps.md); this runs at dense-conv speed."""
    x_groups = jnp.split(x, groups, axis=-1)
    kernel_groups = jnp.split(kernel, groups, axis=-1)
    return jnp.concatenate(
        [_dense_conv(xg, kg) for xg, kg in zip(x_groups, kernel_groups, strict=True)], axis=-1
    )


def grouped_conv_native(x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
    """A grouped conv as one `feature_group_count` conv: what cuDNN and the TPU run natively."""
    return lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=groups
    )


def grouped_conv(x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
    """Same-padded stride-1 conv of x (B, H, W, C_in) with kernel (kh, kw, C_in/groups, F).

    Grouped convs are sliced on CPU and native elsewhere, chosen per platform when the step is
    lowered (`lax.platform_dependent`: only the chosen form is compiled), so a step lowered for
    a GPU or TPU gets the native form even from a process whose default backend is the CPU.
    """
    if groups == 1:
        return _dense_conv(x, kernel)
    return lax.platform_dependent(
        x,
        kernel,
        cpu=functools.partial(grouped_conv_sliced, groups=groups),
        default=functools.partial(grouped_conv_native, groups=groups),
    )


class Conv(nn.Module):
    """k×k conv, stride 1, same padding (torch `Conv2d(padding=k//2)` for odd k), optional bias
    and groups: (B, H, W, C_in) -> (B, H, W, features) in `dtype`.

    Its parameters are exactly those of `nn.Conv(features, (k, k), feature_group_count=groups)`
    (kernel (k, k, C_in/groups, features), bias (features,), float32), so checkpoints and torch
    imports carry over. It exists to take `fold`, the evaluation-mode BatchNorm that follows it
    (`BatchNorm.__call__`), into its kernel and bias, to hand its bias to a training BatchNorm
    (`defer_bias`: returns (conv without bias, bias)), to run grouped convs fast on each
    backend (`grouped_conv`), and, when it is `forward_only` (built for evaluation), to run its
    wide 3×3 convs on CPU by Winograd's algorithm (`models/winograd.py`).
    """

    features: int
    kernel_size: int
    groups: int = 1
    use_bias: bool = True
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32
    forward_only: bool = False  # never trained through: Winograd may serve it on CPU
    kernel_init: Callable = nn.initializers.lecun_normal()  # nn.Conv's defaults
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(
        self, x: jax.Array, fold: Affine | None = None, *, defer_bias: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array | None]:
        in_features = x.shape[-1]
        if in_features % self.groups or self.features % self.groups:
            raise ValueError(
                f"Conv: groups={self.groups} must divide the input ({in_features}) "
                f"and output ({self.features}) channels"
            )
        size = self.kernel_size
        kernel_shape = (size, size, in_features // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, kernel_shape, jnp.float32)
        bias = (
            self.param("bias", self.bias_init, (self.features,), jnp.float32)
            if self.use_bias
            else None
        )
        if fold is not None:  # conv(x, W)·s + b·s + t = conv(x, W·s) + (b·s + t), in float32
            kernel = kernel * fold.scale
            bias = fold.shift if bias is None else bias * fold.scale + fold.shift
        y = self._convolve(x.astype(self.dtype), kernel.astype(self.dtype))
        if defer_bias:  # for a training BatchNorm (`BatchNorm._train`)
            return y, bias
        return y if bias is None else y + bias.astype(self.dtype)

    def _convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        """Winograd on CPU for a forward-only layer it suits (XLA's convolution on other
        backends, chosen when the step is lowered, as `grouped_conv`); `grouped_conv` otherwise."""
        if (
            self.forward_only
            and self.groups == 1
            and winograd.applies(x.shape, kernel.shape, x.dtype)
        ):
            return lax.platform_dependent(x, kernel, cpu=winograd.conv3x3, default=_dense_conv)
        return grouped_conv(x, kernel, self.groups)


def conv(
    features: int,
    kernel_size: int,
    in_features: int,
    init_scheme: str,
    name: str,
    use_bias: bool = True,
    groups: int = 1,
    dtype: Any = jnp.float32,
    forward_only: bool = False,
) -> Conv:
    """A `Conv` initialised by `init_scheme` (fan-in C_in/groups·k²), computing in `dtype`;
    `forward_only` for a model built for evaluation (`Conv.forward_only`). Call inside a compact
    method."""
    init = initializers(init_scheme, in_features // groups * kernel_size**2)
    return Conv(features, kernel_size, groups, use_bias, dtype, forward_only, name=name, **init)


def dense(features: int, in_features: int, init_scheme: str, name: str) -> nn.Dense:
    """Linear layer with bias, initialised by `init_scheme` (the classification heads); float32,
    as its float32 input (`global_average_pool`) makes it."""
    return nn.Dense(features, name=name, **initializers(init_scheme, in_features))


def conv_bn_relu(
    x: jax.Array,
    features: int,
    init_scheme: str,
    train: bool,
    name: str,
    groups: int = 1,
    dtype: Any = jnp.float32,
) -> jax.Array:
    """Conv3×3(same, bias) → BatchNorm → ReLU, the block of the CUB-200 and CelebA CNNs:
    (B, H, W, C) -> (B, H, W, features), with submodules `{name}_conv` and `{name}_bn`; the
    BatchNorm is folded into the conv in evaluation."""
    block_conv = conv(
        features,
        3,
        x.shape[-1],
        init_scheme,
        f"{name}_conv",
        groups=groups,
        dtype=dtype,
        forward_only=not train,
    )
    return nn.relu(batch_norm(train, f"{name}_bn", dtype)(x, conv=block_conv))
