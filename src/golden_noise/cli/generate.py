"""`golden-noise generate`: images from golden noise, optionally beside the seed's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import (
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
from golden_noise.core.atomic import atomic_write_bytes, atomic_write_png, atomic_write_text

GRID_ROWS = 32  # grid.png: the first samples; NNN-compare.png holds every seed of a prompt
# Line breaks to str.splitlines() that JSON leaves unescaped (it escapes \n, \r and the rest)
_UNESCAPED_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def _write_index(prompts: list[str], path: Path) -> None:
    """`prompts.txt`: the file-name index of each prompt, tab, the prompt as a JSON string.
    A prompt may hold a line break (a .jsonl, .csv or hub caption: text encoders read it as
    a space), so each is written escaped, one line per prompt, as prompts.jsonl and
    index.jsonl keep every text."""
    atomic_write_text(
        path,
        "".join(
            f"{i:03d}\t{json.dumps(p, ensure_ascii=False).translate(_UNESCAPED_BREAKS)}\n"
            for i, p in enumerate(prompts)
        ),
    )


@app.command()
def generate(
    prompts: PromptsOption = None,
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
        typer.Option(
            help="Also generate from the seed's own noise; draw labelled grids (per prompt, all)."
        ),
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
    from rich.console import Console

    from golden_noise.adapters.loading import pipeline_from_spec
    from golden_noise.core.progress import track
    from golden_noise.evaluation.report.grid import complete_samples, grid_samples, render_grid_png
    from golden_noise.evaluation.report.rows import ImageRow
    from golden_noise.generation import arms
    from golden_noise.generation.files import check_new_output
    from golden_noise.generation.generate import GoldenNoise

    prompts = read_prompts(prompts or [])[0]
    samples = arms.make_samples(prompts, parse_seeds(seeds))
    call = pipeline_call_kwargs(pipeline, steps, guidance, height, width)
    check_new_output(out, batch_size)
    pipe = pipeline_from_spec(pipeline, dtype=dtype, device=device)
    pipe.set_progress_bar_config(disable=True)
    net = load_npnet_option(npnet, npnet_file, pipeline)
    golden = GoldenNoise(net, pipe, resize_noise=resize_noise)
    golden.check_size(call.get("height"), call.get("width"))  # before prompts.txt is written
    warn_overlong_prompts(golden.adapter, prompts)
    made = {"golden": arms.golden(golden)}
    if compare:
        made = {"standard": arms.standard(), **made}
    out.mkdir(parents=True, exist_ok=True)
    _write_index(prompts, out / "prompts.txt")
    batches = arms.generate_arms(
        pipe, samples, made, batch_size=batch_size, adapter=golden.adapter, **call
    )
    rows: list[ImageRow] = []  # compare: what the report's grid draws
    for batch in track(batches, " vs ".join(made), total=-(-len(samples) // batch_size)):
        for arm, images in batch.images.items():
            for sample, image in zip(batch.samples, images, strict=True):
                name = f"{sample.prompt_index:03d}-s{sample.seed}"
                file = f"{name}-{arm}.png" if compare else f"{name}.png"
                atomic_write_png(out / file, image)
                rows.append(ImageRow(sample.prompt_index, sample.prompt, sample.seed, arm, file))
    if compare:  # the demo's grid: prompt and seed per row, arm per column, upscaled
        for index in range(len(prompts)):
            mine = [row for row in rows if row.prompt_index == index]
            grid = render_grid_png(out, complete_samples(mine, list(made)), list(made))
            atomic_write_bytes(out / f"{index:03d}-compare.png", grid)
        grid = render_grid_png(out, grid_samples(rows, list(made), GRID_ROWS), list(made))
        atomic_write_bytes(out / "grid.png", grid)
    Console(stderr=True).print(f"wrote {len(samples) * len(made)} images to {out}")
