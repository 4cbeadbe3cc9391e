"""PyTorch twins of jaxdl's reference models, for the speed comparison in `run.py`.

The twins are the reference projects' own architectures (`jaxdl.interop.torch_models`, the same
modules a reference checkpoint is imported through), so jaxdl and torch time the *same* network:
`run.py` checks that both sides report the same parameter count. Twins are registered by task
name (`esc50`, `tiny_imagenet`, `cub200`, `celeba`) with their reference input shape, class count,
batch size and whether the task is multi-label (sigmoid BCE per output instead of softmax
cross-entropy).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from jaxdl.interop.torch_models import (
    ESC50CNN2D,
    CNNMultiLabel,
    Cub200GroupedCNN,
    InceptionTinyNet,
)


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
    "cub200": TwinSpec(Cub200GroupedCNN, input_shape=(3, 224, 224), num_classes=200, batch_size=32),
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
