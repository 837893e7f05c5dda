"""Welch's TOST and the t distribution behind it (bench/results/equivalence.py), on synthetic numbers."""

import math

import pytest

from twinbench.results.equivalence import equivalence_table, final_accuracies, t_cdf, t_quantile, tost

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)


@pytest.mark.parametrize("t, df, expected", [
    (1.0, 1, 0.75),                # df = 1 is the Cauchy distribution: 1/2 + atan(t)/pi
    (-1.0, 1, 0.25),
    (2.0, 5, 0.9490302605850709),  # published table values
    (0.0, 7.3, 0.5),
    (1.959963984540054, 1e7, 0.975),  # large df: the normal distribution
])
def test_t_cdf_matches_known_values(t, df, expected):
    assert t_cdf(t, df) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("p, df, expected", [(0.95, 10, 1.8124611228107335), (0.975, 4, 2.7764451051977987),
                                             (0.05, 10, -1.8124611228107335), (0.75, 1, 1.0)])
def test_t_quantile_inverts_the_cdf(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-8)


def test_welch_tost_by_hand():
    a, b = [0.970, 0.975, 0.980, 0.972, 0.978], [0.971, 0.976, 0.979, 0.974, 0.977]
    result = tost(a, b, margin=0.01)
    mean_a, mean_b = sum(a) / 5, sum(b) / 5
    var_a = sum((x - mean_a) ** 2 for x in a) / 4 / 5
    var_b = sum((x - mean_b) ** 2 for x in b) / 4 / 5
    df = (var_a + var_b) ** 2 / (var_a ** 2 / 4 + var_b ** 2 / 4)
    assert result.difference == pytest.approx(mean_a - mean_b, abs=1e-12)
    assert result.df == pytest.approx(df, rel=1e-12)
    half = t_quantile(0.95, df) * math.sqrt(var_a + var_b)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean_a - mean_b - half, mean_a - mean_b + half), abs=1e-12)
    assert result.verdict == "equivalent" and result.p_value < 0.05


def test_a_difference_larger_than_the_margin_is_different():
    result = tost([0.90, 0.905, 0.91, 0.902, 0.908], [0.97, 0.975, 0.98, 0.972, 0.978], margin=0.01)
    assert result.verdict == "different"
    assert result.ci_high < -0.01 and result.p_value > 0.5


def test_noisy_seeds_are_inconclusive_and_more_seeds_decide():
    a, b = [0.95, 0.99, 0.96, 0.985], [0.955, 0.985, 0.97, 0.975]
    few = tost(a, b, margin=0.01)
    assert few.verdict == "inconclusive" and few.ci_low < -0.01 < few.ci_high
    many = tost(a * 8, b * 8, margin=0.01)  # the same spread, 8 times the seeds: a narrower interval
    assert many.verdict == "equivalent"


def test_a_significant_but_small_difference_is_still_equivalent():
    # Every seed of a is 0.2 points above b: a t-test calls that significant; the 1-point margin says it does not matter.
    b = [0.970, 0.971, 0.972, 0.973, 0.974]
    result = tost([x + 0.002 for x in b], b, margin=0.01)
    assert result.difference == pytest.approx(0.002, abs=1e-12)
    assert result.verdict == "equivalent"


def test_constant_samples_are_decided_exactly():
    assert tost([0.5, 0.5], [0.5, 0.5], margin=0.01).verdict == "equivalent"
    assert tost([0.6, 0.6], [0.5, 0.5], margin=0.01).verdict == "different"


@pytest.mark.parametrize("a, b, margin, alpha, message", [
    ([0.9], [0.9, 0.91], 0.01, 0.05, "at least 2 values"),
    ([0.9, float("nan")], [0.9, 0.91], 0.01, 0.05, "finite"),
    ([0.9, 0.91], [0.9, 0.91], 0.0, 0.05, "margin must be positive"),
    ([0.9, 0.91], [0.9, 0.91], 0.01, 0.5, "alpha must lie between"),
])
def test_bad_input_is_one_clear_error(a, b, margin, alpha, message):
    with pytest.raises(ValueError, match=message):
        tost(a, b, margin=margin, alpha=alpha)


def _record(implementation, backend, seed, accuracy, *, model="cifar_cnn", status="ok"):
    return {"kind": "train", "status": status, "finished": f"2026-12-02T00:00:0{seed}+00:00",
            "cell": {"model": model, "implementation": implementation, "backend": backend, "dataset": "digits"},
            "config": {"seed": seed}, "results": {"accuracy_after": accuracy}}


def test_the_table_pools_environments_and_calls_each_implementation_against_torch():
    torch_acc = [0.970, 0.975, 0.980, 0.972, 0.978]
    records = [_record("torch", "torch", s, a) for s, a in enumerate(torch_acc)]
    records += [_record("keras", "jax", s, a + 0.001) for s, a in enumerate(torch_acc)]  # same within noise
    records += [_record("tf_keras", "tensorflow", s, a - 0.05) for s, a in enumerate(torch_acc)]  # 5 points worse
    records += [_record("keras", "torch", 0, 0.97), _record("keras", "torch", 1, 0.2, status="failed")]
    lines = {line.split()[2]: line for line in equivalence_table(records, margin=0.01).splitlines()[2:]}
    assert lines["torch"].endswith("(reference)")
    assert lines["keras[jax]"].endswith("equivalent") and "+0.10" in lines["keras[jax]"]
    assert lines["tf_keras"].endswith("different") and "-5.00" in lines["tf_keras"]
    assert "needs 2+ seeds" in lines["keras[torch]"]  # the failed run is not a seed


def test_a_seed_run_twice_counts_once():
    records = [_record("torch", "torch", 0, 0.5), _record("torch", "torch", 0, 0.9), _record("torch", "torch", 1, 0.9)]
    (cell, seeds), = final_accuracies(records).items()
    assert seeds == {0: 0.9, 1: 0.9}
