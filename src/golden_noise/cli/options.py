"""Options shared by the commands: --pipeline, --npnet/--npnet-file, seed lists."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from golden_noise.errors import GoldenNoiseError
from golden_noise.seeds import check_seed_range

PipelineOption = Annotated[
    str, typer.Option(help="'toy', a local diffusers pipeline folder, or a hub id.")
]
NPNetOption = Annotated[
    str | None,
    typer.Option(help="NPNet: save_pretrained folder, .pth/.safetensors file or hub id."),
]
NPNetFileOption = Annotated[
    str | None, typer.Option(help="File inside --npnet (folder or hub repo), e.g. sdxl.pth.")
]
StepsOption = Annotated[
    int | None, typer.Option(help="Denoising steps [toy: its default; else the pipeline's].")
]
GuidanceOption = Annotated[
    float | None, typer.Option(help="Guidance scale [toy: its default; else the pipeline's].")
]


def pipeline_call_kwargs(
    pipeline: str,
    steps: int | None,
    guidance: float | None,
    height: int | None,
    width: int | None,
) -> dict[str, Any]:
    """The pipeline-call arguments the user gave; the toy world's sampler defaults for `toy`.

    Other pipelines keep their own call defaults for whatever is not given.
    """
    from golden_noise.pipelines import TOY
    from golden_noise.validate import pipeline_call

    pipeline_call(steps, guidance, height, width)
    if pipeline == TOY:
        from golden_noise.toy import DEFAULT_GUIDANCE, DEFAULT_STEPS

        steps = DEFAULT_STEPS if steps is None else steps
        guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    given = {
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "height": height,
        "width": width,
    }
    return {key: value for key, value in given.items() if value is not None}


def parse_seeds(text: str) -> list[int]:
    """Seeds from "0,1,2" or ranges "0-3" (inclusive), mixed: "0-2,10"."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, sep, last = part.partition("-")
        try:
            bounds = (int(first), int(last)) if sep else (int(part), int(part))
        except ValueError:
            raise GoldenNoiseError(
                f"seeds must be integers or ranges like 0-3, comma-separated; got {part!r}"
            ) from None
        if bounds[1] < bounds[0]:
            raise GoldenNoiseError(f"seed range must ascend; got {part!r}")
        check_seed_range(*bounds)
        seeds.extend(range(bounds[0], bounds[1] + 1))
    if not seeds:
        raise GoldenNoiseError(f"expected at least one seed; got {text!r}")
    return seeds


def load_npnet_option(source: str | None, filename: str | None, pipeline: str) -> Any:
    """The NPNet named by --npnet/--npnet-file, or the toy world's shipped one for `toy`."""
    from golden_noise.npnet import NPNet
    from golden_noise.pipelines import TOY

    if source is not None:
        return NPNet.from_pretrained(source, filename=filename)
    if pipeline == TOY:
        from golden_noise.toy import load_npnet

        return load_npnet()
    raise GoldenNoiseError(
        f"--npnet is required for pipeline {pipeline!r} (only 'toy' has a built-in NPNet); e.g. "
        "--npnet Klayand/GoldenNoiseModel --npnet-file sdxl.pth"
    )
