"""The one place golden-noise starts accelerate, and the guards against its silent traps.

Two launches duplicate work instead of splitting it, and neither warns:
- `accelerate launch --cpu --num_processes N` starts ONE process: its simple launcher runs the
  script once and tells it only `ACCELERATE_USE_CPU=True`, nothing about N. The only place N
  is written is the launcher's own command line, so we read that, but only the arguments
  before the script: `golden-noise collect ... --cpu` also has a `--cpu` of its own.
- Ranks started by torchrun or `--multi_gpu` on a machine without GPUs each form a group of 1
  unless `Accelerator(cpu=True)`: we pass `cpu=True` there, and refuse when the group is still
  smaller than the `WORLD_SIZE` the launcher exported.

accelerate fixes mixed precision for the whole process in `AcceleratorState` and offers no
public way to change it, so a second run in one process (the demo's study, the tests) clears
that per-run state first; the process group (`PartialState`) is kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golden_noise.core.errors import GoldenNoiseError

if TYPE_CHECKING:
    from accelerate import Accelerator


def launcher_cpu_processes(launcher_argv: list[str], script: str) -> int:
    """Processes an `accelerate launch --cpu` asked for, from its arguments before `script`."""
    name = Path(script).name
    at = next((i for i, arg in enumerate(launcher_argv) if Path(arg).name == name), 0)
    own = launcher_argv[:at]
    if "--cpu" not in own:
        return 1
    for flag in ("--num_processes", "--num-processes"):
        if flag in own[:-1]:
            value = own[own.index(flag) + 1]
            return int(value) if value.isdigit() else 1
    return 1


def _parent_argv() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw if a]


def make_accelerator(*, cpu: bool = False, **kwargs: Any) -> Accelerator:
    """An `accelerate.Accelerator` that is really as distributed as it was launched to be."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        asked = launcher_cpu_processes(_parent_argv(), sys.argv[0])
        if asked > 1:
            raise GoldenNoiseError(
                f"`accelerate launch --cpu --num_processes {asked}` starts only ONE process "
                "(an accelerate quirk), so the work would not be split; on CPU use "
                f"`accelerate launch --multi_gpu --num_processes {asked}` or torchrun"
            )
    use_cpu = cpu or (world > 1 and not torch.cuda.is_available())
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=use_cpu, **kwargs)
    if world > 1 and accelerator.num_processes != world:
        raise GoldenNoiseError(
            f"launched {world} processes but accelerate formed a group of "
            f"{accelerator.num_processes}; every rank would duplicate the whole job. Launch with "
            "`accelerate launch --multi_gpu` (GPUs or CPU) or torchrun"
        )
    return accelerator


def finish(accelerator: Accelerator) -> None:
    """End a distributed command: every rank waits for the others, then leaves the process
    group. A rank that exits while another still works (the main one writing a report) can
    abort in gloo's teardown ("terminate called without an active exception", SIGABRT), which
    fails a finished run; seen once in CI under `golden-noise evaluate` on 2 CPU processes."""
    accelerator.wait_for_everyone()
    accelerator.end_training()
