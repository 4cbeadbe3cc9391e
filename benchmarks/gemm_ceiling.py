"""This machine's float32 GEMM throughput: the yardstick for "share of the matmul ceiling".

Convolutions are lowered to matrix multiplies on CPU, so a dense 2048×2048 float32 matmul is
what the hardware + BLAS can do at best; a model's samples/s × FLOPs per sample divided by this
figure says how much of it a framework actually uses. Measured with numpy (OpenBLAS) and torch
(MKL/oneDNN), median over repeats; the ceiling is the faster of the two.

    python benchmarks/gemm_ceiling.py [--n 2048] [--repeats 10] [--threads 2] [--json]
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def _median_gflops(matmul: Callable[[], object], n: int, repeats: int) -> float:
    matmul()  # warm-up: thread pool start, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def gemm_ceiling(n: int = 2048, repeats: int = 10, threads: int = 2) -> dict:
    """float32 n×n @ n×n GFLOP/s with numpy and with torch (`threads` torch threads; numpy's
    BLAS uses its own default, all cores)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    numpy_gflops = _median_gflops(lambda: a @ b, n, repeats)
    torch_gflops = _median_gflops(lambda: ta @ tb, n, repeats)
    return {
        "n": n,
        "numpy_gflops": numpy_gflops,
        "torch_gflops": torch_gflops,
        "ceiling_gflops": max(numpy_gflops, torch_gflops),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only one JSON line")
    args = parser.parse_args()
    result = gemm_ceiling(args.n, args.repeats, args.threads)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>15}: {value:.1f}" if isinstance(value, float) else f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
