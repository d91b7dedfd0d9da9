"""What a run must remember to resume on the same trajectory, and where it keeps it.

Checkpoints are accelerate's own: `ProjectConfiguration(automatic_checkpoint_naming=True,
total_limit=...)` names them `checkpoints/checkpoint_<i>` and prunes the oldest, and
`save_state` writes the model (safetensors), optimizer, LR scheduler and RNG states, which
`load_state` reads back with `weights_only=True`. Our own progress (position in the data,
metrics history, best loss) is deliberately NOT registered with `register_for_checkpointing`:
accelerate reads registered objects back with full unpickling, so a file planted in a run
folder would run code on resume. It is written as `progress.json` + `progress.safetensors`
after `save_state` and the metrics files; `progress.json` goes last and atomically, so it
marks a complete checkpoint. The run records which save it starts (save_started.json): that
save, killed before its progress.json, is never resumed and is deleted on the next start;
nothing else under checkpoints/ is. On resume `check_progress` holds that record against the
run's schedule, its metrics and its LR scheduler, since the record decides which epochs are
still to train.
progress.json also records the SHA-256 of every other file in its checkpoint, and
`check_checkpoint_files` holds them against it before anything is loaded: a flipped bit in
the weights or optimizer state loads without complaint and silently changes the run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from golden_noise.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.file_digests import file_sha256, folder_sha256s
from golden_noise.core.settings_record import RUN_CONFIG, changed_settings
from golden_noise.core.text_lines import text_lines

CHECKPOINTS = "checkpoints"
PROGRESS_JSON = "progress.json"
PROGRESS_TENSORS = "progress.safetensors"
METRICS_JSONL = "metrics.jsonl"
FILE_DIGESTS = "files_sha256"
SAVE_STARTED = "save_started.json"
_NUMBERED = re.compile(r"^checkpoint_(\d+)$")


@dataclass
class TrainProgress:
    """Where the run stands; saved beside each accelerate checkpoint as JSON + safetensors."""

    epoch: int = 0
    batches_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    best_val_loss: float | None = None
    mean_residual: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        """Tensors first, then the JSON that marks the checkpoint complete and records the
        digests of every file in it (call once every process's files are written)."""
        from safetensors.torch import save

        if self.mean_residual is not None:
            tensors = {"mean_residual": self.mean_residual.contiguous()}
            atomic_write_bytes(folder / PROGRESS_TENSORS, save(tensors))
        scalars = {k: v for k, v in asdict(self).items() if k != "mean_residual"}
        scalars[FILE_DIGESTS] = checkpoint_digests(folder)
        # unsorted: history rows keep their column order, metrics.csv's header after a resume
        atomic_write_json(folder / PROGRESS_JSON, scalars, sort_keys=False)

    @classmethod
    def load(cls, folder: Path) -> TrainProgress:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        data = _read_record(folder)
        try:
            known = {f.name for f in fields(cls)} - {"mean_residual"}
            progress = cls(**{k: v for k, v in data.items() if k in known})
            if (folder / PROGRESS_TENSORS).is_file():
                progress.mean_residual = load_file(folder / PROGRESS_TENSORS)["mean_residual"]
        except (OSError, ValueError, TypeError, KeyError, SafetensorError) as exc:
            raise _unreadable(folder, exc) from exc
        return progress


def _read_record(folder: Path) -> dict[str, Any]:
    """The JSON object in a checkpoint's progress.json."""
    try:
        data = json.loads((folder / PROGRESS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _unreadable(folder, exc) from exc
    if not isinstance(data, dict):
        raise _unreadable(folder, f"expected a JSON object, got {type(data).__name__}")
    return data


def _unreadable(folder: Path, why: object) -> GoldenNoiseError:
    return GoldenNoiseError(
        f"cannot read the training progress in {folder} ({why}); delete that "
        "checkpoint folder to resume from the one before"
    )


# The run's train_config.json, two folders up from its checkpoint (checkpoints/checkpoint_N).
_RUN_CONFIG_FROM_CHECKPOINT = f"../../{RUN_CONFIG}"


def checkpoint_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in a checkpoint but progress.json (which records them), by
    path relative to `folder`: whatever accelerate saved (weights, optimizer, scheduler,
    every process's RNG state), our progress tensors, and the run's train_config.json, the
    settings that state was trained with (an edited lr there would be recorded as the run's
    while the optimizer state keeps the old one)."""
    digests = folder_sha256s(folder, skip=folder / PROGRESS_JSON)
    config = folder / _RUN_CONFIG_FROM_CHECKPOINT
    return digests | (
        {_RUN_CONFIG_FROM_CHECKPOINT: file_sha256(config)} if config.is_file() else {}
    )


def check_checkpoint_files(folder: Path) -> None:
    """Refuse a checkpoint whose files are not those its progress.json recorded when it was
    saved: a damaged or replaced file (one flipped bit in a weight) would otherwise load and
    silently train another run. Checkpoints saved before digests were recorded pass."""
    recorded = _read_record(folder).get(FILE_DIGESTS)
    if recorded is None:
        return
    if not isinstance(recorded, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) for name, digest in recorded.items()
    ):
        raise _refuse(
            folder, f'"{FILE_DIGESTS}": {str(recorded)[:300]}', "it maps file names to SHA-256s"
        )
    for name, digest in recorded.items():
        path = Path(os.path.normpath(folder / name))
        found = file_sha256(path) if path.is_file() else None
        if found != digest and name == _RUN_CONFIG_FROM_CHECKPOINT:
            raise GoldenNoiseError(
                f"cannot resume from {folder}: {path} is not the settings file the run's "
                "checkpoints were trained with (it was edited since, so it would record settings "
                "the resumed state does not have); restore it, or train into a new --out "
                "(--init-from starts from its weights)"
            )
        if found != digest:
            now = f"SHA-256 {found}" if found else "the file is missing"
            raise GoldenNoiseError(
                f"cannot resume from {folder}: {path} differs from what the checkpoint recorded "
                f"when it was saved (SHA-256 {digest}; now {now}), so it was changed or damaged "
                "since. " + _REMEDY
            )


@dataclass(frozen=True)
class Schedule:
    """A run's epochs in batches and optimizer steps: what its progress counters must fit."""

    epochs: int
    batches_per_epoch: int
    accumulation: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / self.accumulation)

    def step_at(self, epoch: int, batches: int) -> int:
        """Optimizer steps taken `batches` into `epoch`: accelerate steps every `accumulation`
        batches and on an epoch's last batch (a checkpoint comes right after a step)."""
        return epoch * self.steps_per_epoch + math.ceil(batches / self.accumulation)


def check_progress(
    folder: Path, progress: TrainProgress, schedule: Schedule, scheduler_steps: int | None
) -> None:
    """Refuse a progress record that disagrees with the rest of the run it resumes.

    The record decides which epochs are still trained and what counts as a new best, so an
    edited or mixed-up progress.json would silently train the wrong epochs or keep a best/
    that no epoch reached. Its counters must fit the schedule and the LR scheduler's own
    count (`scheduler_steps`; None where steps may be skipped), its history must be the
    first lines of metrics.jsonl, and best_val_loss their lowest val_loss. Every float
    compared is a copy of one the same process wrote (JSON round-trips floats exactly), so
    equality is exact. metrics.csv is written from the same rows, as decimal text.
    """
    _check_counters(folder, progress, schedule)
    if scheduler_steps is not None and scheduler_steps != progress.global_step:
        raise _refuse(
            folder,
            f'"global_step": {progress.global_step}',
            f"the checkpoint's LR scheduler (scheduler.bin) counts {scheduler_steps} steps",
        )
    _check_history(folder, progress, schedule)
    _check_best(folder, progress)


_REMEDY = (
    "Delete that checkpoint folder to resume from the one before it, or train into a new --out "
    "(--init-from starts from its weights)"
)


def _refuse(folder: Path, holds: str, expected: str) -> GoldenNoiseError:
    return GoldenNoiseError(
        f"cannot resume from {folder}: its {PROGRESS_JSON} holds {holds}, but {expected}. "
        + _REMEDY
    )


def _check_counters(folder: Path, progress: TrainProgress, schedule: Schedule) -> None:
    """Epoch, batch and step: whole counts, inside the run, one step count for both."""
    for name in ("epoch", "batches_in_epoch", "global_step"):
        value = getattr(progress, name)
        if type(value) is not int or value < 0:
            raise _refuse(folder, f'"{name}": {value!r}', "a count is a whole number, 0 or more")
    epoch, batches = progress.epoch, progress.batches_in_epoch
    if epoch > schedule.epochs:
        raise _refuse(folder, f'"epoch": {epoch}', f"this run trains {schedule.epochs} epochs")
    most = 0 if epoch == schedule.epochs else schedule.batches_per_epoch
    if batches > most:
        raise _refuse(
            folder,
            f'"batches_in_epoch": {batches} at "epoch": {epoch}',
            f"an epoch of this run has {schedule.batches_per_epoch} batches and it trains "
            f"{schedule.epochs} epochs, so at most {most}",
        )
    step = schedule.step_at(epoch, batches)
    if progress.global_step != step:
        raise _refuse(
            folder,
            f'"global_step": {progress.global_step}',
            f'"epoch": {epoch} and "batches_in_epoch": {batches} are step {step} of this run '
            f"({schedule.steps_per_epoch} optimizer steps an epoch)",
        )
    loss_sum = progress.epoch_loss_sum
    if not isinstance(loss_sum, float) or not math.isfinite(loss_sum) or (loss_sum and not batches):
        raise _refuse(
            folder,
            f'"epoch_loss_sum": {loss_sum!r} after {batches} batches of its epoch',
            "it is a finite sum of batch losses, 0.0 before the first",
        )


def _check_history(folder: Path, progress: TrainProgress, schedule: Schedule) -> None:
    """One history row per finished epoch, each the same line metrics.jsonl holds for it."""
    history, epoch = progress.history, progress.epoch
    if not isinstance(history, list) or len(history) != epoch:
        rows = len(history) if isinstance(history, list) else type(history).__name__
        raise _refuse(
            folder, f'"epoch": {epoch} with "history" of {rows} rows', "it has one row an epoch"
        )
    path = _metrics_of(folder)
    lines = _metrics_lines(folder, path, epoch)
    for number, (row, line) in enumerate(zip(history, lines, strict=True), 1):
        if json.dumps(row) != line:
            raise _refuse(
                folder,
                f'"history" row {number}: {json.dumps(row)[:300]}',
                f"line {number} of {path} is {line[:300]}",
            )
        step = number * schedule.steps_per_epoch
        if not isinstance(row, dict) or (row.get("epoch"), row.get("step")) != (number, step):
            raise _refuse(
                folder,
                f'"history" row {number}: {line[:300]}',
                f'the row of epoch {number} holds "epoch": {number}, "step": {step}',
            )


def _metrics_lines(folder: Path, path: Path, epoch: int) -> list[str]:
    """The first `epoch` lines of metrics.jsonl (written before each checkpoint's record, so
    it holds at least as many; more after a resume from an earlier checkpoint)."""
    if epoch == 0:
        return []
    try:
        lines = text_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(folder, f'"epoch": {epoch}', f"{path} cannot be read ({exc})") from exc
    if len(lines) < epoch:
        raise _refuse(folder, f'"epoch": {epoch}', f"{path} records {len(lines)} epochs")
    return lines[:epoch]


def _check_best(folder: Path, progress: TrainProgress) -> None:
    """best_val_loss is the lowest val_loss of the epochs recorded (history = metrics.jsonl)."""
    losses = [row.get("val_loss") for row in progress.history]
    if not all(isinstance(loss, float) and math.isfinite(loss) for loss in losses):
        raise _refuse(folder, f'"history" val_loss {losses}', "every epoch has a finite val_loss")
    best = min(losses, default=None)
    if progress.best_val_loss != best:  # copies of the same float: exact
        expected = (
            f"the lowest val_loss of {_epochs(progress.epoch)} in {_metrics_of(folder)} is {best!r}"
            if losses
            else "no epoch has finished, so it is null"
        )
        raise _refuse(folder, f'"best_val_loss": {progress.best_val_loss!r}', expected)


def _metrics_of(checkpoint: Path) -> Path:
    """metrics.jsonl of the run that holds `checkpoint` (out/checkpoints/checkpoint_<i>)."""
    return checkpoint.parent.parent / METRICS_JSONL


def _epochs(count: int) -> str:
    return "epoch 1" if count == 1 else f"epochs 1-{count}"


def shuffle_seed(seed: int) -> int:
    """accelerate's seedable sampler draws epoch e's order from `data_seed + e`; spacing the
    runs' seeds this far apart keeps run 1's orders from being run 0's one epoch later."""
    return seed * 1_000_003


def _numbered(out: Path) -> list[tuple[int, Path]]:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = ((_NUMBERED.match(p.name), p) for p in folder.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def checkpoint_configuration(out: Path, keep: int) -> Any:
    """accelerate's checkpoint naming and pruning for `out`, numbering after what is there.

    accelerate prunes *before* it writes, so the limit is one above `keep`: while a save is
    in progress (and if it is killed) `keep` complete checkpoints remain beside it.
    """
    from accelerate.utils import ProjectConfiguration

    numbered = _numbered(out)
    return ProjectConfiguration(
        project_dir=str(out),
        automatic_checkpoint_naming=True,
        total_limit=keep + 1,
        iteration=numbered[-1][0] + 1 if numbered else 0,
    )


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint: one whose progress.json was written."""
    done = [p for _, p in _numbered(out) if (p / PROGRESS_JSON).is_file()]
    return done[-1] if done else None


def record_save_started(out: Path, iteration: int) -> None:
    """Name the save about to be written, so that only it, if killed, is ever deleted."""
    atomic_write_json(out / SAVE_STARTED, {"checkpoint": f"checkpoint_{iteration}"})


def _started_save(out: Path) -> str | None:
    """The checkpoint folder the run last began to write (None: no record, or unreadable)."""
    try:
        name = json.loads((out / SAVE_STARTED).read_text(encoding="utf-8"))["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def discard_incomplete(out: Path) -> None:
    """Delete the folder of a save killed before it completed (main process only); only the
    one the run recorded starting, so nothing else under checkpoints/ is ever deleted."""
    started = _started_save(out)
    for _, folder in _numbered(out):
        if folder.name == started and not (folder / PROGRESS_JSON).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the checkpointed history (no duplicates
    after a resume, no half lines after a kill)."""
    atomic_write_text(out / METRICS_JSONL, "".join(json.dumps(row) + "\n" for row in history))
    if history:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(out / "metrics.csv", buffer.getvalue())


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN or infinity; a timing that could not be measured is written as null."""
    return value if math.isfinite(value) else None


# Settings that leave the trajectory alone; every other recorded field must match to resume.
FREE_SETTINGS = frozenset({"out", "dataset", "progress", "num_workers", "log_with", "cpu"})


def _refuse_foreign_checkpoints(out: Path) -> None:
    """accelerate prunes and renumbers everything in checkpoints/ as its own saves: anything
    else there (a user's backup, a file) would be deleted or break the save."""
    folder, started = out / CHECKPOINTS, _started_save(out)
    foreign = sorted(
        p.name for p in (folder.iterdir() if folder.is_dir() else ())
        if not (p.is_dir() and _NUMBERED.match(p.name))
        or not (p / PROGRESS_JSON).is_file() and p.name != started
    )  # fmt: skip
    if foreign:
        raise GoldenNoiseError(
            f"{folder} holds {first_few(foreign, 4)}, which are neither complete checkpoint_N "
            "saves of a run nor the one it was writing when stopped; accelerate would prune "
            "them with its own. Move them away, or train into a new --out"
        )


def claim_run_folder(out: Path, record: dict[str, Any], resuming: bool, write: bool) -> None:
    """Refuse to resume, or start over, a run in `out` with settings or data other than its own.

    `record` is what train_config.json holds: every setting and a fingerprint of the train
    and validation rows (`data`). A fresh folder is claimed by writing it. Whenever `out`
    already holds a train_config.json (checkpoints or not) the run must match it on every
    field outside `FREE_SETTINGS`, and its file is left as it was: a resume continues that
    run, and one with no checkpoint left starts that same run over. Weights (`best/`, `last/`)
    without any record are never trained over. Every rank checks (so all refuse together);
    only the one with `write` writes.
    """
    _refuse_foreign_checkpoints(out)
    path = out / RUN_CONFIG
    if not path.is_file():
        if resuming:
            raise GoldenNoiseError(
                f"{out} holds checkpoints but no {RUN_CONFIG}, the record of the settings that "
                "made them; resuming could silently change that run (batch size, lr, data). "
                "Restore that file, or train into a new --out (--init-from starts from its weights)"
            )
        if (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).iterdir()):
            raise GoldenNoiseError(
                f"{out / CHECKPOINTS} holds files but {out} has no {RUN_CONFIG}, the record a "
                "run writes before its first checkpoint, so they are not this tool's: training "
                "here would delete or prune them. Move them away, or train into a new --out"
            )
        weights = [f"{name}/" for name in ("best", "last") if (out / name).exists()]
        weights += [name for name in ("metrics.csv", "metrics.jsonl") if (out / name).exists()]
        if weights:
            raise GoldenNoiseError(
                f"{out} holds {', '.join(weights)} but no {RUN_CONFIG} and no checkpoint: "
                "training here would overwrite those files with another run's. Move them "
                "away, or train into a new --out (--init-from starts from their weights)"
            )
        if write:
            atomic_write_json(path, record)
        return
    changed = changed_settings(path, record, FREE_SETTINGS)
    if changed:
        effect = (
            "Resuming would change that run"
            if resuming
            else "It has no checkpoint left to resume; training here would overwrite its "
            "best/, last/ and metrics"
        )
        raise GoldenNoiseError(
            f"{out} holds a training run with other settings or data ({'; '.join(changed)}). "
            f"{effect}: pass its settings to resume it, or choose a new "
            "--out (--init-from starts from its weights)"
        )
