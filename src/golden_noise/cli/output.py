"""What the commands print: tables that survive a log file, and JSON for scripts.

rich sizes its output to the terminal; written to a pipe or file it assumes 80 columns and
cuts table cells with an ellipsis ("0.67…"), which loses the numbers a log is kept for.
`stdout_console()` gives a terminal its own width and anything else a wide one, and
`Table`s built by `table()` fold a cell that still does not fit instead of cutting it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from golden_noise.core.json_values import finite_or_null

LOG_WIDTH = 160  # columns when stdout is not a terminal: every table here fits at full width


def stdout_console() -> Any:
    """A rich Console on stdout: the terminal's width, or LOG_WIDTH in a pipe or file."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=LOG_WIDTH)


def table(title: str, headers: list[str], *, left: int = 1) -> Any:
    """A rich Table whose first `left` columns are left-aligned text, the rest numbers."""
    from rich.table import Table

    out = Table(title=title)
    for index, header in enumerate(headers):
        out.add_column(header, justify="left" if index < left else "right", overflow="fold")
    return out


def print_json(data: Any) -> None:
    """`data` as strict JSON on stdout, for `--json` (nothing else goes to stdout then)."""
    sys.stdout.write(json.dumps(finite_or_null(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def overall_table(summary: dict[str, Any]) -> Any:
    """The overall statistics of `evaluation.stats.compare_arms`, one line per metric and arm,
    then each arm's diversity among a prompt's seeds (n: prompts; in brackets the ratio)."""
    from rich.markup import escape

    from golden_noise.evaluation.report.rows import ratio_label, shown

    baseline = summary["baseline"]
    out = table(
        f"{summary['n_samples']} samples; diff = arm - {baseline}",
        ["metric", "arm", baseline, "arm mean", "diff", "95% CI", "W/T/L", "win", "p"],
        left=2,
    )
    blocks = list(summary["overall"].items())
    if summary.get("diversity"):
        blocks.append((summary["diversity"]["metric"], summary["diversity"]))
    for metric, block in blocks:
        for arm, s in block[f"vs_{baseline}"].items():
            out.add_row(
                metric,
                arm,
                shown(s["mean_baseline"]),
                shown(s["mean_arm"]) + ratio_label(s),
                shown(s["mean_diff"], "+.3g"),
                escape(f"[{shown(s['ci95_low'], '+.3g')}, {shown(s['ci95_high'], '+.3g')}]"),
                f"{s['wins']}/{s['ties']}/{s['losses']}",
                shown(s["win_rate"], ".0%"),
                shown(s["wilcoxon_p"], ".3g"),
            )
    return out


def stdout_to_stderr(enabled: bool) -> Any:
    """With `--json`, what a run prints for people (e.g. per-epoch lines) goes to stderr."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()
