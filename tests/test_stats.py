"""Paired statistics against hand-worked examples and scipy's own implementations."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from golden_noise.errors import GoldenNoiseError
from golden_noise.stats import compare_arms, paired_bootstrap_ci, paired_stats, wilcoxon_p


def test_hand_example_counts_and_means():
    baseline = [0.20, 0.30, 0.25, 0.40, 0.10]
    arm = [0.25, 0.30, 0.20, 0.50, 0.30]
    s = paired_stats(baseline, arm)
    assert (s["wins"], s["ties"], s["losses"]) == (3, 1, 1)
    assert s["win_rate"] == pytest.approx(3 / 5)
    assert s["mean_baseline"] == pytest.approx(0.25)
    assert s["mean_arm"] == pytest.approx(0.31)
    assert s["mean_diff"] == pytest.approx(0.06)
    assert s["ci95_low"] <= s["mean_diff"] <= s["ci95_high"]


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
    import golden_noise.stats as module

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
    scores = {
        "standard": [0.1, 0.2, 0.3, 0.4],
        "golden": [0.2, 0.2, 0.5, 0.3],
        "teacher": [0.3, 0.4, 0.5, 0.6],
    }
    groups = ["a", "a", "b", "b"]
    result = compare_arms(rows_for(list(scores), scores, groups), {"m": True}, resamples=500)
    overall = result["overall"]["m"]
    assert result["arms"] == ["standard", "golden", "teacher"]
    assert overall["means"]["golden"] == pytest.approx(0.3)
    assert overall["vs_standard"]["golden"] == paired_stats(
        scores["standard"], scores["golden"], resamples=500
    )
    assert overall["vs_standard"]["teacher"]["wins"] == 4
    group_b = result["groups"]["b"]["m"]["vs_standard"]["golden"]
    assert (group_b["wins"], group_b["losses"], group_b["n"]) == (1, 1, 2)
    assert set(result["groups"]) == {"a", "b"}


def test_compare_arms_refuses_unpaired_rows():
    scores = {"standard": [0.1, 0.2], "golden": [0.2, 0.3]}
    rows = rows_for(list(scores), scores, [None, None])[:-1]
    with pytest.raises(GoldenNoiseError, match="every sample needs every arm"):
        compare_arms(rows, {"m": True})
    with pytest.raises(GoldenNoiseError, match="'standard' arm"):
        compare_arms([r for r in rows if r["arm"] == "golden"], {"m": True})
