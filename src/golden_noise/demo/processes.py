"""The demo's held-out evaluation as several accelerate processes.

The toy's tiny tensors leave a second torch thread half idle: on this project's 2-core CPU,
two processes of one thread each generate 1.15-1.26x the images per second of one process with
two threads (`benchmarks/demo_processes.py`). The processes are started with `accelerate
launch --multi_gpu` (on CPU the only launch that really starts N ranks, see
`golden_noise.core.distributed`) and rebuild the stage from the run's folder: its
`demo_config.json`, the teacher choice and `npnet/`. Every process writes whole generation
batches (`golden_noise.evaluation.evaluate`), so the images are those of an in-process evaluation.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError


@dataclass(frozen=True)
class EvaluationProcesses:
    """`count` processes of `threads` torch threads each, on the toy pipeline at `pipeline`
    (None: the shipped one, which also brings the shipped NPNet's arm)."""

    count: int
    threads: int = 1
    pipeline: Path | None = None


def evaluate_in_processes(out: Path, processes: EvaluationProcesses, progress: bool) -> dict:
    """Run the demo's evaluation stage in `processes`; returns its statistics."""
    from golden_noise.demo.config import CONFIG_NAME
    from golden_noise.demo.stages import TEACHER_CHOICE, load_json
    from golden_noise.evaluation.report.writer import METRICS_NAME

    for needed in (CONFIG_NAME, f"validation/{TEACHER_CHOICE}", "npnet/config.json"):
        if not (out / needed).is_file():
            raise GoldenNoiseError(
                f"expected {out / needed} from the demo's earlier stages before its evaluation"
            )

    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", str(processes.count), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), "-m", __name__, str(out),
        "--threads", str(processes.threads),
    ]  # fmt: skip
    if processes.pipeline is not None:
        command += ["--pipeline", str(processes.pipeline)]
    if not progress:
        command.append("--no-progress")
    env = {**os.environ, "OMP_NUM_THREADS": str(processes.threads), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise GoldenNoiseError(
            f"the {processes.count} evaluation processes failed (exit {done.returncode}; their "
            "messages are above); re-run to resume, or with --processes 1 to evaluate in this "
            "process"
        )
    return load_json(out / "report" / METRICS_NAME)["summary"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """One evaluation process (started by `evaluate_in_processes`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pipeline", type=Path, default=None)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    import torch

    from golden_noise.core.distributed import finish, make_accelerator
    from golden_noise.core.progress import quiet_libraries
    from golden_noise.demo.config import CONFIG_NAME, DemoConfig
    from golden_noise.demo.stages import TEACHER_CHOICE, evaluate_stage, load_json
    from golden_noise.toy import load_npnet, load_pipeline

    torch.set_num_threads(args.threads)
    quiet_libraries()  # a worker is not started through the CLI's command group
    try:
        accelerator = make_accelerator(cpu=True)
        config = DemoConfig.from_dict(load_json(args.out / CONFIG_NAME))
        chosen = load_json(args.out / "validation" / TEACHER_CHOICE)["chosen"]
        pipe = load_pipeline(path=args.pipeline) if args.pipeline else load_pipeline()
        pipe.set_progress_bar_config(disable=True)
        shipped = load_npnet() if args.pipeline is None else None
        evaluate_stage(args.out, config, pipe, chosen, shipped, args.progress, accelerator)
        finish(accelerator)
    except GoldenNoiseError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
