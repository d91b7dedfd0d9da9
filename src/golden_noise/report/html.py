"""One self-contained HTML page (inline CSS, images embedded as base64): opens offline."""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from golden_noise.report.writer import ImageRow, MetricInfo

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
.better { color: #0a7a2f; font-weight: 600; }
.worse { color: #b00020; font-weight: 600; }
.scale { color: #666; font-size: 0.85em; }
table.grid td { vertical-align: top; }
table.grid img { width: 256px; image-rendering: pixelated; }
"""


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if value == value else "n/a"  # NaN != NaN


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def metric_table(block: Mapping[str, Any], metrics: Sequence[MetricInfo], baseline: str) -> str:
    """Rows: per metric and arm, both means, the difference with its CI, W/T/L, p."""
    head = (
        "<tr><th class='text'>metric</th><th class='text'>arm</th>"
        f"<th>mean {escape(baseline)}</th><th>mean arm</th><th>difference [95% CI]</th>"
        "<th>wins / ties / losses</th><th>win rate</th><th>Wilcoxon p</th><th>n</th></tr>"
    )
    lines = [head]
    for metric in metrics:
        arrow = "&uarr;" if metric.higher_is_better else "&darr;"
        for arm, s in block[metric.name][f"vs_{baseline}"].items():
            significant = s["ci95_low"] > 0 or s["ci95_high"] < 0
            helped = (s["mean_diff"] > 0) == metric.higher_is_better
            verdict = ("better" if helped else "worse") if significant else ""
            lines.append(
                f"<tr><td class='text'>{escape(metric.name)} {arrow}"
                f"<div class='scale'>{escape(metric.scale)}</div></td>"
                f"<td class='text'>{escape(arm)}</td>"
                f"<td>{_number(s['mean_baseline'])}</td><td>{_number(s['mean_arm'])}</td>"
                f"<td class='{verdict}'>{_number(s['mean_diff'], 3)} "
                f"[{_number(s['ci95_low'], 3)}, {_number(s['ci95_high'], 3)}]</td>"
                f"<td>{s['wins']} / {s['ties']} / {s['losses']}</td>"
                f"<td>{s['win_rate']:.1%}</td><td>{_number(s['wilcoxon_p'], 3)}</td>"
                f"<td>{s['n']}</td></tr>"
            )
    return f"<table class='metrics'>{''.join(lines)}</table>"


def image_grid(folder: Path, samples: Sequence[dict[str, ImageRow]], arms: Sequence[str]) -> str:
    """prompt | arm 1 | arm 2 | ...: every image embedded, with its scores under it."""
    head = "<tr><th class='text'>prompt</th>" + "".join(f"<th>{escape(a)}</th>" for a in arms)
    lines = [head + "</tr>"]
    for cells in samples:
        first = cells[arms[0]]
        cols = []
        for arm in arms:
            row = cells[arm]
            scores = ", ".join(f"{k} {_number(v, 3)}" for k, v in row.scores.items())
            cols.append(
                f"<td><img src='{_data_uri(folder / row.file)}' alt='{escape(arm)}'>"
                f"<div class='scale'>{escape(scores)}</div></td>"
            )
        lines.append(
            f"<tr><td class='text'>{escape(first.prompt)}<div class='scale'>seed "
            f"{first.seed}{' &middot; ' + escape(first.group) if first.group else ''}</div>"
            f"</td>{''.join(cols)}</tr>"
        )
    return f"<table class='grid'>{''.join(lines)}</table>"


def render_html(
    folder: Path,
    samples: Sequence[dict[str, ImageRow]],
    summary: Mapping[str, Any],
    metrics: Sequence[MetricInfo],
    run: Mapping[str, Any],
    n_images: int,
) -> str:
    """The whole page: run description, overall and per-group tables, the image grid."""
    baseline, arms = summary["baseline"], summary["arms"]
    run_items = "".join(
        f"<tr><th class='text'>{escape(str(k))}</th><td class='text'>{escape(str(v))}</td></tr>"
        for k, v in run.items()
    )
    groups = "".join(
        f"<h3>{escape(group)}</h3>{metric_table(block, metrics, baseline)}"
        for group, block in summary["groups"].items()
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>golden-noise evaluation</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>golden-noise evaluation</h1>"
        f"<p>{summary['n_samples']} prompt-seed samples, arms {', '.join(map(escape, arms))}; "
        f"differences are arm &minus; {escape(baseline)} on the same prompt and initial noise; "
        "interval: percentile bootstrap of the paired differences, "
        f"{summary['bootstrap_resamples']:,} resamples; a difference is coloured when its "
        "interval excludes 0 (with few samples the percentile bootstrap is optimistic: "
        "read it with the Wilcoxon p).</p>"
        f"<table class='run'>{run_items}</table>"
        f"<h2>Overall</h2>{metric_table(summary['overall'], metrics, baseline)}"
        + (f"<h2>By group</h2>{groups}" if groups else "")
        + f"<h2>Images</h2><p>{len(samples)} of {summary['n_samples']} samples shown "
        f"({n_images} images in total; all listed in images.csv).</p>"
        f"{image_grid(folder, samples, arms)}</body></html>\n"
    )
