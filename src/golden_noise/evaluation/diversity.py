"""Do an arm's images still differ from seed to seed? Diversity among one prompt's images.

A start noise can raise every preference score by making all seeds draw the same picture:
shrinking the noise does it (which is why the norm-matched arm exists), and so does a large
prompt-specific offset at the noise's own norm, which no norm control catches. On the toy
world a per-prompt offset that matches the local-search teacher's soft gain leaves a third
of standard noise's diversity, where the teacher keeps all of it (docs/prompt-offsets.md).
So every evaluation reports, per arm, how different a prompt's images are.

Metric: for each prompt with at least two seeds, the mean pairwise RMS distance between its
images (RGB in [0, 1], resized to at most `SIDE` px a side so that megapixel images cost
little); each arm is paired with standard prompt by prompt (`evaluation.stats`), and the
mean per-prompt ratio arm / standard is given beside. A pixel distance is a crude proxy:
it sees layout, colour and count changes (what the toy's teacher changes) and is blind to
perceptual sameness that LPIPS or DreamSim would catch; it needs no weights.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from golden_noise.evaluation.stats import BOOTSTRAP_RESAMPLES, paired_stats

if TYPE_CHECKING:
    from golden_noise.evaluation.report.rows import ImageRow

SIDE = 64
METRIC = "pixel-diversity"
SCALE = "mean pairwise RMS pixel distance among a prompt's seeds (RGB in [0, 1]), per prompt"


def pairwise_distance(images: np.ndarray) -> float:
    """Mean RMS distance over all pairs of `images` `[n >= 2, ...]` (float, same shape)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    squared = (flat * flat).sum(axis=1)
    gram = flat @ flat.T
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * gram, 0) / flat.shape[1])
    return float(distances[np.triu_indices(len(images), 1)].mean())


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if max(image.size) > SIDE:
            image = image.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.float32) / 255.0


def diversity_by_prompt(images: Sequence[np.ndarray], prompts: Sequence[str]) -> dict[str, float]:
    """`{prompt: diversity}` of one arm's images (float, same shape; `prompts[i]` is the
    prompt of `images[i]`), for every prompt with >= 2 of them."""
    rows: dict[str, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        rows[prompt].append(index)
    return {
        prompt: pairwise_distance(np.stack([images[i] for i in indices]))
        for prompt, indices in rows.items()
        if len(indices) >= 2
    }


def prompt_diversity(folder: Path, rows: Sequence[ImageRow]) -> dict[str, dict[str, float]]:
    """`{arm: {prompt: diversity}}` for every prompt with >= 2 seeds, read from `folder`."""
    by_arm: dict[str, list[ImageRow]] = defaultdict(list)
    for row in rows:
        by_arm[row.arm].append(row)
    return {
        arm: diversity_by_prompt(
            [_pixels(Path(folder) / row.file) for row in mine], [row.prompt for row in mine]
        )
        for arm, mine in by_arm.items()
    }


def compare_diversity(
    per_arm: dict[str, dict[str, float]],
    baseline: str = "standard",
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any] | None:
    """Each arm's per-prompt diversity paired with `baseline`'s (None: no prompt has two
    seeds); higher is better, so a "win" is a prompt whose images differ more."""
    prompts = sorted(per_arm.get(baseline, {}))
    if not prompts:
        return None
    base = np.array([per_arm[baseline][p] for p in prompts])
    versus = {}
    for arm, values in per_arm.items():
        if arm == baseline:
            continue
        mine = np.array([values[p] for p in prompts])
        varied = base > 0  # a prompt whose standard images are all alike has no ratio
        ratio = float(np.mean(mine[varied] / base[varied])) if varied.any() else float("nan")
        versus[arm] = {**paired_stats(base, mine, True, resamples), "ratio": ratio}
    return {"metric": METRIC, "scale": SCALE, "prompts": len(prompts), f"vs_{baseline}": versus}
