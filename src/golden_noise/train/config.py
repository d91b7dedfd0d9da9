"""Everything a training run is told; saved beside its checkpoints as train_config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.validate import choice, flag, integer, number

MANIFEST_MARGIN = "manifest"
# The sampler seeds torch with shuffle_seed(seed) + epoch, which must stay below 2**64.
MAX_SEED = 2**32 - 1
# diffusers.optimization.SchedulerType's names (listed here: importing diffusers is slow).
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "piecewise_constant",
)


@dataclass
class TrainConfig:
    """Stage II settings; the defaults are the paper's (batch 64, 30 epochs, AdamW lr 1e-4).

    `batch_size` is the global batch of one forward pass, split over processes (so one and N
    processes take the same optimizer steps); with `gradient_accumulation_steps=k` an optimizer
    step sees `k * batch_size` rows. `margin`: keep rows with `score_source + margin <
    score_target`; "manifest" uses the collection margin, None trains on every pair (the
    unfiltered ablation). `npnet` overrides NPNetConfig fields (backbone, svd_variant,
    use_svd, use_residual, use_text, text_reduction, ...); shapes come from the manifest.
    `init_from` starts from an existing NPNet (fine-tuning; one made for another family, text
    width or latent size keeps every tensor that fits and re-initialises the rest).
    `backbone_init`: how the residual backbone starts: "auto" (ImageNet for a timm Swin trained
    from scratch, as the authors' trainer; random for every other branch), "imagenet" (timm's
    pretrained weights, from the hub or its cache), "random", or a weights file.
    `checkpoint_every` adds mid-epoch checkpoints every that many optimizer steps.

    `objective`: "mse" regresses the dataset's targets (the paper); "reward" ignores them and
    trains NPNet through the dataset's own pipeline to raise the differentiable `reward`
    (a `golden_noise.scorers.rewards` name) of its images, with `stay_close` weighting the penalty
    that keeps its output a standard Gaussian near its input (`train.objectives`) and
    `no_harm` weighting the shortfall below the input noise's own reward (a net that helps
    most prompts by hurting a few is penalised row by row); `reward_steps` sampler steps per
    training image (None: the collection sampler's).
    """

    dataset: Path
    out: Path
    batch_size: int = 64
    epochs: int = 30
    lr: float = 1e-4
    weight_decay: float = 0.01
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    margin: float | None | Literal["manifest"] = MANIFEST_MARGIN
    score: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    seed: int = 0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_accumulation_steps: int = 1
    num_workers: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    npnet: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    backbone_init: str = "auto"
    log_with: Literal["auto", "tensorboard", "none"] = "auto"
    cpu: bool = False
    progress: bool = True
    objective: Literal["mse", "reward"] = "mse"
    reward: str = "toy-reward-model"
    stay_close: float = 0.3
    no_harm: float = 2.0
    reward_steps: int | None = None

    def __post_init__(self) -> None:
        self.dataset, self.out = Path(self.dataset), Path(self.out)
        if self.out.exists() and not self.out.is_dir():
            raise GoldenNoiseError(f"out must be a folder for the run; {self.out} is a file")
        for name in ("batch_size", "epochs", "gradient_accumulation_steps", "keep_checkpoints"):
            integer(name, getattr(self, name), 1)
        for name in ("warmup_steps", "num_workers", "checkpoint_every"):
            integer(name, getattr(self, name), 0)
        for name in ("seed", "split_seed"):
            integer(name, getattr(self, name), 0, MAX_SEED)
        number("lr", self.lr, above=0)
        number("weight_decay", self.weight_decay, 0)
        number("val_fraction", self.val_fraction, above=0, maximum=0.99)
        if self.margin is not None and self.margin != MANIFEST_MARGIN:
            if isinstance(self.margin, str):
                raise GoldenNoiseError(
                    f"margin must be a number, None or {MANIFEST_MARGIN!r}; got {self.margin!r}"
                )
            number("margin", self.margin)
        choice("mixed_precision", self.mixed_precision, ("no", "fp16", "bf16"))
        choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        choice("log_with", self.log_with, ("auto", "tensorboard", "none"))
        if not isinstance(self.backbone_init, str) or (
            self.backbone_init not in ("auto", "imagenet", "random")
            and not Path(self.backbone_init).is_file()
        ):
            raise GoldenNoiseError(
                "backbone_init must be 'auto', 'imagenet', 'random' or a weights file; "
                f"got {self.backbone_init!r}"
            )
        for name in ("cpu", "progress"):
            flag(name, getattr(self, name))
        choice("objective", self.objective, ("mse", "reward"))
        from golden_noise.scorers.rewards import REWARDS  # torch: not for `--help`

        choice("reward", self.reward, tuple(REWARDS))
        number("stay_close", self.stay_close, 0)
        number("no_harm", self.no_harm, 0)
        if self.reward_steps is not None:
            integer("reward_steps", self.reward_steps, 1, 1000)  # schedulers have 1000 timesteps
        from golden_noise.dataset.manifest import check_outside_dataset  # torch: not for --help

        writes = "run's checkpoints and weights"
        check_outside_dataset(self.out, writes, name="out", dataset=self.dataset)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["dataset"], data["out"] = str(self.dataset), str(self.out)
        return data
