"""Paired statistics for "did golden noise help": the same prompt and seed scored per arm.

For every metric and every arm against the baseline arm (standard noise): both means, the
mean paired difference (arm - baseline) with a paired percentile bootstrap 95% interval
(scipy.stats.bootstrap), win/tie/loss counts with the win rate (wins / pairs; a win is
"better" in the metric's direction, a tie is an exact equality), and the two-sided Wilcoxon
signed-rank p-value (zero differences dropped, scipy's default; 1.0 when every pair ties).
Overall and per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from golden_noise.core.errors import GoldenNoiseError

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
_BOOTSTRAP_VALUES = 2**22  # resampled values held at once, bounding memory for large n


def _mean_difference(baseline: np.ndarray, arm: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(arm - baseline, axis=axis)


def paired_bootstrap_ci(
    baseline: np.ndarray,
    arm: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `arm - baseline`, resampling whole pairs.

    scipy's `bootstrap(paired=True)` draws the same sample indices for both arms, which keeps
    each prompt-and-seed pair together (what makes the comparison paired). NaN when there
    are fewer than two pairs: one pair says nothing about how the difference varies.
    """
    baseline = np.asarray(baseline, dtype=np.float64)
    arm = np.asarray(arm, dtype=np.float64)
    if len(baseline) < 2:
        return float("nan"), float("nan")
    interval = scipy_stats.bootstrap(
        (baseline, arm),
        _mean_difference,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=max(1, _BOOTSTRAP_VALUES // len(baseline)),
        confidence_level=confidence,
        method="percentile",
        rng=seed,
    ).confidence_interval
    return float(interval.low), float(interval.high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when all differences are zero."""
    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) == 0:
        return float("nan")
    if not np.any(differences):
        return 1.0
    return float(scipy_stats.wilcoxon(differences).pvalue)


def paired_stats(
    baseline: Sequence[float],
    arm: Sequence[float],
    higher_is_better: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float | int]:
    """Statistics of `arm` against `baseline`, where element i of both is the same sample."""
    baseline = np.asarray(baseline, dtype=np.float64)
    arm = np.asarray(arm, dtype=np.float64)
    if baseline.shape != arm.shape or baseline.ndim != 1:
        raise GoldenNoiseError(
            f"expected two equal-length 1-D score lists, got shapes {baseline.shape} "
            f"and {arm.shape}"
        )
    difference = arm - baseline
    better = difference > 0 if higher_is_better else difference < 0
    ties = difference == 0
    n = len(difference)
    low, high = paired_bootstrap_ci(baseline, arm, resamples=resamples, seed=seed)
    return {
        "n": n,
        "mean_baseline": float(baseline.mean()) if n else float("nan"),
        "mean_arm": float(arm.mean()) if n else float("nan"),
        "mean_diff": float(difference.mean()) if n else float("nan"),
        "ci95_low": low,
        "ci95_high": high,
        "wins": int(better.sum()),
        "ties": int(ties.sum()),
        "losses": int(n - better.sum() - ties.sum()),
        "win_rate": float(better.mean()) if n else float("nan"),
        "wilcoxon_p": wilcoxon_p(difference),
    }


def compare_arms(
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, bool],
    baseline: str = "standard",
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Per-arm means and paired statistics of each arm against `baseline`.

    `rows`: one per image, with keys `sample` (what pairs images across arms, e.g.
    (prompt index, seed)), `arm`, `group` (e.g. the prompt type; may be None) and one value
    per metric. `metrics`: name -> higher_is_better. Returns
    `{"overall": block, "groups": {group: block}}`, a block being
    `{metric: {"means": {arm: mean}, "vs_<baseline>": {arm: paired_stats}}}`.
    """
    arms = list(dict.fromkeys(row["arm"] for row in rows))
    if baseline not in arms:
        raise GoldenNoiseError(f"expected a {baseline!r} arm among the rows, found {arms}")
    by_arm: dict[str, dict[Any, Mapping[str, Any]]] = {arm: {} for arm in arms}
    for row in rows:
        if row["sample"] in by_arm[row["arm"]]:
            raise GoldenNoiseError(f"sample {row['sample']!r} appears twice in arm {row['arm']!r}")
        by_arm[row["arm"]][row["sample"]] = row
    samples = list(by_arm[baseline])
    for arm in arms:
        if set(by_arm[arm]) != set(samples):
            raise GoldenNoiseError(
                f"arm {arm!r} has {len(by_arm[arm])} samples, {baseline!r} has {len(samples)}: "
                "every sample needs every arm for a paired comparison"
            )
    groups = sorted({by_arm[baseline][s].get("group") for s in samples} - {None}, key=str)

    def block(keys: list[Any]) -> dict[str, Any]:
        out = {}
        for metric, higher in metrics.items():
            values = {arm: [float(by_arm[arm][k][metric]) for k in keys] for arm in arms}
            out[metric] = {
                "higher_is_better": higher,
                "means": {arm: float(np.mean(v)) for arm, v in values.items()},
                f"vs_{baseline}": {
                    arm: paired_stats(values[baseline], values[arm], higher, resamples, seed)
                    for arm in arms
                    if arm != baseline
                },
            }
        return out

    return {
        "n_samples": len(samples),
        "arms": arms,
        "baseline": baseline,
        "bootstrap_resamples": resamples,
        "overall": block(samples),
        "groups": {
            str(g): block([s for s in samples if by_arm[baseline][s].get("group") == g])
            for g in groups
        },
    }
