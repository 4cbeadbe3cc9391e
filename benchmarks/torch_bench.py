"""Train/eval step throughput of a PyTorch twin, measured like jaxdl's `--mode=bench`.

Same protocol on both sides: random input of the reference shape, the reference optimizer
(torch `Adam(lr=0.02, weight_decay=1e-5)`, coupled L2), cross-entropy, `warmup` untimed steps,
then the median of `steps` timed steps (median, because a 2-core machine has noisy neighbours).
A train step is forward + backward + optimizer step; an eval step is a forward in eval mode under
`torch.inference_mode()`. The result has the keys of jaxdl's bench JSON line, so `run.py` can
put both in one table.

    python benchmarks/torch_bench.py --model esc50 [--json] [--hparams '{"kernel_size": 3}']
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch_models import build_torch_model, count_params, twin_spec


def _median_ms(step: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench_torch(
    model_name: str,
    batch_size: int | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    warmup: int = 3,
    steps: int = 10,
    threads: int = 2,
    **hparams,
) -> dict:
    """Median train and eval step time of twin `model_name` on one random batch.

    `input_shape` (without batch) and `num_classes` default to the twin's reference task
    (ESC-50: (1, 64, 501), 50 classes); `hparams` go to the model (default: final config).
    """
    torch.set_num_threads(threads)
    spec = twin_spec(model_name)
    input_shape = tuple(input_shape or spec.input_shape)
    num_classes = num_classes or spec.num_classes
    batch_size = batch_size or spec.batch_size
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    model = build_torch_model(model_name, num_classes=num_classes, **hparams)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-5)
    x = torch.randn(batch_size, *input_shape, generator=generator)
    if spec.multilabel:  # CelebA: sigmoid BCE on 0/1 targets, as the reference
        loss_fn = nn.BCEWithLogitsLoss()
        y = torch.randint(0, 2, (batch_size, num_classes), generator=generator).float()
    else:
        loss_fn = nn.CrossEntropyLoss()
        y = torch.randint(0, num_classes, (batch_size,), generator=generator)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    def eval_step() -> None:
        with torch.inference_mode():
            model(x)

    model.train()
    train_ms = _median_ms(train_step, warmup, steps)
    model.eval()
    eval_ms = _median_ms(eval_step, warmup, steps)
    return {
        "framework": "torch",
        "model": model_name,
        "batch_size": batch_size,
        "params": count_params(model),
        "train_samples_per_s": batch_size / (train_ms / 1e3),
        "eval_samples_per_s": batch_size / (eval_ms / 1e3),
        "train_step_ms_median": train_ms,
        "eval_step_ms_median": eval_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="esc50")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the model's reference batch"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hparams", type=json.loads, default={}, help="JSON model hparams")
    parser.add_argument("--json", action="store_true", help="print only one JSON line")
    args = parser.parse_args()
    result = bench_torch(
        args.model,
        batch_size=args.batch_size,
        warmup=args.warmup,
        steps=args.steps,
        threads=args.threads,
        **args.hparams,
    )
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>22}: {value:.2f}" if isinstance(value, float) else f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
