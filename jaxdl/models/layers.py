"""Layers shared by the architectures, written for speed on XLA:CPU and parity with torch."""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxdl.models.conv import conv_general_dilated


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
    """(B, H, W, C) -> (B, C)."""
    return x.mean(axis=(1, 2))


class BatchNorm(nn.BatchNorm):
    """Flax's BatchNorm with torch's running variance: torch folds the *unbiased* batch variance
    (n/(n-1) times the biased one that normalises the batch) into the running average.

    Same variables as nn.BatchNorm, so checkpoints and imported PyTorch statistics are unchanged.
    """

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        training = not nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        before = self.get_variable("batch_stats", "var")
        y = super().__call__(x, use_running_average, mask=mask)
        if training and not self.is_initializing():
            # Flax stored m·before + (1-m)·biased; torch wants m·before + (1-m)·biased·n/(n-1).
            after = self.get_variable("batch_stats", "var")
            n = x.size // x.shape[-1]
            self.put_variable(
                "batch_stats", "var", after + (after - self.momentum * before) / max(n - 1, 1)
            )
        return y


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm matching torch's: torch momentum 0.1 is Flax momentum 0.9, eps 1e-5, and the
    running variance from the unbiased batch variance."""
    return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


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


def max_pool_3x3_same(x: jax.Array) -> jax.Array:
    """3×3 max-pool, stride 1, padding 1 (torch `MaxPool2d(3, 1, 1)`): (B, H, W, C) -> same shape.

    Pads with -inf like torch, so border windows take the max of their in-image values only. Written
    as a separable max of shifted slices: forward equal to `nn.max_pool`, and its gradient is
    elementwise instead of XLA's select-and-scatter, 6× faster on CPU (fwd+bwd, 32×32×32×192). On an
    exact tie the gradient is split between the tied inputs instead of routed to one.
    """
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    rows = jnp.maximum(jnp.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return jnp.maximum(jnp.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


class GroupedConv(nn.Module):
    """k×k grouped convolution, stride 1, same padding: (B, H, W, C_in) -> (B, H, W, features).

    Parameters are exactly those of `nn.Conv(features, kernel_size, feature_group_count=groups)`:
    kernel (kh, kw, C_in/G, features) and bias (features,), so checkpoints and torch imports carry
    over. It runs as G dense convs on channel slices, concatenated (output group g comes from input
    slice g and kernel[..., g·F/G:(g+1)·F/G]), because XLA:CPU's native grouped conv has a 10–40×
    slower gradient (docs/xla-cpu-traps.md) while the dense form runs at dense-conv speed.
    """

    features: int
    kernel_size: tuple[int, int]
    groups: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()  # nn.Conv's defaults
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        if in_features % self.groups or self.features % self.groups:
            raise ValueError(
                f"GroupedConv: groups={self.groups} must divide the input ({in_features}) "
                f"and output ({self.features}) channels"
            )
        kernel_shape = (*self.kernel_size, in_features // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, kernel_shape)
        x_groups = jnp.split(x, self.groups, axis=-1)
        kernel_groups = jnp.split(kernel, self.groups, axis=-1)
        y = jnp.concatenate(
            [
                conv_general_dilated(
                    xg, kg, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
                )
                for xg, kg in zip(x_groups, kernel_groups, strict=True)
            ],
            axis=-1,
        )
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


def conv(
    features: int,
    kernel_size: int,
    in_features: int,
    init_scheme: str,
    name: str,
    use_bias: bool = True,
    groups: int = 1,
) -> nn.Module:
    """Same-padded k×k conv, stride 1 (torch `Conv2d(padding=k//2)` for odd k), initialised by
    `init_scheme`; `groups > 1` gives a `GroupedConv`. Call inside a compact method."""
    init = initializers(init_scheme, in_features // groups * kernel_size**2)
    if groups > 1:
        return GroupedConv(
            features, (kernel_size, kernel_size), groups, use_bias=use_bias, name=name, **init
        )
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        padding="SAME",
        use_bias=use_bias,
        name=name,
        conv_general_dilated=conv_general_dilated,
        **init,
    )


def dense(features: int, in_features: int, init_scheme: str, name: str) -> nn.Dense:
    """Linear layer with bias, initialised by `init_scheme` (the classification heads)."""
    return nn.Dense(features, name=name, **initializers(init_scheme, in_features))


def conv_bn_relu(
    x: jax.Array, features: int, init_scheme: str, train: bool, name: str, groups: int = 1
) -> jax.Array:
    """Conv3×3(same, bias) → BatchNorm → ReLU, the block of the CUB-200 and CelebA CNNs:
    (B, H, W, C) -> (B, H, W, features), with submodules `{name}_conv` and `{name}_bn`."""
    y = conv(features, 3, x.shape[-1], init_scheme, f"{name}_conv", groups=groups)(x)
    return nn.relu(batch_norm(train, name=f"{name}_bn")(y))
