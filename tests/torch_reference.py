"""Reference PyTorch models as a trained one looks to a parity test: every BatchNorm's affine
parameters and running statistics away from their initial values (import only where torch is)."""

import torch


def with_random_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in eval mode, its BatchNorm γ, β, running mean and variance drawn at random (from
    torch's global generator: seed it first)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1000)
    return model.eval()
