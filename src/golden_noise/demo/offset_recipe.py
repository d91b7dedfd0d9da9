"""The demo's own NPNet: the learned-offset recipe that made the shipped toy NPNet, at the
preset's scale.

fit offsets (prompt-offset teacher on the first `fit_prompts` train prompts) -> compose
(composed-offset teacher: the fits averaged into object-and-role parts, summed for the first
`composed_prompts` train prompts) -> train (a prompt-offset NPNet regressed on those rows,
its last epoch kept). The prompts are the train split's types-in-turn order (`toy:train:all`),
the seeds the CLI's defaults, the rows scored at `recipe_steps` (the targets do not depend on
it: the fit has its own coarse sampler, the table none), so the full-scale preset runs the
commands in `toy/npnet.py`. Every step resumes through `collect` and `train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from golden_noise.dataset import DatasetManifest, RowTable
from golden_noise.demo.config import DemoConfig
from golden_noise.demo.stages import collect_summarised, train_summarised
from golden_noise.teachers import SamplerSettings, Teacher, get_teacher

FIT_BATCH = 32  # prompts fitted together (their gradients summed in generation-sized chunks)
KEEP_EVERY_ROW = -1.0  # the recipe's rows are targets for regression, not a filtered choice


def recipe_prompts(config: DemoConfig, count: int | None) -> list[str]:
    """The first `count` train prompts (None: all), the types in turn: any prefix is balanced."""
    from golden_noise.toy.grammar import every_prompt

    prompts = every_prompt("train", config.prompt_seed)
    return prompts if count is None else prompts[:count]


def _collected(
    pipe: Any,
    config: DemoConfig,
    teacher: Teacher,
    prompts: list[str],
    out: Path,
    progress: bool,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Collect the recipe's rows (every one kept, scored at `recipe_steps`); their summary."""
    settings = SamplerSettings(steps=config.recipe_steps, guidance=config.guidance)
    return collect_summarised(
        pipe,
        config,
        teacher,
        prompts,
        out,
        0,
        progress,
        margin=KEEP_EVERY_ROW,
        batch_size=batch_size,
        sampler=settings,
    )


def fit_offsets(pipe: Any, config: DemoConfig, out: Path, progress: bool) -> dict[str, Any]:
    """Each of the first `fit_prompts` train prompts' offset, fitted on the toy reward model."""
    teacher = get_teacher("prompt-offset", **config.offset_fit)
    prompts = recipe_prompts(config, config.fit_prompts)
    return _collected(pipe, config, teacher, prompts, out, progress, FIT_BATCH)


def compose_offsets(
    pipe: Any, config: DemoConfig, fitted: Path, out: Path, progress: bool
) -> dict[str, Any]:
    """Rows for the first `composed_prompts` train prompts, each shifted by its composed offset."""
    teacher = get_teacher(
        "composed-offset", source=fitted, ridge=config.offset_ridge, show_progress=progress
    )
    prompts = recipe_prompts(config, config.composed_prompts)
    return {**_collected(pipe, config, teacher, prompts, out, progress),
            "fitted_prompts": teacher.options()["source_prompts"]}  # fmt: skip


def train_offset_net(config: DemoConfig, dataset: Path, out: Path, progress: bool) -> dict:
    """The prompt-offset NPNet on the composed rows, unfiltered; its last epoch is kept."""
    rows = len(RowTable.load(dataset, DatasetManifest.load(dataset)))
    return train_summarised(dataset, out, progress, rows, "last",
                            batch_size=config.net_batch_size, epochs=config.net_epochs,
                            lr=config.net_lr, weight_decay=0.0, margin=None,
                            npnet={"backbone_kwargs": dict(config.offset_net)})  # fmt: skip
