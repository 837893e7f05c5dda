"""twinbench.stats on samples whose answers are known."""

import json
import math

import numpy as np
import pytest

from twinbench.stats import median_ci_ranks, ratio_ci, summarize

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)


def test_summarize_one_to_nine_exactly():
    result = summarize([9, 1, 8, 2, 7, 3, 6, 4, 5])  # order must not matter
    assert result["n"] == 9
    assert result["median"] == 5.0
    assert (result["q1"], result["q3"], result["iqr"]) == (3.0, 7.0, 4.0)
    assert (result["min"], result["max"], result["mean"]) == (1.0, 9.0, 5.0)
    assert result["std"] == pytest.approx(math.sqrt(7.5))  # ddof=1: sum of squares 60 / 8
    # n=9: ranks 2 and 8, coverage 1 - 2 * (1 + 9) / 512.
    assert result["ci_ranks"] == [2, 8]
    assert (result["ci_low"], result["ci_high"]) == (2.0, 8.0)
    assert result["ci_coverage"] == pytest.approx(1 - 20 / 512)
    assert result["ci_method"].startswith("order statistics")
    json.dumps(result)


def binomial_coverage(n, lo):
    """Coverage of [x_(lo), x_(n+1-lo)], computed independently of twinbench.stats."""
    left_out = sum(math.comb(n, k) for k in range(lo)) / 2**n
    return 1 - 2 * left_out


@pytest.mark.parametrize(
    "n, expected_lo, expected_hi",
    [(6, 1, 6), (10, 2, 9), (20, 6, 15), (50, 18, 33), (100, 40, 61)],
)
def test_order_statistic_ranks_match_the_binomial(n, expected_lo, expected_hi):
    lo, hi, coverage = median_ci_ranks(n, 0.95)
    assert (lo, hi) == (expected_lo, expected_hi)
    assert coverage == pytest.approx(binomial_coverage(n, lo))
    assert coverage >= 0.95
    assert binomial_coverage(n, lo + 1) < 0.95  # the next narrower interval would not do


def test_textbook_values_for_ten_and_twenty():
    # n=10: P(B <= 1) = 11/1024, so [x_(2), x_(9)] covers 1 - 22/1024 = 97.85%; [x_(3), x_(8)] only 89.1%.
    assert median_ci_ranks(10) == (2, 9, pytest.approx(1 - 22 / 1024))
    # n=20: P(B <= 5) = 21700/2**20, so [x_(6), x_(15)] covers 95.86%.
    assert median_ci_ranks(20) == (6, 15, pytest.approx(1 - 2 * 21700 / 2**20))


def test_small_n_falls_back_to_bootstrap_and_says_so():
    assert median_ci_ranks(5) is None  # even [min, max] covers only 1 - 2/32 = 93.75%
    result = summarize([3.0, 1.0, 2.0])
    assert result["ci_method"].startswith("bootstrap")
    assert result["ci_ranks"] is None and result["ci_coverage"] is None
    assert 1.0 <= result["ci_low"] <= result["median"] <= result["ci_high"] <= 3.0
    single = summarize([4.2])
    assert single["median"] == single["ci_low"] == single["ci_high"] == 4.2
    assert single["std"] == 0.0 and single["iqr"] == 0.0


def test_median_ci_covers_the_true_median_of_a_known_distribution():
    # Exponential(1) has median ln 2. A 95% interval should miss it about 2.5% of the time per
    # side; over 200 draws of n=30, allow generous room and check it is not far off.
    rng = np.random.default_rng(123)
    true_median = math.log(2)
    hits = 0
    for _ in range(200):
        result = summarize(rng.exponential(1.0, size=30))
        hits += result["ci_low"] <= true_median <= result["ci_high"]
    assert hits >= 180  # expected coverage is at least 95.7% for n=30


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_summarize_rejects_empty_and_bad_input(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_ratio_of_identical_samples_includes_one():
    samples = np.random.default_rng(0).normal(1.0, 0.05, size=40)
    result = ratio_ci(samples, samples)
    assert result["ratio"] == 1.0
    assert result["ci_low"] <= 1.0 <= result["ci_high"]
    assert result["differs"] is False
    assert result["verdict"].startswith("no measurable difference (95% CI ")
    json.dumps(result)


def test_clearly_different_samples_differ_with_ci_around_two():
    rng = np.random.default_rng(1)
    slow = rng.normal(2.0, 0.1, size=100)
    fast = rng.normal(1.0, 0.05, size=100)

    result = ratio_ci(slow, fast)
    assert result["differs"] is True
    assert 1.9 < result["ci_low"] <= result["ratio"] <= result["ci_high"] < 2.1
    assert result["verdict"].startswith(f"{result['ratio']:.2f}x slower (95% CI ")

    reverse = ratio_ci(fast, slow)
    assert reverse["differs"] is True
    assert 0.45 < reverse["ci_low"] <= reverse["ratio"] <= reverse["ci_high"] < 0.55
    assert "x faster" in reverse["verdict"]

    throughput = ratio_ci(slow, fast, labels=("faster", "slower"))
    assert "x faster" in throughput["verdict"]


def test_ratio_ci_is_deterministic_given_seed():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.1, 0.1, size=20), rng.normal(1.0, 0.1, size=25)
    assert ratio_ci(a, b, seed=7) == ratio_ci(a, b, seed=7)
    assert ratio_ci(a, b, seed=7)["ci_low"] != ratio_ci(a, b, seed=8)["ci_low"]


def test_ratio_ci_rejects_non_positive_samples():
    with pytest.raises(ValueError):
        ratio_ci([1.0, 2.0], [0.0, 1.0])


def test_runs_are_resampled_so_the_spread_between_processes_widens_the_interval():
    # Four runs (processes) per side; the windows of each run agree closely, the runs do not.
    rng = np.random.default_rng(3)
    run_means_a, run_means_b = [1.00, 1.04, 1.06, 1.10], [0.96, 0.99, 1.01, 1.04]
    a = np.concatenate([rng.normal(m, 0.002, size=6) for m in run_means_a])
    b = np.concatenate([rng.normal(m, 0.002, size=6) for m in run_means_b])
    runs = np.repeat(np.arange(4), 6)

    windows_only = ratio_ci(a, b)
    two_stage = ratio_ci(a, b, runs_a=runs, runs_b=runs)
    assert two_stage["ratio"] == windows_only["ratio"]  # the point estimate does not change
    assert two_stage["runs_resampled"] == [True, True] and windows_only["runs_resampled"] == [False, False]
    assert "runs, then samples within runs" in two_stage["method"]
    width = two_stage["ci_high"] - two_stage["ci_low"]
    assert width > 2 * (windows_only["ci_high"] - windows_only["ci_low"])
    # Resampling windows alone calls a 5% difference that four runs a side do not support.
    assert windows_only["differs"] and not two_stage["differs"]


def test_one_run_per_side_is_the_plain_bootstrap_and_labels_must_match():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.1, 0.1, size=12), rng.normal(1.0, 0.1, size=12)
    assert ratio_ci(a, b, runs_a=[0] * 12, runs_b=[7] * 12) == {**ratio_ci(a, b)}
    with pytest.raises(ValueError, match="runs must label every sample"):
        ratio_ci(a, b, runs_a=[0, 1], runs_b=[0] * 12)
