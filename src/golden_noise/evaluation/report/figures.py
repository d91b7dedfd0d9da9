"""The report's pictures, drawn with matplotlib's object API on the Agg canvas (no display).

- a forest plot: every arm's paired difference from the baseline, mean and 95% interval,
  overall and per group, one panel per metric; what 20 table rows say in one look;
- the distribution of each arm's start-noise norm ratio (||start latents|| / ||seed's
  noise||): an NPNet that only shrinks the noise (a lower "temperature") shows a narrow
  peak below 1, and the norm-matched arm tells whether that alone explains its gain;
- per-group image strips: a few samples of one prompt group, arms in rows, with scores.

Figures are built with `matplotlib.figure.Figure` rather than pyplot, so nothing global
(backends, open figures) is touched and the functions are safe to call from any thread.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

if TYPE_CHECKING:
    from golden_noise.evaluation.report.rows import ImageRow, MetricInfo

OVERALL = "overall"
DPI = 100
STRIP_CELL = 1.6  # inches per image in a strip (160 px at DPI)
THUMBNAIL = 256  # pixels: images are shrunk to at most this before drawing


@dataclass(frozen=True)
class Interval:
    """One line of the forest plot: a block (overall or a group), an arm, mean and interval."""

    block: str
    arm: str
    mean: float
    low: float
    high: float


def forest_intervals(summary: Mapping[str, Any], metric: str) -> list[Interval]:
    """`metric`'s differences from the baseline for every arm, overall then per group."""
    key = f"vs_{summary['baseline']}"
    blocks = {OVERALL: summary["overall"], **summary["groups"]}
    return [
        Interval(name, arm, s["mean_diff"], s["ci95_low"], s["ci95_high"])
        for name, block in blocks.items()
        for arm, s in block[metric][key].items()
    ]


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes (Agg)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def forest_figure(summary: Mapping[str, Any], metrics: Sequence[MetricInfo]) -> Figure:
    """One panel per metric; a row per block, one marker and interval line per arm."""
    baseline = summary["baseline"]
    arms = [arm for arm in summary["arms"] if arm != baseline]
    blocks = [OVERALL, *summary["groups"]]
    height = 1.0 + 0.25 * len(blocks) * max(1, len(arms))
    figure = Figure(figsize=(4.2 * len(metrics), height), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    offsets = np.linspace(-0.3, 0.3, len(arms)) if len(arms) > 1 else np.zeros(1)
    colours = [f"C{i}" for i in range(len(arms))]
    for ax, metric in zip(axes, metrics, strict=True):
        for interval in forest_intervals(summary, metric.name):
            k = arms.index(interval.arm)
            y = blocks.index(interval.block) + offsets[k]
            ax.errorbar(
                interval.mean,
                y,
                xerr=[[interval.mean - interval.low], [interval.high - interval.mean]],
                fmt="o",
                color=colours[k],
                markersize=4,
                capsize=2,
                label=interval.arm,
            )
        ax.axvline(0.0, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_yticks(range(len(blocks)), blocks)
        ax.invert_yaxis()
        direction = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"{metric.name} ({direction} is better)", fontsize=10)
        ax.set_xlabel(f"arm \u2212 {baseline}, mean and 95% interval")
        ax.grid(axis="x", color="0.9")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    figure.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=len(arms))
    return figure


def norm_ratio_figure(ratios: Mapping[str, Sequence[float | None]]) -> Figure:
    """A histogram per arm of ||start latents|| / ||seed's noise||, with 1 marked (images
    that recorded none are left out)."""
    figure = Figure(figsize=(6.0, 2.8), layout="constrained")
    ax = figure.subplots()
    known = {arm: [v for v in r if v is not None] for arm, r in ratios.items()}
    values = {arm: np.asarray(r, dtype=np.float64) for arm, r in known.items() if len(r)}
    everything = np.concatenate([*values.values(), [1.0]])
    low, high = float(everything.min()), float(everything.max())
    pad = max(0.01, 0.05 * (high - low))
    bins = np.linspace(low - pad, high + pad, 41)
    for k, (arm, r) in enumerate(values.items()):
        ax.hist(r, bins=bins, alpha=0.6, color=f"C{k}",
                label=f"{arm}: median {np.median(r):.3f} (n {len(r)})")  # fmt: skip
    ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ax.set_xlabel("||start latents|| / ||seed's own noise||  (1 = same temperature)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    return figure


def _thumbnail(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        return np.asarray(image)


def strip_figure(
    folder: Path,
    samples: Sequence[Mapping[str, ImageRow]],
    arms: Sequence[str],
    metric: str,
    title: str,
) -> Figure:
    """Arms in rows, samples in columns; each image titled with its `metric` score."""
    columns = max(1, len(samples))
    figure = Figure(
        figsize=(STRIP_CELL * columns + 0.8, STRIP_CELL * len(arms) + 1.0), layout="constrained"
    )
    axes = figure.subplots(len(arms), columns, squeeze=False)
    for column, cells in enumerate(samples):
        first = cells[arms[0]]
        label = textwrap.fill(textwrap.shorten(first.prompt, 72), 24)
        axes[0][column].set_title(f"{label}\nseed {first.seed}", fontsize=7)
        for line, arm in enumerate(arms):
            ax = axes[line][column]
            ax.imshow(_thumbnail(folder / cells[arm].file), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{metric} {cells[arm].scores.get(metric, float('nan')):.3g}",
                          fontsize=7)  # fmt: skip
            if column == 0:
                ax.set_ylabel(arm, fontsize=9)
    figure.suptitle(title, fontsize=10)
    return figure
