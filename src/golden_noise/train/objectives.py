"""What NPNet is trained to do: one objective per `TrainConfig.objective`, chosen once.

The loop only asks an objective for a batch's loss and for per-row validation columns, so
both objectives share its batching, accumulation, checkpoints and resume guarantees.

- `mse` (the paper's): regress the dataset's target noise. Validation prints NPNet's error
  beside two baselines (identity: predict the source; mean residual: source + the train
  set's mean target - source).
- `reward`: ignore the targets and train through the pipeline the dataset was collected
  with, to raise a differentiable reward of the image NPNet's noise gives, in the manner of
  Noise Hypernetworks (arXiv 2508.09968). No teacher's random part has to be averaged away:
  the gradient says which way is better. Validation runs on the rows' source noises and
  prints the reward of NPNet's image beside the reward of the source's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import stay_close_penalty
from golden_noise.core.seeds import keyed_generator
from golden_noise.scorers.rewards import Reward, load_reward
from golden_noise.train.config import TrainConfig
from golden_noise.train.state import TrainProgress


class Batch(NamedTuple):
    """What the loaders yield: the dataset's tensors and each row's (prompt_index, seed)."""

    source: torch.Tensor
    target: torch.Tensor
    embeds: torch.Tensor
    keys: torch.Tensor


class KeyedRows(Dataset):
    """A Noise Prompt Dataset's items as `Batch` rows, so an objective knows each row's prompt
    text and seed (the MSE numbers are untouched: the same tensors in the same order)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.keys = torch.tensor(dataset.keys, dtype=torch.long).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> Batch:
        return Batch(*self.dataset[item], self.keys[item])


class Objective(ABC):
    """A training loss and the validation columns reported beside it (`val_loss` first; the
    best checkpoint is the lowest `val_loss`)."""

    columns: ClassVar[tuple[str, ...]]

    @abstractmethod
    def loss(self, net: Any, batch: Batch, epoch: int) -> torch.Tensor:
        """The scalar loss of one training batch in `epoch` (0-based)."""

    @abstractmethod
    def validation_rows(self, net: Any, batch: Batch) -> torch.Tensor:
        """`[B, len(columns)]` per-row values of one validation batch (called under no_grad)."""

    @abstractmethod
    def describe(self, metrics: dict[str, float]) -> str:
        """The validation part of the epoch line."""


class MSEObjective(Objective):
    """Mean-squared error to the dataset's target noise (the paper's Stage II)."""

    columns = ("val_loss", "val_identity", "val_mean_residual")

    def __init__(self, mean_residual: torch.Tensor) -> None:
        self.mean_residual = mean_residual

    def loss(self, net: Any, batch: Batch, epoch: int) -> torch.Tensor:
        return F.mse_loss(net(batch.source, batch.embeds).float(), batch.target)

    def validation_rows(self, net: Any, batch: Batch) -> torch.Tensor:
        source, target = batch.source, batch.target
        golden = net(source, batch.embeds)
        return torch.stack(
            [
                ((golden.float() - target) ** 2).mean((1, 2, 3)),
                ((source - target) ** 2).mean((1, 2, 3)),
                ((source + self.mean_residual - target) ** 2).mean((1, 2, 3)),
            ],
            dim=1,
        )

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"val {metrics['val_loss']:.5f} (identity {metrics['val_identity']:.5f}, "
            f"mean residual {metrics['val_mean_residual']:.5f})"
        )


class RewardObjective(Objective):
    """Per row, with `g = net(x, c)` and `r(z)` the reward of the image from noise z:
    `-r(g) + no_harm * max(r(x) - r(g), 0) + stay_close * stay_close_penalty(g, x)`.

    The no-harm term exists because one shared map learns the change that helps the majority
    of prompts first: on the toy, without it, the net added what pair and counting prompts
    need and took single prompts' soft score from 0.80 to 0.70 (validation, 100 steps); with
    it (weight 2) no prompt type fell. It costs one more (gradient-free) generation per row.

    Each training row gets fresh standard Gaussian noise x, drawn from a generator seeded by
    (run seed, epoch, prompt index, row seed): every epoch sees new noise, a resumed run or
    another number of processes draws exactly the same, and the dataset only has to supply
    prompts. The image comes from the collection sampler's differentiable path
    (`CollectionSampler.differentiable_images`), so one step costs a forward and a backward
    pass through every sampling step of the (frozen) pipeline.
    """

    columns = ("val_loss", "val_reward", "val_reward_identity")

    def __init__(
        self,
        sampler: Any,
        reward: Reward,
        prompts: dict[int, str],
        *,
        stay_close: float,
        no_harm: float,
        seed: int,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        self.sampler, self.reward, self.prompts = sampler, reward, prompts
        self.stay_close, self.no_harm, self.seed = stay_close, no_harm, seed
        self.height, self.width = height, width

    def noise(self, keys: torch.Tensor, epoch: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard Gaussian `[B, *shape]` (CPU, float32), one generator per row key."""
        rows = []
        for prompt_index, seed in keys.tolist():
            generator = keyed_generator(self.seed, epoch, prompt_index, seed)
            rows.append(torch.randn(shape, generator=generator))
        return torch.stack(rows)

    def loss(self, net: Any, batch: Batch, epoch: int) -> torch.Tensor:
        noise = self.noise(batch.keys, epoch, tuple(batch.source.shape[1:]))
        noise = noise.to(batch.source.device)
        baseline = None
        if self.no_harm:
            with torch.no_grad():
                baseline = self.rewards(noise, batch.keys).detach()
        golden = net(noise, batch.embeds).float()
        return self._rows(golden, noise, batch.keys, baseline)[0].mean()

    def validation_rows(self, net: Any, batch: Batch) -> torch.Tensor:
        """On each row's source noise, so validation is the same every epoch."""
        identity = self.rewards(batch.source, batch.keys)
        golden = net(batch.source, batch.embeds).float()
        loss, reward = self._rows(golden, batch.source, batch.keys, identity)
        return torch.stack([loss, reward, identity], dim=1)

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"val {metrics['val_loss']:.5f} (reward {metrics['val_reward']:.5f}, "
            f"identity {metrics['val_reward_identity']:.5f})"
        )

    def rewards(self, latents: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The reward of the image each row's latent gives with its prompt, `[B]`."""
        prompts = [self.prompts[p] for p in keys[:, 0].tolist()]
        kwargs = self.sampler.adapter.call_kwargs(prompts, self.height, self.width)
        images = self.sampler.differentiable_images(latents, kwargs, keys[:, 1].tolist())
        return self.reward(images.float(), prompts)

    def _rows(
        self,
        golden: torch.Tensor,
        noise: torch.Tensor,
        keys: torch.Tensor,
        baseline: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row loss and reward; `baseline` is r(x), needed only when no_harm > 0."""
        reward = self.rewards(golden, keys)
        penalty = stay_close_penalty(golden, noise)
        return reward_loss(reward, penalty, baseline, self.stay_close, self.no_harm), reward


def reward_loss(
    reward: torch.Tensor,
    penalty: torch.Tensor,
    baseline: torch.Tensor | None,
    stay_close: float,
    no_harm: float,
) -> torch.Tensor:
    """Per row: `-r(g) + stay_close * penalty + no_harm * max(r(x) - r(g), 0)`, `penalty`
    being `stay_close_penalty(g, x)` (passed in, so a caller that also logs it computes it
    once) and `baseline` r(x), needed only when no_harm > 0."""
    loss = -reward + stay_close * penalty
    if no_harm:
        loss = loss + no_harm * torch.relu(baseline - reward)
    return loss


def build_objective(
    config: TrainConfig, train_set: Any, accelerator: Any, progress: TrainProgress
) -> Objective:
    """The objective `config` names, ready on the accelerator's device.

    MSE's mean residual is computed once and kept in `progress`, so a resumed run reuses it.
    """
    if config.objective == "mse":
        if progress.mean_residual is None:
            progress.mean_residual = _mean_residual(train_set, accelerator, config.batch_size).cpu()
        return MSEObjective(progress.mean_residual.to(accelerator.device))
    return _reward_objective(config, train_set, accelerator.device)


def _reward_objective(config: TrainConfig, train_set: Any, device: Any) -> RewardObjective:
    """The collection pipeline and sampler named by the dataset's manifest, frozen."""
    from golden_noise.adapters.loading import PIPELINE_DIGEST, pipeline_from_spec, pipeline_sha256
    from golden_noise.teachers.sampler import CollectionSampler, SamplerSettings

    manifest = train_set.manifest
    recorded = manifest.sampler
    missing = [key for key in ("steps", "guidance") if key not in recorded]
    if manifest.model is None or missing:
        raise GoldenNoiseError(
            f"the reward objective trains through the pipeline {train_set.root} was collected "
            f"with, but its manifest lacks {'the model' if manifest.model is None else missing} "
            f"(model {manifest.model!r}, sampler {recorded}); collect it with golden-noise "
            "collect, or use --objective mse"
        )
    reward = load_reward(config.reward)
    pipe = pipeline_from_spec(manifest.model, device=device)
    digest = recorded.get(PIPELINE_DIGEST)  # recorded for a local folder only
    if digest is not None and pipeline_sha256(pipe) != digest:
        raise GoldenNoiseError(
            f"the pipeline folder {manifest.model} no longer holds the weights {train_set.root} "
            "was collected with (its pipeline_sha256 differs); the reward objective would "
            "train through another model. Restore that folder, or collect again"
        )
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    settings = SamplerSettings(
        steps=config.reward_steps or recorded["steps"],
        guidance=recorded["guidance"],
        scheduler=recorded.get("scheduler", "ddim"),
    )
    sampler = CollectionSampler(pipe, None, settings)
    return RewardObjective(
        sampler,
        reward,
        {index: record.text for index, record in train_set.prompts().items()},
        stay_close=config.stay_close,
        no_harm=config.no_harm,
        seed=config.seed,
        height=recorded.get("height"),
        width=recorded.get("width"),
    )


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
