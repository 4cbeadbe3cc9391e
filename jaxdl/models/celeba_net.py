"""CelebA reference CNN (`CNNMultiLabel`): three Conv→BN→ReLU blocks, dropout, multi-label head."""

from typing import ClassVar

import jax
import ml_collections
from flax import linen as nn

from jaxdl.checks import check
from jaxdl.models import layers


class CelebaCNN(nn.Module):
    """Input (B, H, W, 3) float32 image (64×64 in the reference); output (B, num_classes) logits,
    one per binary attribute (multi-label: sigmoid BCE, not softmax).

    [Conv3×3(64) → BN → ReLU → pool2] → [Conv3×3(128) → BN → ReLU → pool2]
    → [Conv3×3(channels_block3) → BN → ReLU] → GAP → Dropout(dropout) → Dense. Dropout draws from
    the "dropout" rng stream in training and is off in evaluation. Submodules `block{i}_{conv,bn}`;
    in evaluation each BatchNorm is folded into its conv.
    """

    num_classes: int  # binary attributes (5 in the reference)
    channels_block3: int = 256
    dropout: float = 0.0
    init_scheme: str = "flax"  # "flax" | "torch" (PyTorch default initialisation)
    dtype: str = "float32"  # compute dtype, a key of layers.DTYPES

    HYPERPARAMETERS: ClassVar[tuple[str, str]] = ("channels_block3", "dropout")

    @staticmethod
    def check_hyperparameters(model: ml_collections.ConfigDict) -> None:
        width = model.channels_block3
        check(
            isinstance(width, int) and width >= 1,
            "model.channels_block3",
            width,
            "a positive number of channels",
        )
        check(0.0 <= model.dropout < 1.0, "model.dropout", model.dropout, "a probability in [0, 1)")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        widths = (64, 128, self.channels_block3)
        dtype = layers.DTYPES[self.dtype]
        for block, width in enumerate(widths):
            x = layers.conv_bn_relu(x, width, self.init_scheme, train, f"block{block}", dtype=dtype)
            if block < len(widths) - 1:
                x = layers.max_pool_2x2(x)
        x = layers.global_average_pool(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return layers.dense(self.num_classes, self.channels_block3, self.init_scheme, "head")(x)
