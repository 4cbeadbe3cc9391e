"""PyTorch twins of jaxdl's reference models, for the speed comparison in `run.py`.

Each twin copies the reference project's `nn.Module` layer for layer (torch semantics, torch
default init) so that jaxdl and torch time the *same* network: `run.py` checks that both sides
report the same parameter count. Twins are registered by task name (`esc50`,
`tiny_imagenet`, `cub200`, `celeba`) with their reference input shape, class count, batch size
and whether the task is multi-label (sigmoid BCE per output instead of softmax cross-entropy).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


class ESC50CNN2D(nn.Module):
    """ESC-50 reference CNN: 3 × (Conv k×k, pad k//2, bias → BN → ReLU), 2×2 max-pool after
    blocks 1–2, global average pool, Linear(c3 → num_classes). Input (B, 1, 64, 501)."""

    def __init__(
        self, num_classes: int = 50, channels: Sequence[int] = (32, 64, 128), kernel_size: int = 5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for block, width in enumerate(channels):
            layers += [
                nn.Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2, bias=True),
                nn.BatchNorm2d(width, eps=1e-5, momentum=0.1),
                nn.ReLU(inplace=True),
            ]
            if block < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class InceptionModule(nn.Module):
    """Three branches [Conv1×1 → ReLU | Conv3×3 → ReLU | MaxPool3×3 s1 → Conv1×1 → ReLU],
    all convs bias-free, concatenated to sum(widths) channels → BatchNorm (no ReLU after)."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        width_1x1, width_3x3, width_pool = widths
        self.branch1x1 = nn.Sequential(
            nn.Conv2d(in_channels, width_1x1, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.branch3x3 = nn.Sequential(
            nn.Conv2d(in_channels, width_3x3, 3, padding=1, bias=False), nn.ReLU(inplace=True)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(in_channels, width_pool, 1, bias=False),
            nn.ReLU(inplace=True),
        )
        self.bn = nn.BatchNorm2d(sum(widths), eps=1e-5, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(
            torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch_pool(x)], dim=1)
        )


class InceptionTinyNet(nn.Module):
    """Tiny ImageNet reference CNN: stem Conv3×3(3→64, no bias) → ReLU; `num_modules` Inception
    modules to 192 channels; 2×2 max-pool after modules 2 and 4 when a module follows;
    GAP → Linear(192 → num_classes). Input (B, 3, 64, 64)."""

    def __init__(
        self,
        num_classes: int = 200,
        num_modules: int = 6,
        branch_channels: Sequence[int] = (64, 64, 64),
    ) -> None:
        super().__init__()
        if len(branch_channels) != 3 or sum(branch_channels) != 192:
            raise ValueError(
                f"branch_channels={tuple(branch_channels)} must be 3 widths summing to 192"
            )
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
        ]
        in_channels = 64
        for module in range(num_modules):
            layers.append(InceptionModule(in_channels, branch_channels))
            in_channels = sum(branch_channels)
            if module + 1 in (2, 4) and module + 1 < num_modules:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _conv_bn_relu(in_channels: int, out_channels: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, groups=groups, bias=True),
        nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1),
        nn.ReLU(inplace=True),
    ]


class Cub200GroupedCNN(nn.Module):
    """CUB-200 reference CNN: stem Conv3×3(3→64) → BN → ReLU; stages at `widths`, each of
    `num_blocks` blocks [Conv3×3(in→out) → BN → ReLU → Conv3×3(out→out, groups) → BN → ReLU];
    2×2 max-pool after every stage but the last; GAP → Linear(256 → num_classes). All convs have
    a bias. Input (B, 3, 224, 224)."""

    def __init__(
        self,
        num_classes: int = 200,
        num_blocks: int = 3,
        groups: int = 4,
        widths: Sequence[int] = (64, 128, 256),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = _conv_bn_relu(3, widths[0])
        in_channels = widths[0]
        for stage, width in enumerate(widths):
            for _ in range(num_blocks):
                layers += _conv_bn_relu(in_channels, width)
                layers += _conv_bn_relu(width, width, groups=groups)
                in_channels = width
            if stage < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class CNNMultiLabel(nn.Module):
    """CelebA reference CNN: [Conv3×3(3→64) → BN → ReLU → pool2] → [Conv3×3(64→128) → BN → ReLU
    → pool2] → [Conv3×3(128→channels_block3) → BN → ReLU] → GAP → Dropout → Linear(→ num_classes)
    logits, one per binary attribute (multi-label). Input (B, 3, 64, 64)."""

    def __init__(
        self, num_classes: int = 5, channels_block3: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__()
        widths = (64, 128, channels_block3)
        layers: list[nn.Module] = []
        in_channels = 3
        for block, width in enumerate(widths):
            layers += _conv_bn_relu(in_channels, width)
            if block < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))


@dataclass(frozen=True)
class TwinSpec:
    """How to build a twin, and the reference input it is benchmarked on (without batch)."""

    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    batch_size: int = 64  # the reference final config's training batch
    multilabel: bool = False  # True: one sigmoid/BCE-with-logits per output, targets in {0, 1}


TWINS: dict[str, TwinSpec] = {
    "esc50": TwinSpec(ESC50CNN2D, input_shape=(1, 64, 501), num_classes=50, batch_size=64),
    "tiny_imagenet": TwinSpec(
        InceptionTinyNet, input_shape=(3, 64, 64), num_classes=200, batch_size=32
    ),
    "cub200": TwinSpec(
        Cub200GroupedCNN, input_shape=(3, 224, 224), num_classes=200, batch_size=32
    ),
    "celeba": TwinSpec(
        CNNMultiLabel, input_shape=(3, 64, 64), num_classes=5, batch_size=64, multilabel=True
    ),
}


def twin_spec(name: str) -> TwinSpec:
    if name not in TWINS:
        raise KeyError(f"unknown torch twin {name!r}; registered: {sorted(TWINS)}")
    return TWINS[name]


def build_torch_model(name: str, **hparams) -> nn.Module:
    """The twin `name` with its hyper-parameters (defaults: the reference final config)."""
    spec = twin_spec(name)
    hparams.setdefault("num_classes", spec.num_classes)
    return spec.build(**hparams)


def count_params(model: nn.Module) -> int:
    """Trainable parameters, as the reference `count_parameters` (BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(name: str, **hparams) -> int:
    """Forward FLOPs per sample = 2 × MACs of every Conv2d and Linear (BN, ReLU, pooling and
    bias adds ignored: they are < 1 % here and not matmul work).

    Counted from each layer's real output shape in one forward of a fresh twin on the `meta`
    device, so it costs nothing and holds for any twin (grouped convs included) without
    hand-written formulas.
    """
    macs = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    with torch.device("meta"):
        model = build_torch_model(name, **hparams).eval()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty(1, *twin_spec(name).input_shape, device="meta"))
    return 2 * macs
