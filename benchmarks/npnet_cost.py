"""NPNet's cost as released: parameters per branch and CPU forward time at 128x128.

Times are medians of `--runs` forwards (float32, batch 1, after warm-up), each branch timed
alone in the same run as the whole net, so the printed shares are side-by-side ratios.

    .venv/bin/python benchmarks/npnet_cost.py [--family sdxl|hunyuan] [--runs 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from golden_noise import NPNet, NPNetConfig

TEXT_DIMS = {"sdxl": 2048, "hunyuan": 1024}


def median_seconds(step: Callable[[], object], runs: int, label: str) -> float:
    step()  # warm-up: allocator, lazy kernels
    times = []
    for _ in track(range(runs), description=f"timing {label}", transient=True):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(TEXT_DIMS), default="sdxl")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    net = NPNet(NPNetConfig(text_dim=TEXT_DIMS[args.family], family=args.family)).eval()
    x = torch.randn(1, 4, 128, 128)
    c = torch.randn(1, 77, TEXT_DIMS[args.family])
    with torch.no_grad():
        t = net.text(x, c)
        parts = {
            "text injection (AdaGroupNorm)": (net.text, lambda: net.text(x, c)),
            "SVD branch": (net.svd, lambda: net.svd(x)),
            "residual branch (Swin-T)": (net.residual, lambda: net.residual(x + t)),
            "whole NPNet": (net, lambda: net(x, c)),
        }
        timed = {
            name: (
                sum(p.numel() for p in module.parameters()),
                median_seconds(step, args.runs, name),
            )
            for name, (module, step) in parts.items()
        }
    total_params, total_time = timed["whole NPNet"]
    table = Table(
        title=f"NPNet ({args.family}, 77x{TEXT_DIMS[args.family]}) at 4x128x128, float32, "
        f"batch 1, {args.threads} thread(s), median of {args.runs}"
    )
    for column in ("part", "parameters", "share", "forward ms", "share of forward"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, (params, seconds) in timed.items():
        table.add_row(
            name,
            f"{params / 1e6:.3f}M",
            f"{params / total_params:.1%}",
            f"{seconds * 1e3:.1f}",
            f"{seconds / total_time:.1%}",
        )
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
