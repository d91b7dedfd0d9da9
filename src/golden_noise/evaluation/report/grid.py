"""Which samples a report shows, and the image grid: one row per (prompt, seed), one column per
arm, as a PNG via Pillow (a file beside the report; the page shows per-group strips)."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from golden_noise.evaluation.report.rows import ImageRow

CELL = 256  # images are shown at most this many pixels wide and high
LABEL_WIDTH = 320
HEADER = 28
PAD = 6


def complete_samples(rows: Sequence[ImageRow], arms: Sequence[str]) -> list[dict[str, ImageRow]]:
    """Every sample (in row order) that has an image in every arm, as arm -> row."""
    by_sample: dict[tuple[int, int], dict[str, ImageRow]] = {}
    for row in rows:
        by_sample.setdefault(row.sample, {})[row.arm] = row
    return [cells for cells in by_sample.values() if all(arm in cells for arm in arms)]


def grid_samples(
    rows: Sequence[ImageRow], arms: Sequence[str], limit: int
) -> list[dict[str, ImageRow]]:
    """The first `limit` samples (in row order) that have an image in every arm."""
    return complete_samples(rows, arms)[:limit]


def group_samples(
    rows: Sequence[ImageRow], arms: Sequence[str], per_group: int, unnamed: str = "all"
) -> dict[str, list[dict[str, ImageRow]]]:
    """The first `per_group` complete samples of each group (samples without one: `unnamed`)."""
    groups: dict[str, list[dict[str, ImageRow]]] = {}
    for cells in complete_samples(rows, arms):
        chosen = groups.setdefault(cells[arms[0]].group or unnamed, [])
        if len(chosen) < per_group:
            chosen.append(cells)
    return groups


def _thumbnail(path: Path) -> Image.Image:
    image = Image.open(path).convert("RGB")
    scale = CELL / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)


def render_grid_png(
    folder: Path, samples: Sequence[dict[str, ImageRow]], arms: Sequence[str]
) -> bytes:
    """PNG bytes: a header of arm names, then per sample its prompt and seed and each arm."""
    font = ImageFont.load_default(size=16)
    width = LABEL_WIDTH + len(arms) * (CELL + PAD) + PAD
    height = HEADER + len(samples) * (CELL + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for column, arm in enumerate(arms):
        draw.text((LABEL_WIDTH + column * (CELL + PAD) + PAD, 4), arm, fill="black", font=font)
    for line, cells in enumerate(samples):
        top = HEADER + line * (CELL + PAD)
        first = cells[arms[0]]
        label = textwrap.fill(first.prompt, width=34)
        draw.multiline_text(
            (PAD, top + PAD), f"{label}\nseed {first.seed}", fill="black", font=font
        )
        for column, arm in enumerate(arms):
            canvas.paste(
                _thumbnail(folder / cells[arm].file),
                (LABEL_WIDTH + column * (CELL + PAD) + PAD, top),
            )
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
