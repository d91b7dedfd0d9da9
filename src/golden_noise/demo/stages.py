"""The demo's stages on the toy pipeline: choose a teacher, collect, train, evaluate.

The demo's own NPNet is made by `demo.offset_recipe`; the paper's route (a teacher's pairs,
the residual NPNet) is trained here for the study.

Each stage writes into its own folder under the run's output and is resumable through the
layer it calls (collect fills in missing rows, train resumes from its checkpoint, evaluate
generates only missing images), so a killed demo re-run continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from golden_noise.collection.collect import SeedPlan, collect
from golden_noise.core.atomic import atomic_write_json
from golden_noise.dataset import DatasetManifest, RowTable
from golden_noise.demo.config import EVAL_SEED_OFFSET, VALIDATION_SEED_OFFSET, DemoConfig
from golden_noise.evaluation.evaluate import Generation, evaluate
from golden_noise.generation import arms
from golden_noise.generation.arms import Arm, Sample
from golden_noise.teachers import CollectionSampler, SamplerSettings, Teacher, get_teacher
from golden_noise.teachers.redenoise_step import RedenoiseSettings

TEACHER_CHOICE = "teacher_choice.json"


def build_teacher(name: str, options: dict[str, Any], config: DemoConfig) -> Teacher:
    """A candidate teacher; re-denoise steps at the first timestep of the demo's schedule."""
    if name == "redenoise":
        settings = RedenoiseSettings(steps=config.steps, **config.redenoise)
        return get_teacher(name, settings=settings)
    return get_teacher(name, **options)


def sampler_settings(config: DemoConfig) -> SamplerSettings:
    return SamplerSettings(steps=config.steps, guidance=config.guidance)


def toy_scorers() -> list[Any]:
    from golden_noise.scorers import get_scorer

    return [get_scorer("toy-soft"), get_scorer("toy-correct")]


def collect_summarised(
    pipe: Any,
    config: DemoConfig,
    teacher: Teacher,
    prompts: list[str],
    out: Path,
    seed_offset: int,
    progress: bool,
    margin: float | None = None,
    batch_size: int | None = None,
    sampler: SamplerSettings | None = None,
) -> dict[str, float]:
    """Collect (or finish collecting) one pair per prompt with `teacher` into `out`, and sum
    up its targets there (`teacher_summary`); `margin`, `batch_size` (rows per teacher call)
    and `sampler` default to the config's filter, generation batch and sampler."""
    margin = config.margin if margin is None else margin
    settings = sampler or sampler_settings(config)
    collect(
        pipe,
        prompts,
        out,
        toy_scorers()[0],
        teacher=teacher,
        sampler=settings,
        seeds=SeedPlan(per_prompt=1, offset=seed_offset),
        margin=margin,
        batch_size=batch_size or config.generation_batch_size,
        generation_batch_size=config.generation_batch_size,
        model="toy",
        progress=progress,
    )
    table = RowTable.load(out, DatasetManifest.load(out))
    cost = teacher.model_calls_per_row(CollectionSampler(pipe, toy_scorers()[0], settings))
    return teacher_summary(table, margin, cost)


def teacher_summary(table: RowTable, margin: float, cost: int) -> dict[str, float]:
    """How good a teacher's targets are on its rows: mean soft of source and target, kept share."""
    source = table.columns["score_source"]
    target = table.columns["score_target"]
    return {
        "rows": len(table),
        "mean_soft_source": float(np.mean(source)),
        "mean_soft_target": float(np.mean(target)),
        "mean_gain": float(np.mean(target - source)),
        "kept_share": float(np.mean(source + margin < target)),
        "model_calls_per_row": cost,
    }


def choose_teacher(
    pipe: Any, config: DemoConfig, out: Path, progress: bool
) -> tuple[str, dict[str, Any]]:
    """Run every candidate teacher on validation prompts; the best mean target `soft` wins.

    Returns the winner's name and every candidate's numbers (also written to
    `teacher_choice.json`), so the choice can be checked; the held-out split is not touched.
    """
    from golden_noise.toy import sample_prompts

    prompts = sample_prompts(config.validation_rows, config.prompt_seed + 1, "validation")
    results = {}
    for name, options in config.teachers:
        teacher = build_teacher(name, options, config)
        results[name] = collect_summarised(
            pipe, config, teacher, prompts, out / name, VALIDATION_SEED_OFFSET, progress
        )
    best = max(results, key=lambda n: results[n]["mean_soft_target"])
    choice = {"chosen": best, "criterion": "mean soft of the target on validation", **results}
    atomic_write_json(out / TEACHER_CHOICE, choice)
    return best, choice


def collect_training_pairs(
    pipe: Any, config: DemoConfig, teacher: Teacher, out: Path, progress: bool
) -> dict[str, float]:
    """The Noise Prompt Dataset: one row per train-split prompt draw, seeds 0, 1, 2, ..."""
    from golden_noise.toy import sample_prompts

    prompts = sample_prompts(config.collect_rows, config.prompt_seed, "train")
    return collect_summarised(pipe, config, teacher, prompts, out, 0, progress)


def train_npnet(
    config: DemoConfig,
    dataset: Path,
    out: Path,
    progress: bool,
    npnet: dict[str, Any] | None = None,
    margin: float | None | str = "manifest",
) -> dict[str, Any]:
    """Stage II on the collected pairs; the net with the best validation loss is kept."""
    manifest = DatasetManifest.load(dataset)
    keep = margin if margin != "manifest" else manifest.margin
    kept = int(RowTable.load(dataset, manifest).keep_mask(keep, None).sum())
    return train_summarised(dataset, out, progress, kept, "best", batch_size=config.batch_size,
                            epochs=config.epochs, lr=config.lr, margin=margin,
                            npnet={**config.npnet, **(npnet or {})})  # fmt: skip


def train_summarised(
    dataset: Path,
    out: Path,
    progress: bool,
    rows: int,
    kept: Literal["best", "last"],
    batch_size: int,
    **settings: Any,
) -> dict[str, Any]:
    """Train a demo net on `rows` usable rows (`settings`: TrainConfig fields); its rows and
    the validation numbers of the kept epoch (`best` validation loss, or the `last`).

    Few rows get a smaller batch (at most 3/4 of them, so the train split after the
    trainer's prompt split still fills one), not a crash.
    """
    from golden_noise.train import TrainConfig, train

    batch_size = max(1, min(batch_size, rows * 3 // 4))
    result = train(TrainConfig(dataset=dataset, out=out, batch_size=batch_size, log_with="none",
                               cpu=True, progress=progress, **settings))  # fmt: skip
    history = result.history
    epoch = min(history, key=lambda row: row["val_loss"]) if kept == "best" else history[-1]
    return {
        "batch_size": batch_size,
        "train_rows": result.train_rows,
        "val_rows": result.val_rows,
        "kept_epoch": epoch["epoch"],
        "val_loss": epoch["val_loss"],
        "val_identity": epoch["val_identity"],
        "val_mean_residual": epoch["val_mean_residual"],
    }


def heldout_samples(config: DemoConfig) -> list[Sample]:
    """Held-out prompts (the four types in turn), each with its own never-used seed."""
    from golden_noise.toy.grammar import prompt_type, sample_prompts

    prompts = sample_prompts(config.eval_samples, config.prompt_seed + 2, "heldout")
    return [Sample(i, p, EVAL_SEED_OFFSET + i, prompt_type(p)) for i, p in enumerate(prompts)]


def call_kwargs(config: DemoConfig) -> dict[str, Any]:
    return {"num_inference_steps": config.steps, "guidance_scale": config.guidance}


def evaluate_arms(
    folder: Path,
    samples: list[Sample],
    pipe: Any,
    made: dict[str, Arm],
    config: DemoConfig,
    run: dict[str, Any],
    progress: bool,
    accelerator: Any = None,
    reuse: tuple[Path, dict[str, str]] | None = None,
) -> dict[str, Any] | None:
    """Generate (batched) and score every arm, write the report; returns the statistics
    (None on an accelerate process other than the main one). `reuse`: see `Generation`."""
    generation = Generation(
        pipe, made, call_kwargs(config), config.generation_batch_size, reuse=reuse
    )
    return evaluate(folder, toy_scorers(), samples=samples, generation=generation, run=run,
                    accelerator=accelerator, show_progress=progress)  # fmt: skip


def teacher_arm(pipe: Any, teacher: Teacher, config: DemoConfig) -> Arm:
    """The teacher's own target, scored (if it scores) by the demo's collection sampler.

    The demo evaluates with the sampler it collects with, so a scoring teacher's images of
    the seed's noise and of its chosen candidate are the standard and teacher images: they
    are reused, not generated again (local search: K + 1 generations per sample, not K + 3).
    A pipeline whose scheduler renders differently gets a plain sampler (no reuse).
    """
    args = (pipe, toy_scorers()[0], sampler_settings(config), config.generation_batch_size)
    sampler = arms.RecordingSampler(*args)
    if not sampler.renders_like(call_kwargs(config)):
        sampler = CollectionSampler(*args)
    return arms.teacher(teacher, sampler)


def demo_arms(
    pipe: Any,
    golden: Any,
    teacher: Teacher | None,
    config: DemoConfig,
    shipped: Any | None = None,
) -> dict[str, Arm]:
    """Standard, golden, its controls (norm-matched, a random move of golden's size) and
    (optionally) the teacher's own target and the shipped toy NPNet (`shipped`, a
    GoldenNoise) with a random move of its size, all on the same samples. A net that keeps
    the noise's norm (`keep_norm`: the shipped one, the offset recipe's) gets no norm-matched
    arm: it would be standard itself, and golden - standard is golden - norm-matched."""
    made = {"standard": arms.standard(), "golden": arms.golden(golden)}
    if not golden.npnet.config.keep_norm:
        made["norm-matched"] = arms.norm_matched(golden)
    made["random move"] = arms.random_move(golden)
    if shipped is not None:
        made["shipped"] = arms.golden(shipped)
        made["shipped random move"] = arms.random_move(shipped)
    if teacher is not None:
        made["teacher"] = teacher_arm(pipe, teacher, config)
    return made


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate_stage(
    out: Path,
    config: DemoConfig,
    pipe: Any,
    chosen: str,
    shipped: Any | None,
    progress: bool,
    accelerator: Any = None,
) -> dict[str, Any] | None:
    """The held-out evaluation of the run's NPNet (`out/npnet`) beside its controls, the
    chosen teacher and the `shipped` NPNet; the statistics on the main process, else None."""
    from golden_noise.generation.generate import GoldenNoise
    from golden_noise.npnet import NPNet

    golden = GoldenNoise(NPNet.from_pretrained(out / "npnet"), pipe)
    teacher = build_teacher(chosen, dict(config.teachers)[chosen], config)
    also = GoldenNoise(shipped, pipe) if shipped is not None else None
    made = demo_arms(pipe, golden, teacher, config, shipped=also)
    run = {"demo": config.name, "teacher": chosen, "npnet": str(out / "npnet")}
    return evaluate_arms(out / "report", heldout_samples(config), pipe, made, config, run,
                         progress, accelerator)  # fmt: skip
