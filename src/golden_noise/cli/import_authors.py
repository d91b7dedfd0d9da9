"""`golden-noise import-authors`: turn the authors' npz+jsonl collection into our dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from golden_noise.cli.app import app


@app.command("import-authors")
def import_authors(
    npz_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of the authors' {index}_{seed}.npz pairs (searched recursively)."
        ),
    ],
    jsonl: Annotated[
        Path, typer.Argument(help="The authors' JSONL: index, seed, caption, score lists.")
    ],
    out: Annotated[Path, typer.Option(help="Dataset directory to create or complete.")],
    pipeline: Annotated[
        str, typer.Option(help="The pipeline the pairs were made with: 'toy', a folder or hub id.")
    ],
    score_names: Annotated[
        str,
        typer.Option(
            help="Comma-separated names of the JSONL's score list entries; the first is primary "
            "(the authors' collector stores HPSv2.1); recorded, and a resumed import must "
            "name the same in the same order."
        ),
    ] = "hpsv2.1",
    w_l: float = 5.5,
    w_w: float = 1.0,
    margin: Annotated[
        float, typer.Option(help="Default filter margin recorded in the manifest.")
    ] = 0.0,
    steps: Annotated[
        int | None, typer.Option(help="Sampler steps of the collection, for the manifest.")
    ] = None,
    height: Annotated[
        int | None, typer.Option(help="Image height of the pairs (default: the pipeline's).")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Image width of the pairs (default: the pipeline's).")
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Pipeline dtype for encoding prompts (default: the pipeline's saved one); "
            "recorded in the manifest, and a resumed import must use the same."
        ),
    ] = None,
    batch_size: int = 64,
) -> None:
    """Import pairs, scores and prompts; each caption is encoded once by the pipeline."""
    import torch
    from rich.console import Console

    from golden_noise.adapters import adapter_for
    from golden_noise.adapters.loading import pipeline_from_spec
    from golden_noise.dataset.authors import import_authors as run_import
    from golden_noise.teachers.settings import SamplerSettings

    sampler = {} if steps is None else {"name": "ddim", "steps": SamplerSettings(steps=steps).steps}
    adapter = adapter_for(pipeline_from_spec(pipeline, dtype=dtype))

    def encode(texts: list[str]) -> torch.Tensor:  # in the encoder's dtype: it is recorded
        with torch.no_grad():
            return adapter.encode_prompt(texts).tokens.cpu()

    summary = run_import(
        npz_dir,
        jsonl,
        out,
        encode,
        family=adapter.family,
        model=pipeline,
        score_names=[name.strip() for name in score_names.split(",") if name.strip()],
        latent_shape=adapter.latent_shape(1, height, width)[1:],
        sampler=sampler,
        w_l=w_l,
        w_w=w_w,
        margin=margin,
        batch_size=batch_size,
    )
    Console().print(
        f"imported {summary.rows_written} pairs ({summary.rows_already_present} already present) "
        f"over {summary.prompts} prompts into {out}; "
        f"{len(summary.files_without_jsonl_row)} npz files had no JSONL row and were skipped"
    )
