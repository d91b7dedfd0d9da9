"""`golden-noise merge`: several Noise Prompt Datasets into one new dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from golden_noise.cli.app import app


@app.command("merge")
def merge_command(
    datasets: Annotated[
        list[Path],
        typer.Argument(help="Source dataset directories, oldest first (made the same way)."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="New dataset directory to create (written in .NAME.merging beside it first)."
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="A row whose prompt and seed an earlier source also holds replaces that row "
            "(a refit); without it such rows are refused.",
        ),
    ] = False,
    rows_per_shard: Annotated[int, typer.Option(help="Rows per written shard.")] = 256,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Merge datasets so one `train` regresses onto all of them (rounds of fit-from-prediction,
    or collections from several machines); prompts are matched by text."""
    from rich.console import Console

    from golden_noise.dataset.merge import merge_datasets

    summary = merge_datasets(
        datasets, out, replace_rows=replace, rows_per_shard=rows_per_shard, progress=progress
    )
    dropped = (
        f"; extra scores not in every source left out: {', '.join(summary.dropped_scores)}"
        if summary.dropped_scores
        else ""
    )
    Console().print(
        f"merged {len(datasets)} datasets into {summary.out}: {summary.rows} rows over "
        f"{summary.prompts} prompts ({summary.replaced} replaced by a later source){dropped}",
        markup=False,
        soft_wrap=True,
    )
