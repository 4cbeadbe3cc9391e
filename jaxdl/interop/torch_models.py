"""The four reference projects' PyTorch models, with the reference repositories' module names.

Attribute names (hence `state_dict()` keys) follow each project's `src/model.py`, so a checkpoint
they saved loads here with `strict=True` and maps onto jaxdl's Flax models
(`jaxdl.interop.torch_checkpoint`); `benchmarks/` times them against jaxdl. Keys, per project:

- ESC-50 `ESC50CNN2D` (hannahadd): `block{1,2,3}.{0: conv, 1: bn}`, `fc`.
- Tiny ImageNet `InceptionTinyNet` (riadh-lab-ux): `stem.0`, `features.{i}.branch1.0`,
  `.branch2.0`, `.branch3.1`, `.bn` (a 2×2 pool takes an index after modules 2 and 4), `classifier`.
- CUB-200 (valentinedum): one flat `nn.Sequential`, every Conv/BN/ReLU/pool its own index.
  Derived from the stored `build_model` (which hard-codes 2 blocks and 2 groups) with `num_blocks`
  and `groups` from the config, as its grid search passes them, and ReLU layers present
  (`activation: relu` in its config); the last index is `Linear(256 → classes)`.
- CelebA `CNNMultiLabel` (ahmedbta): `block{1,2,3}.{0: conv, 1: bn}`, `head.1` (after Dropout).

Importing this module needs torch.
"""

from collections.abc import Sequence

import torch
from torch import nn

from jaxdl.models.tiny_imagenet_net import MODULE_CHANNELS, POOL_AFTER_MODULES

CUB200_WIDTHS = (64, 128, 256)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3,
                  groups: int = 1) -> list[nn.Module]:
    """Conv(k×k, padding k//2, bias) → BatchNorm2d → ReLU, torch defaults (eps 1e-5)."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      groups=groups),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class ESC50CNN2D(nn.Module):
    """ESC-50: 3 × [Conv k×k → BN → ReLU (→ MaxPool 2 on blocks 1–2)] → GAP → Linear.
    Input (B, 1, n_mels, T)."""

    def __init__(self, num_classes: int = 50, channels: Sequence[int] = (32, 64, 128),
                 kernel_size: int = 5, in_channels: int = 1) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.block1 = nn.Sequential(*_conv_bn_relu(in_channels, c1, kernel_size), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_bn_relu(c1, c2, kernel_size), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_bn_relu(c2, c3, kernel_size))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


class InceptionLikeModule(nn.Module):
    """[Conv1×1 → ReLU | Conv3×3 → ReLU | MaxPool3×3 s1 → Conv1×1 → ReLU], bias-free convs,
    concatenated → BatchNorm (no ReLU after it)."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        width_1x1, width_3x3, width_pool = widths
        self.branch1 = nn.Sequential(nn.Conv2d(in_channels, width_1x1, 1, bias=False),
                                     nn.ReLU(inplace=True))
        self.branch2 = nn.Sequential(nn.Conv2d(in_channels, width_3x3, 3, padding=1, bias=False),
                                     nn.ReLU(inplace=True))
        self.branch3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     nn.Conv2d(in_channels, width_pool, 1, bias=False),
                                     nn.ReLU(inplace=True))
        self.bn = nn.BatchNorm2d(sum(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1))


class InceptionTinyNet(nn.Module):
    """Tiny ImageNet: stem Conv3×3(64, no bias) → ReLU; `num_modules` Inception-like modules of
    192 channels, a 2×2 max-pool after modules 2 and 4 when a module follows; GAP → Linear.
    Input (B, 3, 64, 64)."""

    def __init__(self, num_classes: int = 200, num_modules: int = 6,
                 branch_channels: Sequence[int] = (64, 64, 64)) -> None:
        super().__init__()
        if len(branch_channels) != 3 or sum(branch_channels) != MODULE_CHANNELS:
            raise ValueError(f"branch_channels={tuple(branch_channels)} must be 3 widths summing "
                             f"to {MODULE_CHANNELS}")
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        in_channels = 64
        for module in range(1, num_modules + 1):
            layers.append(InceptionLikeModule(in_channels, branch_channels))
            in_channels = MODULE_CHANNELS
            if module in POOL_AFTER_MODULES and module < num_modules:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(MODULE_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.gap(self.features(self.stem(x))), 1))


class Cub200GroupedCNN(nn.Sequential):
    """CUB-200: stem Conv3×3(64) → BN → ReLU; stages at `widths` of `num_blocks` blocks
    [Conv3×3 → BN → ReLU → Conv3×3(groups) → BN → ReLU], a 2×2 max-pool after every stage but
    the last; GAP → Flatten → Linear. Input (B, 3, 224, 224)."""

    def __init__(self, num_classes: int = 200, num_blocks: int = 3, groups: int = 4,
                 widths: Sequence[int] = CUB200_WIDTHS) -> None:
        if any(width % groups for width in widths):
            raise ValueError(f"groups={groups} must divide every stage width {tuple(widths)}")
        layers = _conv_bn_relu(3, widths[0])
        in_channels = widths[0]
        for stage, width in enumerate(widths):
            for _ in range(num_blocks):
                layers += _conv_bn_relu(in_channels, width)
                layers += _conv_bn_relu(width, width, groups=groups)
                in_channels = width
            if stage < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
        super().__init__(*layers)


class CNNMultiLabel(nn.Module):
    """CelebA: [Conv3×3(64) → BN → ReLU → pool2] → [Conv3×3(128) → BN → ReLU → pool2] →
    [Conv3×3(channels_block3) → BN → ReLU → GAP] → Dropout → Linear, one logit per attribute.
    Input (B, 3, 64, 64)."""

    def __init__(self, num_classes: int = 5, channels_block3: int = 256,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.block1 = nn.Sequential(*_conv_bn_relu(3, 64), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_bn_relu(64, 128), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_bn_relu(128, channels_block3), nn.AdaptiveAvgPool2d(1))
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
