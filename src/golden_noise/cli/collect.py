"""`golden-noise collect`: Stage I, a Noise Prompt Dataset of scored (x_T, x_T') pairs.

Resumable: re-run the same command after a crash or kill and only missing rows are made.
Multi-process: `accelerate launch --multi_gpu --num_processes N "$(which golden-noise)"
collect ...` (GPUs, or CPU processes on a machine without GPUs) fills ONE dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import (
    ColumnOption,
    ConfigOptions,
    PipelineOption,
    PromptsOption,
    read_prompts,
    with_options,
)
from golden_noise.collection.plan import SeedPlan
from golden_noise.teachers.settings import RedenoiseSettings, SamplerSettings

SEEDS = ConfigOptions(
    SeedPlan,
    rename={"per_prompt": "seeds_per_prompt", "offset": "seed_offset", "distinct": "shared_seeds"},
    help={"distinct": "Every prompt gets the same seeds (default: all distinct)."},
)
SAMPLER = ConfigOptions(
    SamplerSettings,
    rename={"scheduler": "sampler"},
    unset=("steps", "guidance"),
    help={
        "steps": "Collection sampler steps (toy: its default; else 10).",
        "guidance": "Collection sampler CFG (toy: its default; else 5.5).",
        "scheduler": "ddim (the paper's) or pipeline (keep its scheduler).",
    },
)
REDENOISE = ConfigOptions(
    RedenoiseSettings,
    rename={"steps": "redenoise_steps"},
    unset=("steps", "w_l", "w_w", "inversion"),
    help={
        "steps": "Re-denoise: schedule length whose first timestep is used (= --steps).",
        "w_l": "Re-denoise: CFG of the DDIM step [recipe's; default 5.5].",
        "w_w": "Re-denoise: CFG of the inversion step, any value, 0 unconditional [recipe's; "
        "default 1.0].",
        "repeats": "Re-denoise: step+inversion rounds.",
        "inversion": "Re-denoise: exact or authors [recipe's; default exact].",
        "timestep_spacing": "Re-denoise: leading, trailing or linspace (default: the pipeline's).",
    },
)


@app.command()
@with_options(SEEDS, SAMPLER, REDENOISE)
def collect(
    out: Annotated[Path, typer.Option(help="Dataset directory (created, or resumed).")],
    prompts: PromptsOption = None,
    pipeline: PipelineOption = "toy",
    column: ColumnOption = None,
    teacher: Annotated[
        str,
        typer.Option(
            help="redenoise, local-search, evolution, reward-gradient, prompt-offset or "
            "composed-offset (toy prompts: offsets composed from a prompt-offset dataset's)."
        ),
    ] = "redenoise",
    recipe: Annotated[
        str,
        typer.Option(
            help="default, or authors (the released collector: 50 steps, their inversion, "
            "w_l 5.5, w_w 0, hpsv2.1, margin 0); options given here override it."
        ),
    ] = "default",
    scorer: Annotated[
        str | None,
        typer.Option(
            help="Scorer name or name=CHECKPOINT (see golden-noise scorers) [recipe's; toy-soft]."
        ),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="A pair is kept when score(x_T) + margin < score(x_T') [recipe's; 0]."),
    ] = None,
    candidates: Annotated[int, typer.Option(help="Local search: candidates per row.")] = 4,
    angle: Annotated[
        float, typer.Option(help="Local search / evolution: search angle in radians.")
    ] = 0.5,
    pairs: Annotated[int, typer.Option(help="Evolution: antithetic pairs per row.")] = 2,
    step: Annotated[float, typer.Option(help="Evolution: step along the estimate.")] = 8.0,
    reward: Annotated[
        str | None,
        typer.Option(
            help="Reward-gradient / prompt-offset: differentiable reward "
            "(default toy-surrogate / toy-reward-model)."
        ),
    ] = None,
    ascent_steps: Annotated[int, typer.Option(help="Reward-gradient: ascent steps.")] = 2,
    ascent_size: Annotated[
        float, typer.Option(help="Reward-gradient: norm of each ascent step.")
    ] = 3.0,
    offset_iters: Annotated[int, typer.Option(help="Prompt-offset: Adam steps per prompt.")] = 60,
    offset_noises: Annotated[
        int, typer.Option(help="Prompt-offset: fresh noises per prompt and step.")
    ] = 4,
    offset_lr: Annotated[float, typer.Option(help="Prompt-offset: Adam learning rate.")] = 0.05,
    stay_close: Annotated[
        float, typer.Option(help="Prompt-offset: weight of the stay-close penalty.")
    ] = 0.3,
    offset_init: Annotated[
        str | None,
        typer.Option(
            help="Prompt-offset: start each prompt's fit at this prompt-offset NPNet's offset "
            "(a save_pretrained folder), so new offsets stay consistent with it."
        ),
    ] = None,
    offset_fit_steps: Annotated[
        int | None,
        typer.Option(
            help="Prompt-offset: sampler steps of the fit (default: --steps); fewer make the fit "
            "cheaper, the rows are still scored at --steps."
        ),
    ] = None,
    offset_fit_seed: Annotated[
        int,
        typer.Option(
            help="Prompt-offset: seed of the fit's noises; another seed fits the same prompts "
            "again, from other draws (composed-offset averages several fits)."
        ),
    ] = 0,
    offset_modes: Annotated[
        int,
        typer.Option(
            help="Prompt-offset: offsets per prompt; each noise takes the one it leans toward "
            "(several keep the prompt's variety where one large offset draws one picture)."
        ),
    ] = 1,
    offset_source: Annotated[
        list[Path] | None,
        typer.Option(
            help="Composed-offset: a prompt-offset dataset whose fitted offsets the "
            "object-and-role table averages; repeat it to average several (e.g. two fits of "
            "the same prompts)."
        ),
    ] = None,
    offset_ridge: Annotated[
        float | None,
        typer.Option(
            help="Composed-offset: ridge of the table's least squares (default 1; larger: "
            "smaller offsets)."
        ),
    ] = None,
    height: int | None = None,
    width: int | None = None,
    dtype: Annotated[str | None, typer.Option(help="Pipeline dtype, e.g. float16.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per teacher batch.")] = 32,
    generation_batch_size: Annotated[int, typer.Option(help="Images per pipeline call.")] = 64,
    rows_per_shard: Annotated[
        int,
        typer.Option(
            help="Rows per shard file, at most (a kill loses fewer finished rows than this, "
            "plus the batch in progress)."
        ),
    ] = 256,
    max_rows: Annotated[
        int | None, typer.Option(help="Stop each process after this many new rows.")
    ] = None,
    cpu: Annotated[bool, typer.Option(help="Run on the CPU even when a GPU exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout, nothing else.")
    ] = False,
    **options: Any,
) -> None:
    """Collect scored noise pairs (source x_T, teacher's target) for training NPNet."""
    from rich.console import Console

    from golden_noise.adapters.loading import builtin_pipeline, pipeline_from_spec
    from golden_noise.collection.collect import collect as run_collect
    from golden_noise.collection.recipes import resolve_recipe
    from golden_noise.core.distributed import finish, make_accelerator
    from golden_noise.core.errors import GoldenNoiseError
    from golden_noise.scorers.registry import get_scorer
    from golden_noise.teachers import get_teacher

    accelerator = make_accelerator(cpu=cpu)
    texts = read_prompts(prompts or [], column)[0]
    pipe = pipeline_from_spec(pipeline, dtype=dtype, device=accelerator.device)
    builtin = builtin_pipeline(pipeline)
    defaults: dict[str, Any] = builtin.call_defaults() if builtin is not None else {}
    chosen = resolve_recipe(
        recipe, SAMPLER.values(options), REDENOISE.values(options), scorer, margin
    )
    if recipe != "default" and teacher != "redenoise":
        raise GoldenNoiseError(f"--recipe {recipe} is a re-denoise recipe; got --teacher {teacher}")
    scorer, margin = chosen.scorer, chosen.margin
    settings = SamplerSettings(**{**defaults, **chosen.sampler})
    offset_source = offset_source or None  # typer gives [] when the option is absent
    if teacher == "redenoise":
        redenoise = {"steps": settings.steps, **chosen.redenoise}
        teacher_options: dict[str, object] = {"settings": RedenoiseSettings(**redenoise)}
    elif teacher == "evolution":
        teacher_options = {"pairs": pairs, "angle": angle, "step": step}
    elif teacher == "reward-gradient":
        teacher_options = {"ascent_steps": ascent_steps, "ascent_size": ascent_size}
    elif teacher == "prompt-offset":
        teacher_options = {
            "iters": offset_iters,
            "noises": offset_noises,
            "lr": offset_lr,
            "stay_close": stay_close,
            "init": offset_init,
            "modes": offset_modes,
            "fit_steps": offset_fit_steps,
            "fit_seed": offset_fit_seed,
        }
    elif teacher == "composed-offset":
        if not offset_source:
            raise GoldenNoiseError(
                "--teacher composed-offset needs --offset-source, a prompt-offset dataset"
            )
        teacher_options = {"source": offset_source, "show_progress": progress}
        if offset_ridge is not None:  # else the teacher's default
            teacher_options["ridge"] = offset_ridge
    else:
        teacher_options = {"candidates": candidates, "angle": angle}
    for given, flag in ((offset_source, "--offset-source"), (offset_ridge, "--offset-ridge")):
        if given is not None and teacher != "composed-offset":
            raise GoldenNoiseError(
                f"{flag} applies to the composed-offset teacher; got --teacher {teacher}"
            )
    for given, flag in (
        (offset_init, "--offset-init"),
        (offset_fit_seed or None, "--offset-fit-seed"),
    ):
        if given is not None and teacher != "prompt-offset":
            raise GoldenNoiseError(
                f"{flag} applies to the prompt-offset teacher; got --teacher {teacher}"
            )
    if reward is not None:
        if teacher not in ("reward-gradient", "prompt-offset"):
            raise GoldenNoiseError(
                f"--reward applies to the reward-gradient and prompt-offset teachers; "
                f"got --teacher {teacher}"
            )
        teacher_options["reward"] = reward
    summary = run_collect(
        pipe,
        texts,
        out,
        get_scorer(scorer),
        teacher=get_teacher(teacher, **teacher_options),
        sampler=settings,
        seeds=SeedPlan(**SEEDS.values(options)),
        margin=margin,
        batch_size=batch_size,
        generation_batch_size=generation_batch_size,
        rows_per_shard=rows_per_shard,
        height=height,
        width=width,
        model=pipeline,
        notes={"recipe": chosen.note},
        accelerator=accelerator,
        progress=progress,
        max_rows=max_rows,
    )
    finish(accelerator)
    if not accelerator.is_main_process:
        return
    if json_output:
        from dataclasses import asdict

        from golden_noise.cli.output import print_json

        rates = {"kept_ratio": summary.kept_ratio, "pairs_per_second": summary.pairs_per_second}
        print_json({**asdict(summary), **rates, "margin": margin})
        return
    per_kept = (
        f"{summary.model_calls_per_row / summary.kept_ratio:.0f}" if summary.kept_ratio else "n/a"
    )
    Console().print(
        f"done: {summary.rows_in_dataset}/{summary.rows_planned} rows in {summary.out}, "
        f"{summary.kept_in_dataset} kept at margin {margin} ({summary.kept_ratio:.1%}); "
        f"this process wrote {summary.rows_written_here} rows at "
        f"{summary.pairs_per_second:.2f} pairs/s; denoiser evaluations: "
        f"{summary.model_calls_per_row} per row, {per_kept} per kept pair"
    )
