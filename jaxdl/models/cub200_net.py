"""CUB-200 reference CNN (Projet 22): three stages of dense + grouped conv blocks."""

import functools
from collections.abc import Sequence
from typing import ClassVar

import jax
import ml_collections
from flax import linen as nn

from jaxdl.checks import check
from jaxdl.errors import ConfigError
from jaxdl.models import layers

STAGE_WIDTHS = (64, 128, 256)  # the reference's `hidden_sizes`: stem and stage 1, 2, 3 widths


class Cub200GroupedCNN(nn.Module):
    """Input (B, H, W, 3) float32 image (224×224 in the reference); output (B, num_classes) logits.

    stem Conv3×3(64) → BN → ReLU; stages of `num_blocks` blocks [Conv3×3 → BN → ReLU →
    Conv3×3(groups) → BN → ReLU] at `widths`, the first block of a stage widening the channels in
    its dense conv; 2×2 max-pool after every stage but the last; GAP → Dense. All convs have a
    bias. Submodules: `stem_{conv,bn}`, `stage{s}_block{b}_{conv,bn}` (dense) and
    `stage{s}_block{b}_grouped_{conv,bn}`, 0-indexed. In evaluation each BatchNorm is folded into
    its conv.
    """

    num_classes: int
    num_blocks: int = 2
    groups: int = 4
    widths: Sequence[int] = STAGE_WIDTHS
    init_scheme: str = "flax"  # "flax" | "torch" (PyTorch default initialisation)
    dtype: str = "float32"  # compute dtype, a key of layers.DTYPES

    HYPERPARAMETERS: ClassVar[tuple[str, str]] = ("num_blocks", "groups")

    @staticmethod
    def check_hyperparameters(model: ml_collections.ConfigDict) -> None:
        blocks, groups = model.num_blocks, model.groups
        check(
            isinstance(blocks, int) and blocks >= 1,
            "model.num_blocks",
            blocks,
            "a positive number of blocks per stage",
        )
        divisors = [
            g for g in range(1, STAGE_WIDTHS[0] + 1) if all(w % g == 0 for w in STAGE_WIDTHS)
        ]
        check(
            isinstance(groups, int) and groups in divisors,
            "model.groups",
            groups,
            f"a number of groups dividing every stage width {STAGE_WIDTHS}: "
            f"{', '.join(map(str, divisors[:-1]))} or {divisors[-1]}",
        )

    def __post_init__(self) -> None:
        if self.groups < 1 or any(width % self.groups for width in self.widths):
            raise ConfigError(
                f"model.groups={self.groups} must divide every stage width {tuple(self.widths)}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        block = functools.partial(
            layers.conv_bn_relu,
            init_scheme=self.init_scheme,
            train=train,
            dtype=layers.DTYPES[self.dtype],
        )
        x = block(x, self.widths[0], name="stem")
        for stage, width in enumerate(self.widths):
            for index in range(self.num_blocks):
                prefix = f"stage{stage}_block{index}"
                x = block(x, width, name=prefix)
                x = block(x, width, name=f"{prefix}_grouped", groups=self.groups)
            if stage < len(self.widths) - 1:
                x = layers.max_pool_2x2(x)
        x = layers.global_average_pool(x)
        return layers.dense(self.num_classes, self.widths[-1], self.init_scheme, "head")(x)
