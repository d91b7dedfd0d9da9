"""One way to start accelerate for golden-noise's multi-process jobs, refusing silent traps.

Two known traps duplicate work instead of splitting it (FIELD-NOTES): `accelerate launch --cpu
--num_processes N` starts ONE process, and ranks launched without `Accelerator(cpu=True)` on
a machine without GPUs each believe they are alone. We pick `cpu=True` when the launcher
asked for several processes and no GPU exists, and refuse when the group is still smaller
than what was launched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golden_noise.errors import GoldenNoiseError

if TYPE_CHECKING:
    from accelerate import Accelerator


def _launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _parent_requested_cpu_processes() -> int:
    """Processes asked of a parent `accelerate launch --cpu`, read from /proc (Linux)."""
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return 1
    args = [a.decode(errors="replace") for a in argv if a]
    launcher = any(a == "launch" or a.endswith("accelerate.commands.launch") for a in args)
    if not launcher or "--cpu" not in args:
        return 1
    for flag in ("--num_processes", "--num-processes"):
        if flag in args[:-1]:
            value = args[args.index(flag) + 1]
            return int(value) if value.isdigit() else 1
    return 1


def make_accelerator(*, cpu: bool = False, **kwargs: Any) -> Accelerator:
    """An `accelerate.Accelerator` that is really as distributed as it was launched to be."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    requested_cpu = _parent_requested_cpu_processes()
    if requested_cpu > 1:
        raise GoldenNoiseError(
            f"`accelerate launch --cpu --num_processes {requested_cpu}` starts only ONE process "
            "(an accelerate quirk), so the work would not be split; on CPU use "
            f"`accelerate launch --multi_gpu --num_processes {requested_cpu}` or torchrun"
        )
    world = _launched_world_size()
    use_cpu = cpu or (world > 1 and not torch.cuda.is_available())
    # accelerate keeps per-run settings (mixed precision, accumulation) in process-wide
    # singletons that refuse a second run with other settings; the process group (in
    # PartialState) is kept, only the per-run part is cleared.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=use_cpu, **kwargs)
    if world > 1 and accelerator.num_processes != world:
        raise GoldenNoiseError(
            f"launched {world} processes but accelerate formed a group of "
            f"{accelerator.num_processes}; every rank would duplicate the whole job. Launch with "
            "`accelerate launch --multi_gpu` (GPUs or CPU) or torchrun"
        )
    return accelerator
