"""Tiny ImageNet reference CNN (`InceptionTinyNet`): a conv stem, then Inception-like modules."""

from collections.abc import Sequence
from typing import ClassVar

import jax
import ml_collections
from flax import linen as nn

from jaxdl.checks import check
from jaxdl.errors import ConfigError
from jaxdl.models import layers

MODULE_CHANNELS = 192  # the reference asserts that the three branches concatenate to 192 channels
POOL_AFTER_MODULES = (2, 4)  # 1-indexed; a pool is skipped when it would follow the last module


class TinyImageNetInception(nn.Module):
    """Input (B, H, W, 3) float32 image (64×64 in the reference); output (B, num_classes) logits.

    stem Conv3×3(64) → ReLU; `num_modules` modules, each concatenating three branches
    [Conv1×1 → ReLU | Conv3×3 → ReLU | MaxPool3×3 stride 1 → Conv1×1 → ReLU] to 192 channels
    → BatchNorm; 2×2 max-pool after modules 2 and 4 when a module follows; GAP → Dense. All convs
    are bias-free. The reference applies no ReLU after the module's BatchNorm; with that reading
    the parameter counts match its four configurations (492,424 / 533,384 / 763,528 / 829,064).
    """

    num_classes: int
    num_modules: int = 6
    branch_channels: Sequence[int] = (64, 64, 64)  # 1×1, 3×3, pool→1×1 branch widths
    init_scheme: str = "flax"  # "flax" | "torch" (PyTorch default initialisation)
    dtype: str = "float32"  # compute dtype, a key of layers.DTYPES

    HYPERPARAMETERS: ClassVar[tuple[str, str]] = ("num_modules", "branch_channels")

    @staticmethod
    def check_hyperparameters(model: ml_collections.ConfigDict) -> None:
        modules = model.num_modules
        check(
            isinstance(modules, int) and modules >= 1,
            "model.num_modules",
            modules,
            "a positive number of Inception modules (the reference uses 4 and 6)",
        )
        branches = tuple(model.branch_channels)
        check(
            len(branches) == 3
            and all(isinstance(c, int) and c > 0 for c in branches)
            and sum(branches) == MODULE_CHANNELS,
            "model.branch_channels",
            branches,
            f"three positive widths summing to {MODULE_CHANNELS}, e.g. (64, 64, 64) or "
            "(48, 72, 72)",
        )

    def __post_init__(self) -> None:
        if len(self.branch_channels) != 3 or sum(self.branch_channels) != MODULE_CHANNELS:
            raise ConfigError(
                f"model.branch_channels={tuple(self.branch_channels)} must be three widths "
                f"summing to {MODULE_CHANNELS}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        dtype = layers.DTYPES[self.dtype]
        stem = layers.conv(
            64, 3, x.shape[-1], self.init_scheme, "stem", use_bias=False, dtype=dtype
        )
        x = nn.relu(stem(x))
        width_1x1, width_3x3, width_pool = self.branch_channels
        for module in range(self.num_modules):
            prefix = f"module{module}"
            bias_free = {
                "in_features": x.shape[-1],
                "init_scheme": self.init_scheme,
                "use_bias": False,
                "dtype": dtype,
                "forward_only": not train,
            }
            branches = (
                layers.conv(width_1x1, 1, name=f"{prefix}_branch1x1", **bias_free)(x),
                layers.conv(width_3x3, 3, name=f"{prefix}_branch3x3", **bias_free)(x),
                layers.conv(width_pool, 1, name=f"{prefix}_branch_pool", **bias_free)(
                    layers.max_pool_3x3_same(x)
                ),
            )
            norm = layers.batch_norm(train, f"{prefix}_bn", dtype)
            x = norm.concat([nn.relu(branch) for branch in branches])
            if module + 1 in POOL_AFTER_MODULES and module + 1 < self.num_modules:
                x = layers.max_pool_2x2(x)
        x = layers.global_average_pool(x)
        return layers.dense(self.num_classes, MODULE_CHANNELS, self.init_scheme, "head")(x)
