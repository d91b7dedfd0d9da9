"""`golden-noise generate`: images from golden noise, optionally beside the seed's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import (
    GuidanceOption,
    NPNetFileOption,
    NPNetOption,
    PipelineOption,
    StepsOption,
    load_npnet_option,
    parse_seeds,
    pipeline_call_kwargs,
)
from golden_noise.core.atomic import atomic_write_png, atomic_write_text
from golden_noise.core.errors import GoldenNoiseError


def given_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """`--prompt` values, then the prompts of `--prompts` (any `read_prompt_source` source)."""
    from golden_noise.prompts.sources import read_prompt_source

    collected = list(prompts or [])
    if prompts_file is not None:
        collected += read_prompt_source(prompts_file)
    if not collected:
        raise GoldenNoiseError("expected at least one prompt: pass --prompt or --prompts FILE")
    return collected


def _write_index(prompts: list[str], path: Path) -> None:
    """`prompts.txt`: the file-name index of each prompt, tab, the prompt."""
    atomic_write_text(path, "".join(f"{i:03d}\t{p}\n" for i, p in enumerate(prompts)))


@app.command()
def generate(
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", help="A prompt; repeat for more.")
    ] = None,
    prompts_file: Annotated[
        str | None,
        typer.Option(
            "--prompts",
            help="Prompts: .txt (one a line), .csv/.jsonl, toy:SPLIT:N, a named set "
            "(drawbench, pickapic, hpdv2, geneval, parti) or a hub dataset.",
        ),
    ] = None,
    pipeline: PipelineOption = "toy",
    npnet: NPNetOption = None,
    npnet_file: NPNetFileOption = None,
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. '0,1,2' or '0-3'.")] = "0",
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    height: Annotated[int | None, typer.Option(help="Image height in pixels.")] = None,
    width: Annotated[int | None, typer.Option(help="Image width in pixels.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("golden-noise-images"),
    compare: Annotated[
        bool,
        typer.Option(help="Also generate from the seed's own noise; write side-by-sides + grid."),
    ] = False,
    resize_noise: Annotated[
        bool,
        typer.Option(help="Let an NPNet made for another latent size run (an approximation)."),
    ] = False,
    dtype: Annotated[
        str | None, typer.Option(help="Pipeline dtype: float32, float16, bfloat16.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device (default: cuda if any).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per pipeline call.")] = 8,
) -> None:
    """Generate images from golden noise (NPNet) with a diffusers pipeline, saved as PNG."""
    from diffusers.utils import make_image_grid
    from rich.console import Console

    from golden_noise.adapters.loading import pipeline_from_spec
    from golden_noise.core.progress import track
    from golden_noise.generation import arms
    from golden_noise.generation.generate import GoldenNoise

    prompts = given_prompts(prompt, prompts_file)
    samples = arms.make_samples(prompts, parse_seeds(seeds))
    call = pipeline_call_kwargs(pipeline, steps, guidance, height, width)
    pipe = pipeline_from_spec(pipeline, dtype=dtype, device=device)
    pipe.set_progress_bar_config(disable=True)
    net = load_npnet_option(npnet, npnet_file, pipeline)
    made = {"golden": arms.golden(GoldenNoise(net, pipe, resize_noise=resize_noise))}
    if compare:
        made = {"standard": arms.standard(), **made}
    out.mkdir(parents=True, exist_ok=True)
    _write_index(prompts, out / "prompts.txt")
    batches = arms.generate_arms(pipe, samples, made, batch_size=batch_size, **call)
    rows: dict[int, dict[str, list]] = {}  # compare: each prompt's images per arm
    for batch in track(batches, " vs ".join(made), total=-(-len(samples) // batch_size)):
        for arm, images in batch.images.items():
            for sample, image in zip(batch.samples, images, strict=True):
                name = f"{sample.prompt_index:03d}-s{sample.seed}"
                atomic_write_png(out / (f"{name}-{arm}.png" if compare else f"{name}.png"), image)
                if compare:
                    rows.setdefault(sample.prompt_index, {}).setdefault(arm, []).append(image)
    sides = []  # per prompt, the standard row over the golden row; then all prompts
    for index, row in rows.items():
        sides.append(
            make_image_grid(row["standard"] + row["golden"], rows=2, cols=len(row["golden"]))
        )
        atomic_write_png(out / f"{index:03d}-compare.png", sides[-1])
    if sides:
        atomic_write_png(out / "grid.png", make_image_grid(sides, rows=len(sides), cols=1))
    Console(stderr=True).print(f"wrote {len(samples) * len(made)} images to {out}")
