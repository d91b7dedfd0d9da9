"""What a report is made of: per-image rows and what each metric means.

Its own module so the writer, the HTML page and the grid all import these types from one
place below them, and none of them imports another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def shown(value: float, spec: str = ".4g") -> str:
    """`value` formatted by `spec`; "n/a" for NaN (e.g. an interval from one pair)."""
    return format(value, spec) if value == value else "n/a"  # NaN != NaN


@dataclass(frozen=True)
class MetricInfo:
    """What a metric's numbers mean, shown next to them."""

    name: str
    scale: str
    higher_is_better: bool = True


@dataclass
class ImageRow:
    """One generated image and its scores; `file` is relative to the report folder.

    `norm_ratio` is `||starting latents|| / ||seed's own noise||` for the image's arm, when
    the image recorded it (1.0 for standard).
    """

    prompt_index: int
    prompt: str
    seed: int
    arm: str
    file: str
    group: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    norm_ratio: float | None = None

    @property
    def sample(self) -> tuple[int, int]:
        """What pairs images across arms: the same prompt and the same seed."""
        return (self.prompt_index, self.seed)


def ratio_label(stats: dict[str, Any]) -> str:
    """The mean per-prompt ratio shown beside an arm's mean, e.g. ' (0.92x)', for statistics
    that have one (diversity's); '' for the others."""
    if "ratio" not in stats:
        return ""
    return f" ({stats['ratio']:.2f}x)" if math.isfinite(stats["ratio"]) else " (no ratio)"
