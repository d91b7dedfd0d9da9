"""Paired statistics against hand-worked examples and scipy's own implementations."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.evaluation.stats import (
    compare_arms,
    paired_bootstrap_ci,
    paired_stats,
    wilcoxon_p,
)


def test_hand_example_counts_and_means():
    baseline = [0.20, 0.30, 0.25, 0.40, 0.10]
    arm = [0.25, 0.30, 0.20, 0.50, 0.30]
    s = paired_stats(baseline, arm)
    assert (s["wins"], s["ties"], s["losses"]) == (3, 1, 1)
    assert s["win_rate"] == pytest.approx(3 / 5)
    assert s["mean_baseline"] == pytest.approx(0.25)
    assert s["mean_arm"] == pytest.approx(0.31)
    assert s["mean_diff"] == pytest.approx(0.06)
    # The exact bootstrap distribution: all 5^5 equally likely resamples of the five pair
    # differences; its 2.5% and 97.5% points are -0.01 and 0.14 (means of five differences
    # that are multiples of 0.05 lie on a 0.01 grid, and 10,000 draws land on the same grid
    # points; 1e-9 is float round-off of those sums).
    differences = np.subtract(arm, baseline)
    every = [differences[list(i)].mean() for i in itertools.product(range(5), repeat=5)]
    exact_low, exact_high = np.percentile(every, [2.5, 97.5])
    assert (exact_low, exact_high) == pytest.approx((-0.01, 0.14), abs=1e-9)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((exact_low, exact_high), abs=1e-9)


def test_lower_is_better_flips_wins():
    s = paired_stats([1.0, 2.0, 3.0], [0.5, 2.5, 2.0], higher_is_better=False)
    assert (s["wins"], s["ties"], s["losses"]) == (2, 0, 1)


def test_wilcoxon_matches_scipy_and_handles_all_ties():
    rng = np.random.default_rng(0)
    baseline = rng.normal(size=40)
    arm = baseline + 0.3 + rng.normal(size=40)
    expected = scipy_stats.wilcoxon(arm - baseline).pvalue
    assert paired_stats(baseline, arm)["wilcoxon_p"] == pytest.approx(expected)
    assert wilcoxon_p(np.zeros(7)) == 1.0
    tied = paired_stats([1, 0, 1], [1, 0, 1])
    assert tied["wilcoxon_p"] == 1.0 and tied["ties"] == 3 and tied["win_rate"] == 0.0


def test_wilcoxon_drops_tied_pairs_hand_computed():
    """The convention the report names: zero differences (tied pairs) are dropped before
    ranking (Wilcoxon's own method, scipy's default), then the two-sided p.

    Small exact case, d = [0, 0, 0, 1, 2, -3, 4]: the three zeros go, ranks of |d| are 1..4
    and the negative one has rank 3, so W- = 3; of the 2^4 equally likely sign patterns, five
    have a rank sum <= 3 ({}, {1}, {2}, {3}, {1, 2}): p = 2 * 5 / 16 = 0.625.

    The README's overall toy-correct row (a 0/1 metric): 75 wins, 56 losses, 893 ties.
    Dropping the ties leaves n = 131 pairs, all |d| = 1 (one tie group, average rank 66), so
    W- = 56 * 66 = 3696; the normal approximation (n > 50) has mean n(n+1)/4 = 4323 and, with
    the tie correction, variance n(n+1)(2n+1)/24 - (n^3 - n)/48 = n(n+1)^2/16 = 142659:
    z = -627 / sqrt(142659) and p = erfc(|z| / sqrt 2) = 0.0969, the README's 0.097.
    Counting the ties ("zsplit") would give 0.29.
    """
    assert wilcoxon_p(np.array([0, 0, 0, 1, 2, -3, 4])) == pytest.approx(0.625, abs=1e-12)
    readme_row = np.array([1.0] * 75 + [-1.0] * 56 + [0.0] * 893)
    z = 627 / math.sqrt(142659)
    # double precision on both sides: 1e-12 is far below the 0.2 shift counting ties makes
    assert wilcoxon_p(readme_row) == pytest.approx(math.erfc(z / math.sqrt(2)), abs=1e-12)
    assert math.erfc(z / math.sqrt(2)) == pytest.approx(0.0969, abs=5e-5)


def _hand_paired_bootstrap(baseline, arm, resamples=10_000, seed=5):
    """An independent percentile bootstrap: resample pair indices, take mean differences."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(baseline), size=(resamples, len(baseline)))
    means = (arm[picks] - baseline[picks]).mean(axis=1)
    return np.percentile(means, [2.5, 97.5])


def test_paired_bootstrap_agrees_with_a_hand_resampler_and_normal_theory():
    rng = np.random.default_rng(1)
    baseline = rng.normal(size=400)
    arm = baseline + 0.1 + 0.5 * rng.normal(size=400)
    low, high = paired_bootstrap_ci(baseline, arm)
    hand_low, hand_high = _hand_paired_bootstrap(baseline, arm)
    difference = arm - baseline
    se = difference.std(ddof=1) / np.sqrt(len(difference))
    # Two 10,000-resample percentile endpoints differ by ~0.04 standard errors (Monte Carlo
    # sd); 0.25 se is over 5 of those, and no float detail of the CPU comes near it.
    assert low == pytest.approx(hand_low, abs=0.25 * se)
    assert high == pytest.approx(hand_high, abs=0.25 * se)
    # the normal-theory half-width 1.96 se within 8% (n = 400: the bootstrap's own wobble)
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.08)
    assert paired_bootstrap_ci(baseline, arm) == (low, high)  # fixed seed


def test_bootstrap_keeps_pairs_together():
    """Arms that share most of their variance (the same prompt and noise): resampling each
    arm on its own would mix pairs and give an interval many times wider."""
    rng = np.random.default_rng(3)
    shared = rng.normal(size=200)
    baseline, arm = shared, shared + 0.05 + 0.01 * rng.normal(size=200)
    low, high = paired_bootstrap_ci(baseline, arm)
    unpaired_se = np.sqrt(baseline.var(ddof=1) / 200 + arm.var(ddof=1) / 200)
    assert high - low < 0.1 * (2 * 1.96 * unpaired_se)
    assert low > 0.04 and high < 0.06


def test_bootstrap_needs_two_pairs_and_bounds_memory(monkeypatch):
    import golden_noise.evaluation.stats as module

    assert all(np.isnan(paired_bootstrap_ci(np.array([1.0]), np.array([2.0]))))
    tied = paired_bootstrap_ci(np.zeros(5), np.zeros(5))
    assert tied == (0.0, 0.0)
    rng = np.random.default_rng(2)
    baseline, arm = rng.normal(size=100), rng.normal(size=100)
    whole = paired_bootstrap_ci(baseline, arm, resamples=995)
    monkeypatch.setattr(module, "_BOOTSTRAP_VALUES", 1000)  # 10 resamples per batch at n=100
    assert paired_bootstrap_ci(baseline, arm, resamples=995) == whole


def rows_for(arms, scores, groups):
    return [
        {"sample": (i, 0), "arm": arm, "group": groups[i], "m": scores[arm][i]}
        for arm in arms
        for i in range(len(groups))
    ]


def test_compare_arms_three_arms_and_groups():
    """Values are multiples of 1/4 (exact in binary), so every number is worked by hand.

    golden - standard = [0.25, 0, 0.5, -0.25]: mean 0.125, 2 wins / 1 tie / 1 loss; without
    the tie, |d| = 0.25, 0.5, 0.25 rank 1.5, 3, 1.5 and W- = 1.5; small samples get the exact
    sign-flip distribution: of 2^3 patterns, 3 have a negative rank sum <= 1.5 (0, 1.5, 1.5),
    so p = 2 * 3 / 8 = 0.75.
    The "loss" metric is the score negated, lower is better: the same wins, differences of
    the other sign.
    """
    scores = {
        "standard": [0.25, 0.5, 0.75, 1.0],
        "golden": [0.5, 0.5, 1.25, 0.75],
        "teacher": [0.5, 0.75, 1.0, 1.25],
    }
    groups = ["a", "a", "b", "b"]
    rows = rows_for(list(scores), scores, groups)
    for row in rows:
        row["loss"] = -row["m"]
    result = compare_arms(rows, {"m": True, "loss": False}, resamples=500)
    overall = result["overall"]["m"]
    assert result["arms"] == ["standard", "golden", "teacher"]
    assert overall["means"] == {"standard": 0.625, "golden": 0.75, "teacher": 0.875}
    golden = overall["vs_standard"]["golden"]
    assert (golden["wins"], golden["ties"], golden["losses"], golden["n"]) == (2, 1, 1, 4)
    assert golden["mean_diff"] == 0.125 and golden["win_rate"] == 0.5
    assert golden["wilcoxon_p"] == pytest.approx(0.75, abs=1e-12)
    # 500 resamples of four differences: both percentile ends lie on the 1/16 grid of means
    assert -0.25 < golden["ci95_low"] < 0.125 < golden["ci95_high"] <= 0.5
    loss = result["overall"]["loss"]["vs_standard"]["golden"]
    assert (loss["wins"], loss["ties"], loss["losses"]) == (2, 1, 1)
    assert loss["mean_diff"] == -0.125
    teacher = overall["vs_standard"]["teacher"]
    assert (teacher["wins"], teacher["mean_diff"]) == (4, 0.25)
    group_b = result["groups"]["b"]["m"]["vs_standard"]["golden"]
    assert (group_b["wins"], group_b["losses"], group_b["n"]) == (1, 1, 2)
    assert group_b["mean_diff"] == 0.125  # (0.5 - 0.25) / 2
    assert set(result["groups"]) == {"a", "b"}


def test_compare_arms_refuses_unpaired_rows():
    scores = {"standard": [0.1, 0.2], "golden": [0.2, 0.3]}
    rows = rows_for(list(scores), scores, [None, None])[:-1]
    with pytest.raises(GoldenNoiseError, match="every sample needs every arm"):
        compare_arms(rows, {"m": True})
    with pytest.raises(GoldenNoiseError, match="'standard' arm"):
        compare_arms([r for r in rows if r["arm"] == "golden"], {"m": True})
