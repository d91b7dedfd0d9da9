"""What a run must remember to resume on the same trajectory, and where it writes it.

`accelerator.save_state` stores model, optimizer, LR scheduler and RNG states; `TrainProgress`
(registered for checkpointing) adds the position in the data (epoch, batches consumed) and the
metrics history. Checkpoints are written under a temp name and renamed when complete, so a
kill at any moment leaves the previous checkpoint intact and resumable.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from golden_noise.atomic import TEMP_PREFIX, atomic_write_json, atomic_write_text

CHECKPOINTS = "checkpoints"
_STEP = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainProgress:
    """Where the run stands; a plain object accelerate checkpoints with the rest."""

    epoch: int = 0
    batches_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    best_val_loss: float = float("inf")
    mean_residual: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class EpochShuffleSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch), so a resumed run sees the same order."""

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS / f"step-{step:08d}"


def staging_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS / f"{TEMP_PREFIX}step-{step:08d}"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (staging folders of a killed save are not)."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.iterdir() if _STEP.match(p.name))
    return done[-1] if done else None


def prune_checkpoints(out: Path, keep: int) -> None:
    folder = out / CHECKPOINTS
    done = sorted(p for p in folder.iterdir() if _STEP.match(p.name))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(f"{TEMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the checkpointed history (no duplicates
    after a resume, no half lines after a kill)."""
    import json

    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
    if history:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(out / "metrics.csv", buffer.getvalue())


def write_run_config(out: Path, data: dict[str, Any]) -> None:
    atomic_write_json(out / "train_config.json", data)
