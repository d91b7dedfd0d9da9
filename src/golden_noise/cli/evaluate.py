"""`golden-noise evaluate`: standard vs golden images on a prompt set, scored, with a report.

Multi-process: `accelerate launch --multi_gpu --num_processes N "$(which golden-noise)"
evaluate ...` (GPUs, or CPU processes on a machine without GPUs) splits the samples and
writes ONE report. Re-run the same command to resume; `--rescore` re-scores the images in
`--out` (e.g. with other scorers) without loading the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import (
    ColumnOption,
    GuidanceOption,
    NPNetFileOption,
    NPNetOption,
    PipelineOption,
    PromptsOption,
    StepsOption,
    load_npnet_option,
    parse_seeds,
    pipeline_call_kwargs,
    read_prompts,
    warn_overlong_prompts,
)

TOY_SCORERS = "toy-soft,toy-correct"
DEFAULT_SCORERS = "hpsv2.1"


# What makes images: with --rescore nothing is generated, so giving any of these is a mistake.
GENERATION_ONLY = (
    *("prompts", "seeds", "steps", "guidance", "height", "width", "npnet", "npnet_file"),
    *("column", "teacher", "resize_noise", "dtype", "batch_size"),
)


@app.command()
def evaluate(
    ctx: typer.Context,
    prompts: PromptsOption = None,
    out: Annotated[Path, typer.Option(help="Report folder (created, resumed).")] = Path(
        "golden-noise-eval"
    ),
    pipeline: PipelineOption = "toy",
    npnet: NPNetOption = None,
    npnet_file: NPNetFileOption = None,
    column: ColumnOption = None,
    seeds: Annotated[str, typer.Option(help="Seeds per prompt, e.g. '0,1,2' or '0-3'.")] = "0",
    scorers: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated scorer names or name=CHECKPOINT (see `golden-noise scorers`) "
            f"[toy: {TOY_SCORERS}; else {DEFAULT_SCORERS}]."
        ),
    ] = None,
    teacher: Annotated[
        bool, typer.Option(help="Add an arm: the re-denoised x_T' NPNet learns from.")
    ] = False,
    rescore: Annotated[
        bool, typer.Option(help="Score the images already in --out; generate nothing.")
    ] = False,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    height: Annotated[int | None, typer.Option(help="Image height in pixels.")] = None,
    width: Annotated[int | None, typer.Option(help="Image width in pixels.")] = None,
    resize_noise: Annotated[
        bool,
        typer.Option(help="Let an NPNet made for another latent size run (an approximation)."),
    ] = False,
    dtype: Annotated[
        str | None, typer.Option(help="Pipeline dtype: float32, float16, bfloat16.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per pipeline call.")] = 8,
    scorer_batch_size: Annotated[int, typer.Option(help="Images per scorer batch.")] = 8,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Hugging Face cache folder for scorer weights.")
    ] = None,
    cpu: Annotated[bool, typer.Option(help="Run on the CPU even when a GPU exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the statistics as JSON on stdout, nothing else.")
    ] = False,
) -> None:
    """Compare images from standard, golden and norm-matched noise (same prompt and seed)."""
    from rich.console import Console

    from golden_noise.adapters.loading import (
        builtin_pipeline,
        local_pipeline_record,
        pipeline_from_spec,
    )
    from golden_noise.core.distributed import finish, make_accelerator
    from golden_noise.core.errors import GoldenNoiseError
    from golden_noise.core.weights import weights_digest
    from golden_noise.dataset.manifest import check_outside_dataset
    from golden_noise.evaluation.evaluate import Generation
    from golden_noise.evaluation.evaluate import evaluate as run_evaluate
    from golden_noise.generation import arms
    from golden_noise.generation.generate import GoldenNoise
    from golden_noise.scorers import get_scorer
    from golden_noise.teachers import RedenoiseTeacher

    if rescore:  # typer's click may be its own copy: the source is compared by name
        given = [
            "--" + name.replace("_", "-")
            for name in GENERATION_ONLY
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
        ]
        if given:
            raise GoldenNoiseError(
                f"--rescore scores the images already in --out and generates nothing; expected "
                f"no generation options with it, got {', '.join(given)}"
            )
    check_outside_dataset(out, "report and images")
    console = Console(stderr=True)
    accelerator = make_accelerator(cpu=cpu)
    builtin = builtin_pipeline(pipeline)
    names = scorers or (builtin.scorers if builtin is not None else DEFAULT_SCORERS)
    built = [
        get_scorer(
            spec, device=accelerator.device, batch_size=scorer_batch_size, cache_dir=cache_dir
        )
        for spec in names.split(",")
        if spec.strip()
    ]
    samples = generation = None
    run: dict[str, Any] = {"scorers": names}
    if not rescore:
        if prompts is None:
            raise GoldenNoiseError("expected --prompts (or --rescore to score existing images)")
        texts, groups = read_prompts(prompts, column)
        samples = arms.make_samples(texts, parse_seeds(seeds), groups)
        call = pipeline_call_kwargs(pipeline, steps, guidance, height, width)
        pipe = pipeline_from_spec(pipeline, dtype=dtype, device=accelerator.device)
        pipe.set_progress_bar_config(disable=True)
        net = load_npnet_option(npnet, npnet_file, pipeline)
        golden = GoldenNoise(net, pipe, resize_noise=resize_noise)
        golden.check_size(call.get("height"), call.get("width"))  # before run.json is written
        warn_overlong_prompts(golden.adapter, texts)
        made = {
            "standard": arms.standard(),
            "golden": arms.golden(golden),
            "norm-matched": arms.norm_matched(golden),
            "random move": arms.random_move(golden),
        }
        if teacher:
            made["teacher"] = arms.teacher(RedenoiseTeacher())
        generation = Generation(pipe, made, call, batch_size, adapter=golden.adapter)
        run |= {
            "pipeline": pipeline,
            **local_pipeline_record(pipeline, pipe),  # a folder's weights can change under it
            "npnet": npnet or "built-in",
            "npnet_sha256": weights_digest(net),  # a retrained NPNet at the same path differs
            "prompts": prompts,
            "seeds": seeds,
            **call,
        }
    summary = run_evaluate(
        out,
        built,
        samples=samples,
        generation=generation,
        run=run,
        accelerator=accelerator,
        show_progress=progress,
    )
    finish(accelerator)
    if summary is not None:
        from golden_noise.cli.output import overall_table, print_json, stdout_console

        if json_output:
            print_json(summary)
        else:
            stdout_console().print(overall_table(summary))
        console.print(f"report: {out / 'report.html'}")
