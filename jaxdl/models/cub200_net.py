"""CUB-200 reference CNN (Projet 22): three stages of dense + grouped conv blocks."""

from collections.abc import Sequence

import jax
from flax import linen as nn

from jaxdl.errors import ConfigError
from jaxdl.models import layers


class Cub200GroupedCNN(nn.Module):
    """Input (B, H, W, 3) float32 image (224×224 in the reference); output (B, num_classes) logits.

    stem Conv3×3(64) → BN → ReLU; stages of `num_blocks` blocks [Conv3×3 → BN → ReLU →
    Conv3×3(groups) → BN → ReLU] at `widths`, the first block of a stage widening the channels in
    its dense conv; 2×2 max-pool after every stage but the last; GAP → Dense. All convs have a
    bias. Submodules: `stem_{conv,bn}`, `stage{s}_block{b}_{conv,bn}` (dense) and
    `stage{s}_block{b}_grouped_{conv,bn}`, 0-indexed.
    """

    num_classes: int
    num_blocks: int = 2
    groups: int = 4
    widths: Sequence[int] = (64, 128, 256)
    init_scheme: str = "flax"  # "flax" | "torch" (PyTorch default initialisation)

    def __post_init__(self) -> None:
        if self.groups < 1 or any(width % self.groups for width in self.widths):
            raise ConfigError(
                f"model.groups={self.groups} must divide every stage width {tuple(self.widths)}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = layers.conv_bn_relu(x, self.widths[0], self.init_scheme, train, "stem")
        for stage, width in enumerate(self.widths):
            for block in range(self.num_blocks):
                prefix = f"stage{stage}_block{block}"
                x = layers.conv_bn_relu(x, width, self.init_scheme, train, prefix)
                x = layers.conv_bn_relu(
                    x, width, self.init_scheme, train, f"{prefix}_grouped", groups=self.groups
                )
            if stage < len(self.widths) - 1:
                x = layers.max_pool_2x2(x)
        x = layers.global_average_pool(x)
        return layers.dense(self.num_classes, self.widths[-1], self.init_scheme, "head")(x)
