"""ESC-50 reference CNN (`ESC50CNN2D`): three Conv→BN→ReLU blocks on a log-mel, GAP, Dense."""

from collections.abc import Sequence
from typing import ClassVar

import jax
import ml_collections
from flax import linen as nn

from jaxdl.checks import check
from jaxdl.models import layers


class Esc50CNN(nn.Module):
    """Input (B, n_mels, T, 1) float32 log-mel; output (B, num_classes) logits.

    Conv(k×k, same padding, bias) → BatchNorm → ReLU per block, 2×2 max-pool after blocks 1–2.
    """

    num_classes: int
    channels: Sequence[int] = (32, 64, 128)
    kernel_size: int = 5
    init_scheme: str = "flax"  # "flax" | "torch" (PyTorch default initialisation)
    dtype: str = "float32"  # compute dtype, a key of layers.DTYPES

    HYPERPARAMETERS: ClassVar[tuple[str, str]] = ("channels", "kernel_size")

    @staticmethod
    def check_hyperparameters(model: ml_collections.ConfigDict) -> None:
        channels = tuple(model.channels)
        check(
            len(channels) == 3 and all(isinstance(c, int) and c > 0 for c in channels),
            "model.channels",
            channels,
            "three positive widths, e.g. (32, 64, 128) or (48, 96, 192)",
        )
        check(
            model.kernel_size in (1, 3, 5, 7),
            "model.kernel_size",
            model.kernel_size,
            "an odd size in [1, 3, 5, 7] (the reference grid uses 3 and 5)",
        )

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        in_channels = x.shape[-1]
        dtype = layers.DTYPES[self.dtype]
        for block, width in enumerate(self.channels):
            conv = layers.conv(
                width,
                self.kernel_size,
                in_channels,
                self.init_scheme,
                f"conv{block}",
                dtype=dtype,
                forward_only=not train,
            )
            norm = layers.batch_norm(train, f"bn{block}", dtype)
            # In training the conv's bias goes to the BatchNorm's mean (no pass of its own); not
            # folded in evaluation: on XLA:CPU the fold gained nothing here (docs/numerics.md).
            x = nn.relu(norm(x, conv=conv) if train else norm(conv(x)))
            if block < len(self.channels) - 1:
                x = layers.max_pool_2x2(x)
            in_channels = width
        x = layers.global_average_pool(x)
        return layers.dense(self.num_classes, in_channels, self.init_scheme, "head")(x)
