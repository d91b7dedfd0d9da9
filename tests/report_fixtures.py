"""A small finished evaluation on disk (images + rows + statistics) for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from golden_noise.evaluation.report import ImageRow, MetricInfo
from golden_noise.evaluation.stats import compare_arms

METRICS = [
    MetricInfo("toy-soft", "0-1, 1 is perfect"),
    MetricInfo("distance", "lower is better", higher_is_better=False),
]
ARMS = ["standard", "golden", "teacher"]
PROMPTS = ["a red circle", 'a blue square left of a green triangle <&> "quoted"']


def norm_ratio(arm_index: int, prompt_index: int, seed: int) -> float | None:
    """Standard records none; the other arms a ratio below 1 that differs per sample."""
    return None if arm_index == 0 else 0.9 - 0.05 * arm_index + 0.01 * (prompt_index + seed)


def finished_run(folder: Path, seeds: int = 2) -> tuple[list[ImageRow], dict]:
    """Tiny 32x32 PNGs for 2 prompts x `seeds` seeds x 3 arms, scored, with statistics.

    Golden and teacher carry start-noise norm ratios (`norm_ratio`); standard does not.
    """
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for prompt_index, prompt in enumerate(PROMPTS):
        for seed in range(seeds):
            for arm_index, arm in enumerate(ARMS):
                file = f"images/{prompt_index:05d}-{seed}-{arm}.png"
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / file)
                rows.append(
                    ImageRow(
                        prompt_index=prompt_index,
                        prompt=prompt,
                        seed=seed,
                        arm=arm,
                        file=file,
                        group=["objects", "position"][prompt_index],
                        scores={
                            "toy-soft": 0.5 + 0.1 * arm_index + 0.01 * seed,
                            "distance": 1.0 - 0.2 * arm_index + 0.05 * prompt_index,
                        },
                        norm_ratio=norm_ratio(arm_index, prompt_index, seed),
                    )
                )
    summary = compare_arms(
        [{"sample": r.sample, "arm": r.arm, "group": r.group, **r.scores} for r in rows],
        {m.name: m.higher_is_better for m in METRICS},
        resamples=200,
    )
    return rows, summary
