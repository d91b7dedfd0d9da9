"""Stage II: train NPNet on a Noise Prompt Dataset with accelerate (1 process or many).

`train()` reads top to bottom like accelerate's examples (complete_nlp_example.py): build,
`prepare`, resume with `load_state`, iterate, `save_state`; helpers sit below it. NPNet's
text embeddings come from the dataset's cache. What a batch's loss is, and what validation
reports beside it, is the objective's (`train.objectives`: the paper's MSE to the target,
or a reward through the sampler). Every epoch ends with a validation pass, then writes
`last/`, `best/` (by validation loss) in `save_pretrained` form, the metrics, and a checkpoint.

Nothing non-finite is kept: a loss or validation loss that is NaN or infinite stops the run
with a GoldenNoiseError before the step is applied or anything is saved, and weights are
checked once more before they are written, so `last/`, `best/` and the checkpoints keep the
last finite state.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from golden_noise.core.atomic import atomic_directory, recover_directory, refuse_dropping
from golden_noise.core.distributed import make_accelerator
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.locks import hold_lock
from golden_noise.dataset import DatasetManifest, load_splits
from golden_noise.dataset.manifest import IDENTITY_FIELDS
from golden_noise.train.config import MANIFEST_MARGIN, TrainConfig
from golden_noise.train.model import (
    build_npnet,
    check_fits,
    load_backbone_weights,
    resolve_backbone_init,
)
from golden_noise.train.objectives import KeyedRows, Objective, build_objective
from golden_noise.train.state import (
    Schedule,
    TrainProgress,
    check_checkpoint_files,
    check_progress,
    checkpoint_configuration,
    claim_run_folder,
    discard_incomplete,
    finite_or_none,
    latest_checkpoint,
    record_save_started,
    shuffle_seed,
    write_metrics,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    best_val_loss: float
    history: list[dict[str, Any]]
    backbone: str
    train_rows: int
    val_rows: int


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume training) an NPNet; see `TrainConfig` for every option."""
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    out = config.out
    accelerator = make_accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=_trackers(config.log_with) or None,
        project_config=checkpoint_configuration(out, config.keep_checkpoints),
        # accelerate's seedable sampler: epoch e's order depends on (seed, e) alone, the same
        # on every process and after a resume (the loop sets the epoch on each loader)
        dataloader_config=DataLoaderConfiguration(
            split_batches=True, use_seedable_sampler=True, data_seed=shuffle_seed(config.seed)
        ),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise GoldenNoiseError(
            "mixed_precision fp16 needs a GPU (on the CPU it would be ignored while the run "
            "records fp16); use --mixed-precision no or bf16 on the CPU"
        )
    if config.batch_size % accelerator.num_processes:
        raise GoldenNoiseError(
            f"batch_size {config.batch_size} is the global batch and must divide evenly over "
            f"{accelerator.num_processes} processes"
        )
    with _run_lock(out, accelerator.process_index):
        return _train(config, accelerator)


@contextlib.contextmanager
def _run_lock(out: Path, rank: int) -> Iterator[None]:
    """Each rank holds `out/.train-r<rank>.lock` for the whole run: a second train on the same
    --out is refused before it reads or writes anything there. A refused run removes the lock
    file (and the folder) it created, leaving `out` as it found it."""
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GoldenNoiseError(f"expected --out to be a folder to train into; {exc}") from exc
    lock = hold_lock(
        out / f".train-r{rank:05d}.lock",
        f"is already training into {out}; wait for it to finish, or train into a new --out",
    )
    try:
        yield
    except GoldenNoiseError:
        lock.release(refused=True)
        if not existed:
            with contextlib.suppress(OSError):  # only while empty: nothing of a run is lost
                out.rmdir()
        raise
    finally:
        lock.release()


def _train(config: TrainConfig, accelerator: Any) -> TrainResult:
    """The run itself, under its lock."""
    from accelerate.utils import set_seed
    from accelerate.utils import tqdm as progress_bar
    from diffusers.optimization import get_scheduler

    from golden_noise.core.progress import is_terminal

    out = config.out
    set_seed(config.seed)
    train_set, val_set = _load_data(config)
    net = build_npnet(
        train_set.manifest, dict(config.npnet), config.init_from, report=accelerator.print
    )
    check_fits(net.config, train_set.manifest, "the NPNet")
    backbone_init = resolve_backbone_init(net, config.backbone_init, config.init_from is not None)
    if latest_checkpoint(out) is None:  # a resumed run's weights come from its checkpoint
        accelerator.print(load_backbone_weights(net, backbone_init))
    backbone_note = f"residual backbone: {backbone_init}"

    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_loader = DataLoader(
        KeyedRows(train_set),
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.num_workers,
    )
    val_loader = DataLoader(
        KeyedRows(val_set), batch_size=config.batch_size, num_workers=config.num_workers
    )
    schedule = Schedule(config.epochs, len(train_loader), config.gradient_accumulation_steps)
    steps_per_epoch = schedule.steps_per_epoch
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.epochs * steps_per_epoch,
    )
    net, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        net, optimizer, train_loader, val_loader, scheduler
    )

    record = _run_record(accelerator, config, net, train_set, val_set)
    progress = _resume(
        accelerator, config, {**record, "backbone_init": backbone_init}, schedule, scheduler
    )
    _refuse_user_files_in_weights(accelerator, net, out)
    objective = build_objective(config, train_set, accelerator, progress)
    accelerator.init_trackers("golden-noise-train", config=_scalar_config(config))
    accelerator.print(
        f"training NPNet on {len(train_set)} pairs ({len(train_set.prompt_indices)} prompts), "
        f"validating on {len(val_set)} ({len(val_set.prompt_indices)} prompts); "
        f"{accelerator.num_processes} process(es), global batch {config.batch_size}"
    )

    bar = progress_bar(
        total=config.epochs * steps_per_epoch,
        initial=progress.global_step,
        desc="train",
        disable=not (config.progress and is_terminal()),  # a log gets the per-epoch lines
    )
    for epoch in range(progress.epoch, config.epochs):
        skip = progress.batches_in_epoch
        loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        loader.set_epoch(epoch)  # accelerate passes it on to the sampler; a fresh loader says 0
        batches_before, started = progress.batches_in_epoch, time.perf_counter()
        for batch in loader:
            with accelerator.accumulate(net):
                loss = objective.loss(net, batch, epoch)
                _stop_unless_finite(accelerator, loss, f"train loss at epoch {epoch + 1}", config)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            progress.batches_in_epoch += 1
            progress.epoch_loss_sum += loss.item()
            if accelerator.sync_gradients:
                progress.global_step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
                if config.checkpoint_every and progress.global_step % config.checkpoint_every == 0:
                    _save_checkpoint(accelerator, net, progress, out)
        elapsed = time.perf_counter() - started
        train_loss = _global_mean(accelerator, progress.epoch_loss_sum) / progress.batches_in_epoch
        done = progress.batches_in_epoch - batches_before
        metrics = _evaluate(net, val_loader, objective, accelerator)
        _stop_unless_finite(
            accelerator, torch.tensor(metrics["val_loss"]), f"val loss at epoch {epoch + 1}", config
        )
        row = {
            "epoch": epoch + 1,
            "step": progress.global_step,
            "train_loss": train_loss,
            **metrics,
            "lr": scheduler.get_last_lr()[0],
            "samples_per_s": finite_or_none(done * config.batch_size / elapsed)
            if elapsed > 0
            else None,
        }
        progress.history.append(row)
        progress.epoch, progress.batches_in_epoch, progress.epoch_loss_sum = epoch + 1, 0, 0.0
        accelerator.log(row, step=progress.global_step)
        accelerator.print(
            f"epoch {epoch + 1}/{config.epochs}: train {train_loss:.5f} | "
            + objective.describe(metrics)
        )
        improved = progress.best_val_loss is None or metrics["val_loss"] < progress.best_val_loss
        if improved:
            progress.best_val_loss = metrics["val_loss"]
        _save_weights(accelerator, net, out, ["last", "best"] if improved else ["last"])
        _save_checkpoint(accelerator, net, progress, out)
    bar.close()
    accelerator.end_training()
    _check_weights_on_disk(out)
    return TrainResult(
        out,
        progress.best_val_loss if progress.best_val_loss is not None else float("nan"),
        list(progress.history),
        backbone_note,
        len(train_set),
        len(val_set),
    )


def _load_data(config: TrainConfig) -> tuple[Any, Any]:
    """The train and validation splits, refused when either cannot serve the run."""
    manifest = DatasetManifest.load(config.dataset)  # the run's one reading of it
    margin = manifest.margin if config.margin == MANIFEST_MARGIN else config.margin
    train_set, val_set = load_splits(
        config.dataset,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
        margin=margin,  # type: ignore[arg-type]
        score=config.score,
        manifest=manifest,
    )
    if len(train_set) < config.batch_size:
        raise GoldenNoiseError(
            f"the train split has {len(train_set)} rows after filtering (margin "
            f"{train_set.margin}); one batch needs {config.batch_size}. "
            "Lower batch_size or the margin"
        )
    if len(val_set) == 0:
        raise GoldenNoiseError(
            f"the validation split is empty (val_fraction {config.val_fraction}, "
            f"{len(train_set.prompt_indices)} train prompts); raise val_fraction or add prompts"
        )
    train_set.verify()  # digests, finite latents of plausible size: before the first step
    return train_set, val_set


def _run_record(
    accelerator: Any, config: TrainConfig, net: Any, train_set: Any, val_set: Any
) -> dict[str, Any]:
    """train_config.json: the settings, the NPNet built, and which rows it trains on."""
    keys = json.dumps([train_set.keys, val_set.keys]).encode()
    manifest = train_set.manifest.to_dict()
    return {
        **config.to_dict(),
        "npnet_config": accelerator.unwrap_model(net).config.to_dict(),
        "data": {
            "manifest": {k: manifest[k] for k in IDENTITY_FIELDS},
            "train_rows": len(train_set),
            "val_rows": len(val_set),
            "rows_sha256": hashlib.sha256(keys).hexdigest(),
        },
    }


def _resume(
    accelerator: Any,
    config: TrainConfig,
    record: dict[str, Any],
    schedule: Schedule,
    scheduler: Any,
) -> TrainProgress:
    """Continue from the newest complete checkpoint in `out`, if it is this same run.

    Every rank checks train_config.json (so a refusal stops all of them together) and the
    main one claims a fresh folder and deletes what killed saves left; then
    every rank checks the checkpoint's files against the digests its progress.json recorded,
    loads it, checks its progress record against the run, and numbers its next save after it.
    """
    out = config.out
    resume_from = latest_checkpoint(out)
    main = accelerator.is_main_process
    claim_run_folder(out, record, resuming=resume_from is not None, write=main)
    if main:  # only once the run is this one: a refused resume leaves its folder as it was
        for name in ("last", "best"):
            recover_directory(out / name)
        discard_incomplete(out)
    accelerator.wait_for_everyone()
    if resume_from is None:
        if (out / "last").exists():  # the same settings (checked above): the same run again
            accelerator.print(
                f"no checkpoint in {out} to resume from: training that same run over, which "
                "replaces its last/ and best/"
            )
        return TrainProgress()
    accelerator.project_configuration.iteration = int(resume_from.name.split("_")[-1]) + 1
    check_checkpoint_files(resume_from)
    try:
        accelerator.load_state(str(resume_from))
    except Exception as exc:  # any unreadable or unsafe file there is the same user-facing fault
        raise GoldenNoiseError(
            f"cannot resume from {resume_from}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Delete that folder to resume from the checkpoint before it, or train into a new --out"
        ) from exc
    progress = TrainProgress.load(resume_from)
    # fp16's loss scaler skips a step whose gradients overflowed, and the scheduler with it
    counted = None if config.mixed_precision == "fp16" else scheduler.scheduler.last_epoch
    check_progress(resume_from, progress, schedule, counted)
    accelerator.print(
        f"resumed from {resume_from} (epoch {progress.epoch}, step {progress.global_step})"
    )
    return progress


def _stop_unless_finite(
    accelerator: Any, value: torch.Tensor, what: str, config: TrainConfig
) -> None:
    """Stop every rank together when any rank's value is NaN or infinite (before it is used)."""
    bad = (~torch.isfinite(value.detach().float())).sum().to(accelerator.device)
    if accelerator.reduce(bad, reduction="sum").item():
        raise GoldenNoiseError(
            f"training diverged: the {what} is {value.item()} (lr {config.lr}). Nothing from "
            f"this point was saved; {config.out} keeps the last finite weights and checkpoint. "
            "Lower --lr (or use --mixed-precision no) and train into a new --out"
        )


def _trackers(choice: str) -> list[str]:
    if choice == "none":
        return []
    if choice == "tensorboard" or importlib.util.find_spec("tensorboard") is not None:
        return ["tensorboard"]
    return []


def _evaluate(net: Any, loader: Any, objective: Objective, accelerator: Any) -> dict[str, float]:
    """The objective's per-row validation columns, averaged over the whole validation split."""
    net.eval()
    rows = []
    with torch.no_grad():
        for batch in loader:
            rows.append(accelerator.gather_for_metrics(objective.validation_rows(net, batch)))
    net.train()
    means = torch.cat(rows).double().mean(0).tolist()
    return dict(zip(objective.columns, means, strict=True))


def _global_mean(accelerator: Any, value: float) -> float:
    tensor = torch.tensor(value, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(tensor, reduction="mean").item()


def _scalar_config(config: TrainConfig) -> dict[str, Any]:
    """Trackers (TensorBoard) take scalars only."""
    return {
        k: (v if isinstance(v, int | float | str | bool) else str(v))
        for k, v in config.to_dict().items()
    }


def _check_weights_on_disk(out: Path) -> None:
    """A run resumed after its last epoch writes no weights: those its epochs wrote must still
    be there, or "done" would name a folder without them."""
    missing = [
        f"{name}/{file}"
        for name in ("last", "best")
        for file in ("config.json", "model.safetensors")
        if not (out / name / file).is_file()
    ]
    if missing:
        raise GoldenNoiseError(
            f"{out} lacks {', '.join(missing)}, which its epochs wrote: they were deleted or "
            "moved since. Restore them, or train into a new --out"
        )


def _refuse_user_files_in_weights(accelerator: Any, net: Any, out: Path) -> None:
    """Before the first step: every save replaces last/ and best/ whole, so a file there that
    a save does not write (a user's notes, an evaluation) is refused now, not an epoch later
    when last/ already holds this run's weights. Every rank checks, so all refuse together."""
    kept = [out / name for name in ("last", "best") if (out / name).is_dir()]
    if not kept:  # a fresh run: no save to rehearse
        return
    with tempfile.TemporaryDirectory() as folder:
        accelerator.unwrap_model(net).save_pretrained(folder)
        for target in kept:
            refuse_dropping(target, Path(folder))


def _save_weights(accelerator: Any, net: Any, out: Path, names: list[str]) -> None:
    """`save_pretrained` into each of `names`; weights that are not finite are never written."""
    model = accelerator.unwrap_model(net)
    broken = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if broken:
        raise GoldenNoiseError(
            f"training diverged: {len(broken)} weight tensors are NaN or infinite (first: "
            f"{broken[0]}); nothing was saved. Lower --lr and train into a new --out"
        )
    if accelerator.is_main_process:
        for name in names:
            with atomic_directory(out / name) as folder:
                model.save_pretrained(folder)
    accelerator.wait_for_everyone()


def _save_checkpoint(accelerator: Any, net: Any, progress: TrainProgress, out: Path) -> None:
    """accelerate's `save_state`, the metrics, then our progress, whose JSON marks the save
    complete (so metrics.jsonl holds every epoch of any complete checkpoint's history).

    The running loss sum is averaged over processes first: only the main process's copy is
    saved, and the mean of (shared sum + each rank's later sum) is still the right total.
    """
    progress.epoch_loss_sum = _global_mean(accelerator, progress.epoch_loss_sum)
    if accelerator.is_main_process:
        record_save_started(out, accelerator.project_configuration.iteration)
    accelerator.wait_for_everyone()
    folder = Path(accelerator.save_state())
    accelerator.wait_for_everyone()  # every process's RNG state is written before it is hashed
    if accelerator.is_main_process:
        write_metrics(out, progress.history)
        progress.save(folder)
    accelerator.wait_for_everyone()
