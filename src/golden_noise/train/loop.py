"""Stage II: train NPNet on a Noise Prompt Dataset with accelerate (1 process or many).

The loop reads top to bottom like accelerate's examples: build, `prepare`, iterate. Text
embeddings come from the dataset's cache; no text encoder is loaded. Every epoch ends with a
validation pass that prints NPNet's loss beside two baselines (identity: predict the source;
mean residual: source + the train set's mean target-source difference), then writes `last/`,
`best/` (by validation loss) in `save_pretrained` form, the metrics, and a resumable checkpoint.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset

from golden_noise.atomic import atomic_directory, recover_directory
from golden_noise.dataset import load_splits
from golden_noise.distributed import make_accelerator
from golden_noise.errors import GoldenNoiseError
from golden_noise.train.config import MANIFEST_MARGIN, TrainConfig
from golden_noise.train.model import build_npnet, check_fits, load_backbone_weights
from golden_noise.train.state import (
    EpochShuffleSampler,
    TrainProgress,
    checkpoint_dir,
    latest_checkpoint,
    prune_checkpoints,
    staging_dir,
    write_metrics,
    write_run_config,
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


def _trackers(choice: str) -> list[str]:
    if choice == "none":
        return []
    if choice == "tensorboard" or importlib.util.find_spec("tensorboard") is not None:
        return ["tensorboard"]
    return []


def _mean_residual(dataset: Any, accelerator: Any, batch_size: int) -> torch.Tensor:
    """Mean of target - source over the train split, each process summing its own share."""
    share = Subset(
        dataset, range(accelerator.process_index, len(dataset), accelerator.num_processes)
    )
    total = torch.zeros(
        dataset.manifest.latent_shape, dtype=torch.float64, device=accelerator.device
    )
    for source, target, _ in DataLoader(share, batch_size=batch_size):
        total += (target - source).to(accelerator.device, torch.float64).sum(0)
    return (accelerator.reduce(total, reduction="sum") / len(dataset)).float()


def _evaluate(
    net: Any, loader: Any, mean_residual: torch.Tensor, accelerator: Any
) -> dict[str, float]:
    """Per-row MSE of NPNet and of both baselines, averaged over the whole validation split."""
    net.eval()
    rows = []
    with torch.no_grad():
        for source, target, embeds in loader:
            golden = net(source, embeds)
            errors = torch.stack(
                [
                    ((golden.float() - target) ** 2).mean((1, 2, 3)),
                    ((source - target) ** 2).mean((1, 2, 3)),
                    ((source + mean_residual - target) ** 2).mean((1, 2, 3)),
                ],
                dim=1,
            )
            rows.append(accelerator.gather_for_metrics(errors))
    net.train()
    means = torch.cat(rows).double().mean(0).tolist()
    return dict(zip(("val_loss", "val_identity", "val_mean_residual"), means, strict=True))


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume training) an NPNet; see `TrainConfig` for every option."""
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
    from accelerate.utils import tqdm as progress_bar
    from diffusers.optimization import get_scheduler

    out = config.out
    trackers = _trackers(config.log_with)
    accelerator = make_accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=trackers or None,
        project_dir=str(out),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if config.batch_size % accelerator.num_processes:
        raise GoldenNoiseError(
            f"batch_size {config.batch_size} is the global batch and must divide evenly over "
            f"{accelerator.num_processes} processes"
        )
    set_seed(config.seed)
    train_set, val_set = load_splits(
        config.dataset,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
        margin=_resolve_margin(config),
        score=config.score,
    )
    manifest = train_set.manifest
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
    net = build_npnet(manifest, dict(config.npnet), config.init_from)
    check_fits(net.config, manifest, "the NPNet")
    backbone_note = load_backbone_weights(net, config.backbone_pretrained)
    accelerator.print(backbone_note)

    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = EpochShuffleSampler(len(train_set), config.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=config.num_workers,
    )
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=config.num_workers)
    batches_per_epoch = len(train_loader)
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.epochs * steps_per_epoch,
    )
    net, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        net, optimizer, train_loader, val_loader, scheduler
    )
    progress = TrainProgress()
    accelerator.register_for_checkpointing(progress)

    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("last", "best"):
            recover_directory(out / name)
        write_run_config(
            out, {**config.to_dict(), "npnet_config": net_config_dict(accelerator, net)}
        )
    accelerator.wait_for_everyone()
    resume_from = latest_checkpoint(out)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        accelerator.print(
            f"resumed from {resume_from} (epoch {progress.epoch}, step {progress.global_step})"
        )
    if progress.mean_residual is None:
        progress.mean_residual = _mean_residual(train_set, accelerator, config.batch_size).cpu()
    mean_residual = progress.mean_residual.to(accelerator.device)
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
        disable=not config.progress,
    )
    for epoch in range(progress.epoch, config.epochs):
        skip = progress.batches_in_epoch
        loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        loader.set_epoch(epoch)  # accelerate passes it on to the sampler; a fresh loader says 0
        batches_before, started = progress.batches_in_epoch, time.perf_counter()
        for source, target, embeds in loader:
            with accelerator.accumulate(net):
                loss = F.mse_loss(net(source, embeds).float(), target)
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
                    _save_checkpoint(accelerator, progress, config)
        elapsed = time.perf_counter() - started
        train_loss = _global_mean(accelerator, progress.epoch_loss_sum) / progress.batches_in_epoch
        done = progress.batches_in_epoch - batches_before
        metrics = _evaluate(net, val_loader, mean_residual, accelerator)
        row = {
            "epoch": epoch + 1,
            "step": progress.global_step,
            "train_loss": train_loss,
            **metrics,
            "lr": scheduler.get_last_lr()[0],
            "samples_per_s": done * config.batch_size / elapsed if elapsed > 0 else float("nan"),
        }
        progress.history.append(row)
        progress.epoch, progress.batches_in_epoch, progress.epoch_loss_sum = epoch + 1, 0, 0.0
        accelerator.log(row, step=progress.global_step)
        accelerator.print(
            f"epoch {epoch + 1}/{config.epochs}: train {train_loss:.5f} | "
            f"val {metrics['val_loss']:.5f} (identity {metrics['val_identity']:.5f}, "
            f"mean residual {metrics['val_mean_residual']:.5f})"
        )
        improved = metrics["val_loss"] < progress.best_val_loss
        if improved:
            progress.best_val_loss = metrics["val_loss"]
        _save_weights(accelerator, net, out, ["last", "best"] if improved else ["last"])
        _save_checkpoint(accelerator, progress, config)
    bar.close()
    accelerator.end_training()
    return TrainResult(
        out,
        progress.best_val_loss,
        list(progress.history),
        backbone_note,
        len(train_set),
        len(val_set),
    )


def _global_mean(accelerator: Any, value: float) -> float:
    tensor = torch.tensor(value, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(tensor, reduction="mean").item()


def _resolve_margin(config: TrainConfig) -> float | None:
    if config.margin == MANIFEST_MARGIN:
        from golden_noise.dataset import DatasetManifest

        return DatasetManifest.load(config.dataset).margin
    return config.margin  # type: ignore[return-value]


def _scalar_config(config: TrainConfig) -> dict[str, Any]:
    """Trackers (TensorBoard) take scalars only."""
    return {
        k: (v if isinstance(v, int | float | str | bool) else str(v))
        for k, v in config.to_dict().items()
    }


def net_config_dict(accelerator: Any, net: Any) -> dict[str, Any]:
    return accelerator.unwrap_model(net).config.to_dict()


def _save_weights(accelerator: Any, net: Any, out: Path, names: list[str]) -> None:
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(net)
        for name in names:
            with atomic_directory(out / name) as folder:
                model.save_pretrained(folder)
    accelerator.wait_for_everyone()


def _save_checkpoint(accelerator: Any, progress: TrainProgress, config: TrainConfig) -> None:
    """Save the full training state under a temp name, then publish it by renaming.

    The running loss sum is averaged over processes first: only the main process's copy is
    saved, and the mean of (shared sum + each rank's later sum) is still the right total.
    """
    progress.epoch_loss_sum = _global_mean(accelerator, progress.epoch_loss_sum)
    final = checkpoint_dir(config.out, progress.global_step)
    staging = staging_dir(config.out, progress.global_step)
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_metrics(config.out, progress.history)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        prune_checkpoints(config.out, config.keep_checkpoints)
    accelerator.wait_for_everyone()
