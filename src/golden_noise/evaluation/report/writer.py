"""Write every report file from the per-image rows and the paired statistics.

Each file is written atomically, so a crash while reporting never leaves half a file next
to images and scores that are already on disk.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from golden_noise.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from golden_noise.core.json_values import finite_or_null
from golden_noise.evaluation.report.figures import (
    forest_figure,
    norm_ratio_figure,
    png_bytes,
    strip_figure,
)
from golden_noise.evaluation.report.grid import grid_samples, group_samples, render_grid_png
from golden_noise.evaluation.report.html import Picture, render_html
from golden_noise.evaluation.report.rows import ImageRow, MetricInfo

METRICS_NAME = "metrics.json"
CSV_NAME = "images.csv"
HTML_NAME = "report.html"
GRID_NAME = "grid.png"
FOREST_NAME = "forest.png"
NORM_RATIO_NAME = "norm_ratio.png"


def csv_text(rows: Sequence[ImageRow], metrics: Sequence[MetricInfo]) -> str:
    """One line per image: prompt, seed, arm, file and every metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["prompt_index", "prompt", "group", "seed", "arm", "file", *(m.name for m in metrics)]
    )
    for row in rows:
        writer.writerow(
            [row.prompt_index, row.prompt, row.group or "", row.seed, row.arm, row.file]
            + [f"{row.scores[m.name]:.6g}" for m in metrics]
        )
    return buffer.getvalue()


def norm_ratios(rows: Sequence[ImageRow], baseline: str) -> dict[str, list[float | None]]:
    """Each non-baseline arm's start-noise norm ratios in row order, None where an image did
    not record one (so positions still pair samples across arms); arms without any left out."""
    ratios: dict[str, list[float | None]] = {}
    for row in rows:
        if row.arm != baseline:
            ratios.setdefault(row.arm, []).append(row.norm_ratio)
    return {arm: r for arm, r in ratios.items() if any(v is not None for v in r)}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "group"


def figures(
    summary: Mapping[str, Any], metrics: Sequence[MetricInfo], rows: Sequence[ImageRow]
) -> list[Picture]:
    """The forest plot and, when the rows carry norm ratios, their distribution."""
    baseline = summary["baseline"]
    pictures = [
        Picture(
            "forest",
            "Difference from " + baseline,
            FOREST_NAME,
            png_bytes(forest_figure(summary, metrics)),
            "Each arm's mean paired difference from the baseline with its 95% interval, "
            "overall and per group; an interval clear of the dashed zero line is a difference "
            "the data support.",
        )
    ]
    ratios = norm_ratios(rows, baseline)
    if ratios:
        pictures.append(
            Picture(
                "norm-ratio",
                "Start-noise norm ratio",
                NORM_RATIO_NAME,
                png_bytes(norm_ratio_figure(ratios)),
                "||start latents|| / ||seed's own noise|| per sample. A narrow peak away from "
                "1 means the arm changes the noise's temperature; compare golden with the "
                "norm-matched arm to see what is left beyond that.",
            )
        )
    return pictures


def strips(
    folder: Path,
    rows: Sequence[ImageRow],
    metrics: Sequence[MetricInfo],
    arms: Sequence[str],
    per_group: int,
) -> list[Picture]:
    """One strip of the first `per_group` samples per group, arms in rows."""
    return [
        Picture(
            f"strip-{_slug(group)}",
            f"group {group}",
            f"strip-{_slug(group)}.png",
            png_bytes(strip_figure(folder, chosen, arms, metrics[0].name, group)),
        )
        for group, chosen in group_samples(rows, arms, per_group).items()
    ]


def write_report(
    folder: Path,
    rows: Sequence[ImageRow],
    metrics: Sequence[MetricInfo],
    summary: Mapping[str, Any],
    run: Mapping[str, Any],
    max_grid_samples: int = 32,
    strip_samples: int = 6,
) -> dict[str, Path]:
    """Write metrics.json, images.csv, report.html, its pictures and grid.png into `folder`.

    `summary` is `golden_noise.evaluation.stats.compare_arms`' result; `run` describes the run
    (pipeline, NPNet, prompts, seeds, ...). Every picture on the page is also a PNG beside
    it: forest.png, norm_ratio.png (when rows carry norm ratios) and strip-<group>.png
    (the first `strip_samples` samples of each group). grid.png shows the first
    `max_grid_samples` samples with every arm side by side. Images are read from
    `folder / row.file`. Returns every written file by name.
    """
    folder = Path(folder)
    arms = summary["arms"]
    record = {
        "run": dict(run),
        "metrics": {
            m.name: {"scale": m.scale, "higher_is_better": m.higher_is_better} for m in metrics
        },
        "summary": dict(summary),
    }
    atomic_write_json(folder / METRICS_NAME, finite_or_null(record))
    atomic_write_text(folder / CSV_NAME, csv_text(rows, metrics))
    shown = figures(summary, metrics, rows)
    strip_pictures = strips(folder, rows, metrics, arms, strip_samples)
    for picture in [*shown, *strip_pictures]:
        atomic_write_bytes(folder / picture.file, picture.png)
    grid = grid_samples(rows, arms, max_grid_samples)
    atomic_write_bytes(folder / GRID_NAME, render_grid_png(folder, grid, arms))
    page = render_html(
        summary,
        metrics,
        run,
        figures=shown,
        strips=strip_pictures,
        has_norm_ratios=any(p.file == NORM_RATIO_NAME for p in shown),
        n_images=len(rows),
        grid_samples=len(grid),
    )
    atomic_write_text(folder / HTML_NAME, page)
    names = [METRICS_NAME, CSV_NAME, GRID_NAME, *(p.file for p in shown + strip_pictures)]
    return {name: folder / name for name in [*names, HTML_NAME]}
