"""study/stats.py against scipy and float64 numpy on hand-made numbers: the per-row interval, the paired
comparison (t interval, scipy's paired t-test, the fixed-seed bootstrap) and the verdict words."""
import math

import numpy as np
import pytest
import scipy.stats

from study import stats


def test_summary_interval_is_the_t_interval_of_the_mean():
    losses = [5.0, 5.2, 5.45]
    s = stats.summarize(losses)
    v = np.asarray(losses, np.float64)
    low, high = scipy.stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert (s.loss_low, s.loss_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert s.loss_std == pytest.approx(v.std(ddof=1))
    one = stats.summarize([4.0])
    assert math.isnan(one.loss_low) and math.isnan(one.loss_high)


def test_paired_comparison_against_scipy_and_numpy():
    a = [5.80, 5.77, 5.86]  # e.g. RigL + KD, seeds 0, 1, 2
    b = [5.66, 5.64, 5.69]  # static + KD on the same seeds
    c = stats.paired(a, b)
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    assert c.n == 3 and c.diff == pytest.approx(d.mean(), abs=1e-15)
    low, high = scipy.stats.t.interval(0.95, 2, loc=d.mean(), scale=scipy.stats.sem(d))
    assert (c.low, c.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert c.p == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=1e-12)
    # the bootstrap: 10,000 resamples of the seeds from numpy's generator seeded 0, percentile interval
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, 3, size=(10_000, 3))].mean(axis=1)
    assert (c.boot_low, c.boot_high) == tuple(np.percentile(means, [2.5, 97.5]))
    assert stats.paired(a, b) == c  # fixed seed: the same numbers, the same interval
    assert low > 0 and stats.verdict(c) == "contradicted"  # A (RigL) higher on every seed
    assert stats.verdict(stats.paired(b, a)) == "supported"


def test_verdict_follows_the_interval_not_the_means():
    # means 0.05 apart but the differences swing in sign: not separated
    c = stats.paired([5.0, 5.3, 5.0], [5.1, 5.0, 5.05])
    assert c.low < 0 < c.high and stats.verdict(c) == "not separated at 3 seeds"
    # a small but consistent difference is separated (the old "sum of stds" rule would not have)
    a, b = [5.00, 5.30, 5.60], [5.020, 5.322, 5.621]
    assert abs(np.mean(a) - np.mean(b)) < np.std(a, ddof=1) + np.std(b, ddof=1)
    assert stats.verdict(stats.paired(a, b)) == "supported"
    # one seed: nothing separated; identical rows (the null control): difference 0, no p
    one = stats.paired([5.0], [6.0])
    assert stats.verdict(one) == "not separated at 1 seed" and math.isnan(one.p)
    same = stats.paired([5.1, 5.2, 5.3], [5.1, 5.2, 5.3])
    assert same.diff == 0 and (same.low, same.high) == (0, 0) and math.isnan(same.p)
    assert stats.verdict(same) == "not separated at 3 seeds"
    with pytest.raises(ValueError, match="same seeds on both rows"):
        stats.paired([5.0, 5.1], [5.0])


def test_claims_section_words_numbers_horizon_and_missing_rows():
    losses = {"dense_short": [5.3, 5.4, 5.5], "static_kd": [5.6, 5.7, 5.8], "rigl_kd": [5.55, 5.66, 5.74]}
    text = stats.claims_section(losses, {"static_kd": "static KD", "rigl_kd": "RigL KD"}, "150 steps")
    assert text.startswith("Rule: " + stats.RULE)
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) == 4  # claims 1, 2, 3 (x2); no fair dense row: those comparisons are left out
    assert "**not tested** at 150 steps (no row static)" in lines[0]
    c = stats.paired(losses["rigl_kd"], losses["static_kd"])
    assert f"RigL KD vs static KD: **{stats.verdict(c)}** at 150 steps. Eval loss 5.650 ± 0.095 vs 5.700 ± 0.100" \
        in lines[1]
    assert stats.paired_text(c) in lines[1] and "paired t-test p = " in lines[1]
    assert "**contradicted** at 150 steps" in lines[2]  # RigL above dense_short by 0.25 on every seed
