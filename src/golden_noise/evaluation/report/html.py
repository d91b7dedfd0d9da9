"""One self-contained HTML page (inline CSS, pictures embedded as base64): opens offline.

The page is the jinja2 template `templates/report.html` (autoescaped, so prompts with
`<&>"` show as text); this module only turns the statistics into display strings.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from golden_noise.evaluation.report.rows import MetricInfo, ratio_label, shown

_ENVIRONMENT = Environment(
    loader=PackageLoader("golden_noise.evaluation.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a misspelt variable fails loudly instead of printing nothing
    trim_blocks=True,
)


@dataclass(frozen=True)
class Picture:
    """A PNG shown on the page and saved beside it as `file`."""

    id: str
    title: str
    file: str
    png: bytes
    caption: str = ""

    @property
    def uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def table_lines(
    block: Mapping[str, Any], metrics: Sequence[MetricInfo], baseline: str
) -> list[dict[str, Any]]:
    """Per metric and arm: both means, the difference with its CI, W/T/L, win rate, p, n."""
    lines = []
    for metric in metrics:
        for arm, s in block[metric.name][f"vs_{baseline}"].items():
            significant = s["ci95_low"] > 0 or s["ci95_high"] < 0
            helped = (s["mean_diff"] > 0) == metric.higher_is_better
            lines.append(
                {
                    "metric": metric.name,
                    "scale": metric.scale,
                    "higher": metric.higher_is_better,
                    "arm": arm,
                    "mean_baseline": shown(s["mean_baseline"]),
                    "mean_arm": shown(s["mean_arm"]) + ratio_label(s),
                    "difference": f"{shown(s['mean_diff'], '.3g')} "
                    f"[{shown(s['ci95_low'], '.3g')}, {shown(s['ci95_high'], '.3g')}]",
                    "verdict": ("better" if helped else "worse") if significant else "",
                    "wtl": f"{s['wins']} / {s['ties']} / {s['losses']}",
                    "win_rate": f"{s['win_rate']:.1%}",
                    "p": shown(s["wilcoxon_p"], ".3g"),
                    "n": s["n"],
                }
            )
    return lines


def diversity_lines(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The diversity table's lines (none when no prompt had two seeds)."""
    found = summary.get("diversity")
    if not found:
        return []
    info = MetricInfo(found["metric"], found["scale"])
    return table_lines({info.name: found}, [info], summary["baseline"])


def render_html(
    summary: Mapping[str, Any],
    metrics: Sequence[MetricInfo],
    run: Mapping[str, Any],
    *,
    figures: Sequence[Picture],
    strips: Sequence[Picture],
    has_norm_ratios: bool,
    n_images: int,
    grid_samples: int,
) -> str:
    """The whole page: run description, figures, overall and per-group tables, image strips."""
    baseline = summary["baseline"]
    return _ENVIRONMENT.get_template("report.html").render(
        n_samples=summary["n_samples"],
        arms=summary["arms"],
        baseline=baseline,
        resamples=summary["bootstrap_resamples"],
        run=[(str(k), str(v)) for k, v in run.items()],
        figures=figures,
        has_norm_ratios=has_norm_ratios,
        overall=table_lines(summary["overall"], metrics, baseline),
        groups=[(g, table_lines(b, metrics, baseline)) for g, b in summary["groups"].items()],
        diversity=diversity_lines(summary),
        diversity_prompts=(summary.get("diversity") or {}).get("prompts", 0),
        strips=strips,
        n_images=n_images,
        grid_samples=grid_samples,
    )
