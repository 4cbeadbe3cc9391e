"""PyTorch twins of jaxdl's reference models, for the speed comparison in `run.py`.

Each twin copies the reference project's `nn.Module` layer for layer (torch semantics, torch
default init) so that jaxdl and torch time the *same* network: `run.py` checks that both sides
report the same parameter count. Twins are registered by task name (`esc50`, later
`tiny_imagenet`, `cub200`, `celeba`) with their reference input shape and class count.
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


@dataclass(frozen=True)
class TwinSpec:
    """How to build a twin, and the reference input it is benchmarked on (without batch)."""

    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int


TWINS: dict[str, TwinSpec] = {
    "esc50": TwinSpec(ESC50CNN2D, input_shape=(1, 64, 501), num_classes=50),
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
