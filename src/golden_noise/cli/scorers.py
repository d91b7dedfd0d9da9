"""`golden-noise scorers`: the scorer names `evaluate` and `collect` accept, with their scales."""

from __future__ import annotations

from golden_noise.cli.app import app


@app.command()
def scorers() -> None:
    """List the scorers: name, direction, what the numbers mean."""
    from rich.console import Console
    from rich.table import Table

    from golden_noise.scorers import SCORERS

    table = Table(title="scorers (use NAME or NAME=CHECKPOINT: a local path or hub id)")
    for header in ("name", "better", "scale"):
        table.add_column(header)
    for name, (cls, _) in SCORERS.items():
        table.add_row(name, "higher" if cls.higher_is_better else "lower", cls.scale)
    Console().print(table)
