"""Write every report file from the per-image rows and the paired statistics.

Each file is written atomically, so a crash while reporting never leaves half a file next
to images and scores that are already on disk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golden_noise.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from golden_noise.report.grid import grid_samples, render_grid_png
from golden_noise.report.html import render_html

METRICS_NAME = "metrics.json"
CSV_NAME = "images.csv"
HTML_NAME = "report.html"
GRID_NAME = "grid.png"


@dataclass(frozen=True)
class MetricInfo:
    """What a metric's numbers mean, shown next to them."""

    name: str
    scale: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class ImageRow:
    """One generated image and its scores; `file` is relative to the report folder."""

    prompt_index: int
    prompt: str
    seed: int
    arm: str
    file: str
    group: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def sample(self) -> tuple[int, int]:
        """What pairs images across arms: the same prompt and the same seed."""
        return (self.prompt_index, self.seed)


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


def write_report(
    folder: Path,
    rows: Sequence[ImageRow],
    metrics: Sequence[MetricInfo],
    summary: Mapping[str, Any],
    run: Mapping[str, Any],
    max_grid_samples: int = 32,
) -> dict[str, Path]:
    """Write metrics.json, images.csv, report.html and grid.png into `folder`.

    `summary` is `golden_noise.stats.compare_arms`' result; `run` describes the run
    (pipeline, NPNet, prompts, seeds, ...). The grid shows the first `max_grid_samples`
    samples with every arm side by side; images are read from `folder / row.file`.
    """
    folder = Path(folder)
    paths = {name: folder / name for name in (METRICS_NAME, CSV_NAME, HTML_NAME, GRID_NAME)}
    atomic_write_json(
        paths[METRICS_NAME],
        {
            "run": dict(run),
            "metrics": {
                m.name: {"scale": m.scale, "higher_is_better": m.higher_is_better} for m in metrics
            },
            "summary": dict(summary),
        },
    )
    atomic_write_text(paths[CSV_NAME], csv_text(rows, metrics))
    samples = grid_samples(rows, summary["arms"], max_grid_samples)
    atomic_write_text(
        paths[HTML_NAME], render_html(folder, samples, summary, metrics, run, len(rows))
    )
    atomic_write_bytes(paths[GRID_NAME], render_grid_png(folder, samples, summary["arms"]))
    return paths
