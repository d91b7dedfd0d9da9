"""Why the demo evaluates in two processes: toy-pipeline images per second, one process with
N threads against N concurrent processes of one thread each, measured side by side.

    .venv/bin/python benchmarks/demo_processes.py [--cores 2] [--batches 4] [--batch 64]

Each arm generates the same total number of images (`--batches` x `--batch`, 20 DDIM steps,
CFG 2.0: the demo's sampler) after a warm-up call; the script prints milliseconds per image
for each and their ratio. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def worker(threads: int, batches: int, batch: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from golden_noise.core.progress import quiet_library_bars
    from golden_noise.toy import load_pipeline

    quiet_library_bars()
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a red circle on the left and a blue square on the right"] * batch
    call = {"num_inference_steps": 20, "guidance_scale": 2.0}
    pipe(prompts[:8], generator=torch.Generator().manual_seed(0), **call)  # warm-up
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(batches):
        pipe(prompts, generator=torch.Generator().manual_seed(i), **call)


def timed(processes: int, threads: int, batches: int, batch: int) -> float:
    """Wall seconds for `processes` workers, started together once all are warm."""
    command = [sys.executable, __file__, "--worker", str(threads), str(batches), str(batch)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    workers = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )  # fmt: skip
        for _ in range(processes)
    ]
    for w in workers:
        assert w.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in workers:
        w.wait()
    return time.perf_counter() - start


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*(int(a) for a in sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    images = args.batches * args.batch
    one = timed(1, args.cores, args.batches, args.batch) / images
    per_process = args.batches // args.cores
    many = timed(args.cores, 1, per_process, args.batch) / (per_process * args.cores * args.batch)
    print(f"1 process x {args.cores} threads: {one * 1000:.1f} ms per image")
    print(f"{args.cores} processes x 1 thread: {many * 1000:.1f} ms per image")
    print(f"ratio (images per second, processes / threads): {one / many:.2f}x")


if __name__ == "__main__":
    main()
