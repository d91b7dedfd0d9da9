"""Paired statistics against hand-worked examples and scipy's own implementations."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from golden_noise.errors import GoldenNoiseError
from golden_noise.stats import bootstrap_mean_ci, compare_arms, paired_stats, wilcoxon_p


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


def test_bootstrap_agrees_with_scipy_and_normal_theory():
    rng = np.random.default_rng(1)
    values = rng.normal(0.1, 1.0, size=400)
    low, high = bootstrap_mean_ci(values)
    theirs = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=10_000, method="percentile", rng=2
    ).confidence_interval
    assert low == pytest.approx(theirs.low, abs=0.01)
    assert high == pytest.approx(theirs.high, abs=0.01)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.08)
    assert bootstrap_mean_ci(values) == (low, high)  # fixed seed


def test_bootstrap_chunks_large_samples(monkeypatch):
    import golden_noise.stats as module

    monkeypatch.setattr(module, "_BOOTSTRAP_CHUNK", 1000)  # 10 resamples per chunk at n=100
    values = np.random.default_rng(2).normal(size=100)
    low, high = bootstrap_mean_ci(values, resamples=995)
    assert low < values.mean() < high


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
