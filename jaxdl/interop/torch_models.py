"""The four reference projects' PyTorch models, written from those projects' own descriptions.

Each class follows the architecture its project's report and `src/model.py` describe, with every
width, padding and pooling position spelled out here, and shares nothing with jaxdl's Flax
models: it is the independent side of every parity check (`tests/test_torch_twins.py`, the
import_torch and training-parity tests) and the network `benchmarks/` times against jaxdl.

Attribute names (hence `state_dict()` keys) are the projects' own, so a checkpoint they saved
loads here with `strict=True` and maps onto jaxdl's Flax models (`jaxdl.interop.torch_checkpoint`):

- ESC-50 `ESC50CNN2D` (hannahadd): `block{1,2,3}.{0: conv, 1: bn}`, `fc`.
- Tiny ImageNet `InceptionTinyNet` (riadh-lab-ux): `stem.0`, `features.{i}.branch1.0`,
  `.branch2.0`, `.branch3.1`, `.bn` (a 2×2 pool takes an index after modules 2 and 4), `classifier`.
- CUB-200 (valentinedum): one flat `nn.Sequential`, every Conv/BN/ReLU/pool its own index, with
  the block count and groups as hyper-parameters (its stored `build_model` hard-codes 2 and 2) and
  ReLU layers present (`activation: relu` in its config); the last index is `Linear(256 → classes)`.
- CelebA `CNNMultiLabel` (ahmedbta): `block{1,2,3}.{0: conv, 1: bn}`, `head.1` (after Dropout).

Layers use torch's defaults (BatchNorm eps 1e-5, momentum 0.1; floor-mode pooling). Importing
this module needs torch.
"""

from collections.abc import Sequence

import torch
from torch import nn

ESC50_IN_CHANNELS = 1  # one log-mel spectrogram channel per clip
TINY_STEM_CHANNELS = 64  # the stem is a bias-free 3×3 conv from RGB to 64 channels
TINY_MODULE_CHANNELS = 192  # the project asserts its three branch widths sum to 192
TINY_NUM_MODULES = (4, 6)  # the project asserts num_modules is 4 or 6
CUB200_WIDTHS = (64, 128, 256)  # the project's `hidden_sizes`: stem and stage 1, 2, 3 widths
CELEBA_WIDTHS = (64, 128)  # fixed widths of the first two blocks; the third is a hyper-parameter


def esc50_padding(kernel_size: int) -> int:
    """The ESC-50 project pads 1 for a 3×3 kernel and 2 for anything else (its grid: 3 and 5)."""
    return 1 if kernel_size == 3 else 2


def tiny_pool_after(module: int, num_modules: int) -> bool:
    """Tiny ImageNet halves the map after module 2 (1-indexed), and after module 4 when M = 6."""
    return module == 2 or (module == 4 and num_modules == 6)


def _conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    padding: int = 1,
    groups: int = 1,
    inplace: bool = False,
) -> list[nn.Module]:
    """Conv k×k (stride 1, with bias) → BatchNorm2d → ReLU (in place where the project's is)."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, groups=groups),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=inplace),
    ]


class ESC50CNN2D(nn.Module):
    """ESC-50: 3 × [Conv k×k → BN → ReLU (→ MaxPool 2×2 on blocks 1–2)] → GAP → Linear.
    Input (B, 1, n_mels, T): (B, 1, 64, 501) in the reference."""

    def __init__(
        self,
        num_classes: int = 50,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 5,
        in_channels: int = ESC50_IN_CHANNELS,
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        conv = dict(kernel_size=kernel_size, padding=esc50_padding(kernel_size), inplace=True)
        self.block1 = nn.Sequential(*_conv_bn_relu(in_channels, c1, **conv), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_bn_relu(c1, c2, **conv), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_bn_relu(c2, c3, **conv))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


class InceptionLikeModule(nn.Module):
    """Three branches [Conv1×1 → ReLU | Conv3×3 pad 1 → ReLU | MaxPool3×3 s1 p1 → Conv1×1 → ReLU],
    bias-free convs, concatenated on channels → BatchNorm (no ReLU after it)."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        width_1x1, width_3x3, width_pool = widths
        self.branch1 = nn.Sequential(
            nn.Conv2d(in_channels, width_1x1, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.branch2 = nn.Sequential(
            nn.Conv2d(in_channels, width_3x3, 3, padding=1, bias=False), nn.ReLU(inplace=True)
        )
        self.branch3 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(in_channels, width_pool, 1, bias=False),
            nn.ReLU(inplace=True),
        )
        self.bn = nn.BatchNorm2d(width_1x1 + width_3x3 + width_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1))


class InceptionTinyNet(nn.Module):
    """Tiny ImageNet: stem Conv3×3(64, no bias) → ReLU; `num_modules` (4 or 6) Inception-like
    modules of 192 channels, a 2×2 max-pool after module 2 and, when M = 6, after module 4
    (64×64 → 32×32 → 16×16); GAP → Linear(192 → classes). Input (B, 3, 64, 64)."""

    def __init__(
        self,
        num_classes: int = 200,
        num_modules: int = 6,
        branch_channels: Sequence[int] = (64, 64, 64),
    ) -> None:
        super().__init__()
        if num_modules not in TINY_NUM_MODULES:
            raise ValueError(f"num_modules={num_modules}: the reference builds {TINY_NUM_MODULES}")
        if len(branch_channels) != 3 or sum(branch_channels) != TINY_MODULE_CHANNELS:
            raise ValueError(
                f"branch_channels={tuple(branch_channels)} must be 3 widths summing "
                f"to {TINY_MODULE_CHANNELS}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(3, TINY_STEM_CHANNELS, 3, padding=1, bias=False), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        in_channels = TINY_STEM_CHANNELS
        for module in range(1, num_modules + 1):
            layers.append(InceptionLikeModule(in_channels, branch_channels))
            in_channels = TINY_MODULE_CHANNELS
            if tiny_pool_after(module, num_modules):
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(TINY_MODULE_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.gap(self.features(self.stem(x))), 1))


class Cub200GroupedCNN(nn.Sequential):
    """CUB-200: stem Conv3×3(3 → 64) → BN → ReLU; 3 stages at `widths`, each `num_blocks` blocks
    [Conv3×3 → BN → ReLU → Conv3×3(groups) → BN → ReLU], the first block of stages 2 and 3
    widening; a 2×2 max-pool after stages 1 and 2; GAP → Flatten → Linear. Every conv has a bias
    and padding 1. Input (B, 3, 224, 224)."""

    def __init__(
        self,
        num_classes: int = 200,
        num_blocks: int = 3,
        groups: int = 4,
        widths: Sequence[int] = CUB200_WIDTHS,
    ) -> None:
        if any(width % groups for width in widths):
            raise ValueError(f"groups={groups} must divide every stage width {tuple(widths)}")
        stage1, stage2, stage3 = widths
        layers = _conv_bn_relu(3, stage1)
        in_channels = stage1
        for width, pool in ((stage1, True), (stage2, True), (stage3, False)):
            for _ in range(num_blocks):
                layers += _conv_bn_relu(in_channels, width)
                layers += _conv_bn_relu(width, width, groups=groups)
                in_channels = width
            if pool:
                layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(stage3, num_classes)]
        super().__init__(*layers)


class CNNMultiLabel(nn.Module):
    """CelebA: [Conv3×3(64) → BN → ReLU → pool2] → [Conv3×3(128) → BN → ReLU → pool2] →
    [Conv3×3(channels_block3) → BN → ReLU → GAP] → Dropout → Linear, one logit per attribute.
    Input (B, 3, 64, 64)."""

    def __init__(
        self, num_classes: int = 5, channels_block3: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__()
        c1, c2 = CELEBA_WIDTHS
        self.block1 = nn.Sequential(*_conv_bn_relu(3, c1), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_bn_relu(c1, c2), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_bn_relu(c2, channels_block3), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels_block3, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.block3(self.block2(self.block1(x))), 1))


# jaxdl model name (jaxdl.models.MODELS) -> the reference module taking the same hyper-parameters
TORCH_MODELS: dict[str, type[nn.Module]] = {
    "esc50_cnn": ESC50CNN2D,
    "tiny_imagenet_inception": InceptionTinyNet,
    "cub200_grouped": Cub200GroupedCNN,
    "celeba_cnn": CNNMultiLabel,
}
