"""The profiler-cost experiment's schedule and analysis on windows with a known cost (no framework needed).

The analysis must recover a per-sample cost that was put into the windows, cancel a drift of the
machine, call a cost over 1% a cost over 1%, and fail loudly on windows it cannot bracket.
"""

from pathlib import Path

import numpy as np
import pytest

from approx import assert_close_numbers, assert_same_text
from twinbench.studies.profiler_cost import (
    MIN_CYCLES,
    analyse,
    bracketed,
    cost_schedule,
    cost_text,
    pooled_direct,
    pooled_text,
    reanalyse,
)

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
STEP_S = 0.07  # seconds per step of the pretend machine
STEPS = 10


def _windows(per_sample_s, *, intervals=(0.15, 0.05, 0.015, 0.005), cycles=20, noise=0.05, drift=0.0, seed=0):
    """Windows as ``execute_cost`` writes them: the sampler costs ``per_sample_s`` per sample taken."""
    rng = np.random.default_rng(seed)
    windows = []
    for index, (cycle, interval) in enumerate(cost_schedule(intervals, cycles, seed=seed)):
        base = STEPS * STEP_S * (1 + drift * index) * (1 + noise * rng.standard_normal())
        # One sample per interval of wall time, each taking per_sample_s from the steps.
        seconds = base if interval is None else base / (1 - per_sample_s / interval)
        samples = 0 if interval is None else round(seconds / interval)
        windows.append({"cycle": cycle, "interval_s": interval, "seconds": seconds, "samples": samples})
    return windows


def test_schedule_alternates_off_and_on_and_runs_each_interval_once_per_cycle():
    schedule = cost_schedule([0.15, 0.05, 0.005], 4, seed=3)
    assert len(schedule) == 1 + 2 * 3 * 4
    assert [interval for _, interval in schedule[0::2]] == [None] * 13  # off first, last, and between
    for cycle in range(4):
        assert sorted(i for c, i in schedule[1::2] if c == cycle) == [0.005, 0.05, 0.15]
    orders = {tuple(i for c, i in schedule[1::2] if c == cycle) for cycle in range(4)}
    assert len(orders) > 1  # shuffled anew each cycle
    assert cost_schedule([0.15, 0.05, 0.005], 4, seed=3) == schedule  # and reproducibly


def test_a_linear_drift_cancels_in_the_bracket():
    rows = bracketed(_windows(0.0, noise=0.0, drift=0.01))
    assert max(abs(row["slowdown"]) for row in rows) < 1e-12


def test_recovers_a_known_cost_per_sample_through_the_noise():
    truth = 4e-4  # 0.4 ms per sample: 0.27% of step time at one sample per 0.15 s
    result = analyse(_windows(truth), n_boot=500)
    low, high = result["per_sample_s"]["ci"]
    assert low < truth < high and high - low < 3e-4
    production = result["production"]
    share = result["per_sample_s"]["value"] / 0.15  # of wall time, at one sample per 0.15 s
    assert production["pct"] == pytest.approx(100 * share / (1 - share))
    assert production["shown_under_limit"] and production["ci_pct"][1] < 1.0
    # The direct estimate at 0.15 s cannot resolve it (5% noise); the amplified one can.
    direct = result["direct"]
    assert direct["interval_s"] == 0.15 and direct["ci_pct"][1] - direct["ci_pct"][0] > 1.0
    # At the shortest interval the cost is large, measured on its own, and the line goes through it.
    fastest = result["per_interval"][-1]
    assert fastest["interval_s"] == 0.005 and fastest["ci_pct"][0] > 5
    assert fastest["ci_pct"][0] < fastest["predicted_pct"] < fastest["ci_pct"][1]


def test_a_cost_over_the_limit_is_called_so():
    result = analyse(_windows(3e-3), n_boot=500)  # 3 ms per sample: 2% at 0.15 s
    production = result["production"]
    assert production["pct"] == pytest.approx(2.0, abs=0.3)
    assert not production["under_limit"] and not production["shown_under_limit"]
    assert "NOT under 1%" in "\n".join(cost_text("cifar_cnn torch", result))


def test_noise_without_cost_is_not_called_a_cost():
    result = analyse(_windows(0.0, seed=5), n_boot=500)
    low, high = result["production"]["ci_pct"]
    assert low < 0 < high and high < 0.2
    text = "\n".join(cost_text("cifar_cnn torch", result))
    assert "under 1%: the whole CI is below it" in text and "measured directly at 0.15 s" in text


def test_windows_that_cannot_be_bracketed_are_refused():
    with pytest.raises(ValueError, match="no window with the sampler on"):
        analyse([{"cycle": 0, "interval_s": None, "seconds": 1.0, "samples": 0}])
    lonely = [{"cycle": 0, "interval_s": 0.15, "seconds": 1.0, "samples": 6},
              {"cycle": 0, "interval_s": 0.05, "seconds": 1.0, "samples": 20}]
    with pytest.raises(ValueError, match="window 0 .* has no off window beside it"):
        bracketed(lonely)


def test_too_few_cycles_give_no_interval_and_no_verdict():
    result = analyse(_windows(0.0, cycles=MIN_CYCLES - 1), n_boot=100)
    assert result["per_sample_s"]["ci"] is None and result["production"]["ci_pct"] is None
    assert not result["production"]["shown_under_limit"]
    assert "no confidence interval from 4 cycles (at least 5 needed): nothing shown" in "\n".join(
        cost_text("cifar_cnn torch", result))
    assert analyse(_windows(0.0, cycles=MIN_CYCLES), n_boot=100)["per_sample_s"]["ci"] is not None


def test_windows_without_a_sample_inside_are_refused():
    windows = [dict(window, samples=0) for window in _windows(0.0, cycles=2)]
    with pytest.raises(ValueError, match="no sample was taken inside any window"):
        analyse(windows)


def test_reanalysing_a_record_gives_its_analysis():
    windows = _windows(2e-4, cycles=6)
    record = {"windows": windows, "config": {"production_interval_s": 0.15, "n_boot": 300, "seed": 0},
              "analysis": analyse(windows, n_boot=300)}
    assert reanalyse(record) == record["analysis"]


def test_the_intercept_check_finds_a_cost_per_window_that_the_line_through_the_origin_misses():
    clean = analyse(_windows(2e-4, noise=0.01), n_boot=300)["with_intercept"]
    assert clean["intercept_ci_pct"][0] < 0 < clean["intercept_ci_pct"][1]
    # A fixed 3% per window (say, a thread that cost time just by running): the intercept shows it.
    windows = [dict(w, seconds=w["seconds"] * (1.03 if w["interval_s"] else 1.0)) for w in _windows(2e-4, noise=0.01)]
    fixed = analyse(windows, n_boot=300)["with_intercept"]
    assert 2.0 < fixed["intercept_ci_pct"][0] and fixed["intercept_ci_pct"][1] < 4.0
    assert fixed["per_sample_s"] == pytest.approx(2e-4, rel=0.3)


def test_pooling_experiments_narrows_the_direct_estimate():
    cells = [("torch", "torch"), ("keras", "torch"), ("tf_keras", "tensorflow"), ("keras", "jax"), ("keras", "jax")]
    records = [{"config": {"production_interval_s": 0.15}, "windows": _windows(2e-4, seed=seed),
                "cell": {"model": "cifar_cnn", "implementation": impl, "backend": backend, "dataset": "synthetic"}}
               for seed, (impl, backend) in enumerate(cells)]
    one = pooled_direct(records[:1], n_boot=500)
    five = pooled_direct(records, n_boot=500)
    assert one["n"] == 20 and one["n_records"] == 1 and five["n"] == 100 and five["n_records"] == 5
    assert (five["ci_pct"][1] - five["ci_pct"][0]) < 0.7 * (one["ci_pct"][1] - one["ci_pct"][0])
    assert five["ci_pct"][0] < 100 * 2e-4 / 0.15 < five["ci_pct"][1]
    assert pooled_text(records[:1]) == []  # one experiment is not a pool
    lines = pooled_text(records, label=lambda cell: f"{cell['implementation']}[{cell['backend']}]")
    assert len(lines) == 2  # the one cell with two experiments, then all of them
    assert lines[0].startswith("keras[jax], 2 experiments pooled, measured directly at the production interval: ")
    assert "40 windows): " in lines[0]
    assert lines[1].startswith("all 5 experiments pooled, measured directly at the production interval: ")
    assert pooled_direct([{"config": {"production_interval_s": 0.5}, "windows": _windows(0.0)}]) is None
    # An experiment of too few cycles leaves the pool without an interval: nothing is shown.
    short = dict(records[1], windows=_windows(2e-4, cycles=MIN_CYCLES - 1))
    thin = pooled_direct([records[0], short], n_boot=100)
    assert thin["ci_pct"] is None and not thin["shown_under_limit"]
    assert pooled_text([records[0], short])[-1].endswith("nothing shown")


def test_one_interval_gives_the_direct_estimate_and_no_line():
    result = analyse(_windows(0.0, intervals=(0.15,), cycles=40), n_boot=300)
    assert result["per_sample_s"] is None and result["production"] is None and result["with_intercept"] is None
    assert result["direct"]["n"] == 40 and result["per_interval"][0]["predicted_pct"] is None
    text = "\n".join(cost_text("cifar_cnn torch", result))
    assert "cost per sample" not in text and "measured directly at 0.15 s" in text


MEASURED = ROOT / "docs" / "measurements" / "profiler-cost-2026-12-01"


def _committed(*parts):
    from twinbench.records import load_records

    return [record for part in parts for record in load_records(MEASURED / part)[0]]


def test_committed_records_carry_the_analysis_this_code_computes():
    records = _committed("one-thread", "direct/round-1", "direct/round-2", "all-threads")
    assert len(records) == 16 and all(r["kind"] == "profiler_cost" and r["status"] == "ok" for r in records)
    for record in records:  # recomputed on this CPU: equal within a relative 1e-9, not bit for bit
        assert_close_numbers(reanalyse(record), record["analysis"], where=str(record["cell"]))


def test_the_page_shows_what_the_committed_records_say():
    from twinbench.studies.profiler_cost import profiler_cost_section

    page = (ROOT / "docs" / "profiler_cost.md").read_text()
    shown = "\n".join([profiler_cost_section(_committed("one-thread", "direct/round-1", "direct/round-2")),
                       profiler_cost_section(_committed("all-threads"))])
    blocks = [part.partition("\n")[2].rstrip("\n") for part in page.split("```")[1::2]]  # fenced blocks
    block = next((b for b in blocks if b.splitlines()[:1] == shown.splitlines()[:1]), None)
    assert block is not None, "docs/profiler_cost.md has no block of the committed records' output"
    assert_same_text(shown, block)  # recomputed here: each printed number within one unit of its last digit
