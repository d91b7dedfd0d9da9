"""`golden-noise demo`: collect -> train -> generate -> evaluate on the embedded toy world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (created; a re-run resumes).")] = Path(
        "golden-noise-demo"
    ),
    quick: Annotated[
        bool, typer.Option(help="A minutes-long smoke run (CI) instead of the full demo.")
    ] = False,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Another toy pipeline folder (e.g. toy-train's) instead of the shipped."),
    ] = None,
    threads: Annotated[
        int, typer.Option(help="Torch CPU threads (1 is fastest for the toy's small ops).")
    ] = 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The whole method offline on the toy world, ending in a report of whether it helped."""
    import torch
    from rich.console import Console

    from golden_noise.demo import FULL, QUICK, run_demo
    from golden_noise.errors import GoldenNoiseError
    from golden_noise.toy import load_pipeline

    torch.set_num_threads(threads)
    console = Console(stderr=True)
    try:
        pipe = load_pipeline(path=pipeline) if pipeline is not None else load_pipeline()
        summary = run_demo(
            out, QUICK if quick else FULL, pipe=pipe, progress=progress, console=console
        )
    except GoldenNoiseError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    Console().print(*summary_tables(summary))
    console.print(f"report: {out / 'report' / 'report.html'}; trained NPNet: {out / 'npnet'}")


def summary_tables(summary: dict[str, Any]) -> list[Any]:
    """The run's choices, data, training and held-out result as rich tables."""
    from rich.table import Table

    from golden_noise.cli.evaluate import overall_table

    choice = summary["teacher_choice"]
    teachers = Table(title=f"teacher choice on validation (chosen: {choice['chosen']})")
    for header in ("teacher", "rows", "soft x_T", "soft x_T'", "kept", "calls/row"):
        teachers.add_column(header, justify="right")
    for name, row in choice.items():
        if isinstance(row, dict):
            teachers.add_row(
                name,
                str(row["rows"]),
                f"{row['mean_soft_source']:.4f}",
                f"{row['mean_soft_target']:.4f}",
                f"{row['kept_share']:.0%}",
                str(row["model_calls_per_row"]),
            )
    trained = summary["trained"]
    data = Table(title="collect and train")
    for header in ("pairs", "kept", "train rows", "val MSE", "identity MSE", "best epoch"):
        data.add_column(header, justify="right")
    data.add_row(
        str(summary["collected"]["rows"]),
        f"{summary['collected']['kept_share']:.0%}",
        str(trained["train_rows"]),
        f"{trained['val_loss']:.4f}",
        f"{trained['val_identity']:.4f}",
        str(trained["best_epoch"]),
    )
    timings = Table(title="stage timings")
    timings.add_column("stage")
    timings.add_column("seconds", justify="right")
    for stage, seconds in summary["seconds"].items():
        timings.add_row(stage, f"{seconds:.1f}")
    return [teachers, data, overall_table(summary["evaluation"]), timings]
