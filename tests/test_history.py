"""The history: ratios over stacks and commits, asv's candidate steps confirmed by the CI rule, the page's data.

Fast: the detector on synthetic ratio series and rows, and series from one run per cell (a plain bootstrap). The
full pipeline with enough runs for verdicts (a two-stage bootstrap per point and segment, seconds) is large.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from history_records import series_records, throughput_record

from twinbench.cli import main
from twinbench.results import verdict
from twinbench.results.history import candidate_steps, collect, judge_step, stack_label, version_order
from twinbench.results.history_page import DATA_FILE, PAGE_FILE, write_page

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)


def _noisy(levels, *, spread=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return [level * (1 + spread * rng.standard_normal()) for level in levels]


# ------------------------------------------------------------------------------------------------ candidates


def test_a_clear_step_is_proposed_where_it_is():
    ratios = _noisy([1.5] * 7 + [1.8] * 5)
    assert candidate_steps(ratios, [0.02] * 12) == [7]


def test_noise_proposes_no_step():
    for seed in range(5):
        assert candidate_steps(_noisy([1.5] * 12, seed=seed), [0.02] * 12) == []


def test_a_single_point_has_no_step():
    assert candidate_steps([1.5], [0.02]) == []


# ------------------------------------------------------------------------------------------------- the CI rule


def _row(ratio, half, status=verdict.CALLED, words="called"):
    return {"ratio": ratio, "ci_low": ratio * (1 - half), "ci_high": ratio * (1 + half), "verdict_status": status,
            "verdict": words}


def test_a_step_outside_both_cis_is_called_with_its_direction():
    step = judge_step(_row(1.5, 0.01), _row(1.8, 0.01))
    assert step["called"] and step["change"] == pytest.approx(1.2)
    assert step["change_low"] > 1 and "1.20x slower" in step["why"]
    faster = judge_step(_row(1.8, 0.01), _row(1.5, 0.01))
    assert faster["called"] and faster["change_high"] < 1 and "1.20x faster" in faster["why"]


def test_a_step_inside_the_ci_width_is_not_called():
    step = judge_step(_row(1.5, 0.03), _row(1.53, 0.03))  # 2% apart, each ±3%
    assert not step["called"] and step["change_low"] < 1 < step["change_high"] and "includes 1" in step["why"]


def test_no_step_is_called_from_a_busy_or_unresolved_segment():
    busy = judge_step(_row(1.5, 0.01), _row(1.8, 0.01, verdict.BUSY, "machine busy: others took 48% of the CPUs"))
    assert not busy["called"] and busy["why"] == "no verdict after the step: machine busy: others took 48% of the CPUs"
    unresolved = judge_step(_row(1.5, 0.01, verdict.UNRESOLVED, "unresolved (±9.7%, 2 independent samples)"),
                            _row(1.8, 0.01))
    assert not unresolved["called"] and unresolved["why"].startswith("no verdict before the step: unresolved")
    assert not judge_step(None, _row(1.8, 0.01))["called"]


# ------------------------------------------------------------------------------------------------------ series


def test_versions_are_ordered_as_versions_and_labelled_with_their_spec():
    assert sorted(["3.10.0", "3.9.1", "3.2.0"], key=version_order) == ["3.2.0", "3.9.1", "3.10.0"]
    assert stack_label("3.10.0", "") == stack_label("3.10.0", "keras==3.10.0") == "keras 3.10.0"
    assert stack_label("3.15.1", "torch==2.13.0") == "keras 3.15.1 [torch==2.13.0]"


def test_one_point_per_stack_in_version_order():
    series = collect(series_records([1.5, 1.6, 1.7], versions=["3.10.0", "3.2.0", "3.9.0"], runs=1))
    versions = next(s for s in series if s["axis"] == "version")
    assert (versions["numerator"], versions["denominator"]) == ("keras[torch]", "torch")  # the first ratio first
    assert [p["x"] for p in versions["points"]] == ["keras 3.2.0", "keras 3.9.0", "keras 3.10.0"]
    assert [p["ratio"] for p in versions["points"]] == pytest.approx([1.6, 1.7, 1.5], rel=0.05)
    for point in versions["points"]:  # one run per cell: a ratio and its CI, but no verdict
        assert point["ci_low"] <= point["ratio"] <= point["ci_high"] and point["verdict_status"] == verdict.UNRESOLVED
        assert point["commits"] == ["aaaaaaaaaa"] and point["runs_a"] == 1
    assert not any(step["called"] for step in versions["steps"])  # unresolved points call nothing


@pytest.mark.large  # the pooled point of two runs: a two-stage bootstrap, about a second
def test_a_stack_that_ran_at_two_commits_gets_a_commit_series():
    records = series_records([1.5], versions=["3.2.0"], runs=1)
    records += [throughput_record(impl, keras="3.2.0", step_s=0.01 * (1.5 if impl == "keras" else 1.0), run=1,
                                  commit="b" * 40) for impl in ("keras", "torch")]
    series = collect(records)
    assert [(s["axis"], s["stack"], [p["x"] for p in s["points"]]) for s in series] == [
        ("version", None, ["keras 3.2.0"]), ("commit", "keras 3.2.0", ["aaaaaaaaaa", "bbbbbbbbbb"])]
    assert series[0]["points"][0]["commits"] == ["aaaaaaaaaa", "bbbbbbbbbb"] and series[0]["points"][0]["runs_a"] == 2


def test_stacks_with_the_same_keras_never_pool():
    records = series_records([1.5], versions=["3.15.1"], runs=1)
    other = series_records([1.9], versions=["3.15.1"], runs=1)
    for record in other:  # where a record names its stack (the cell's stack axis, and its config)
        record["cell"]["stack"] = record["config"]["stack"] = "torch==2.13.0"
    (series,) = collect(records + other)
    assert [p["x"] for p in series["points"]] == ["keras 3.15.1", "keras 3.15.1 [torch==2.13.0]"]
    assert [p["ratio"] for p in series["points"]] == pytest.approx([1.5, 1.9], rel=0.05)


def test_latency_records_give_the_p50_ratio_at_batch_1():
    from test_latency import _fake  # latency records of mnist_cnn at batch sizes 1 and 4

    records = [_fake("torch", "torch", seconds=0.001, run=0), _fake("keras", "torch", seconds=0.002, run=0)]
    for record in records:
        record["environment"] = {"versions": {"keras": "3.15.1"}}
    (series,) = collect(records)
    assert (series["kind"], series["batch_size"], series["numerator"]) == ("latency", 1, "keras[torch]")
    assert [p["x"] for p in series["points"]] == ["keras 3.15.1"]
    assert series["points"][0]["ratio"] == pytest.approx(2.0, rel=0.05)


# ---------------------------------------------------------------------------------------------------- the CLI


def test_the_command_writes_the_page_and_its_data(tmp_path, capsys):
    results = tmp_path / "results"
    for index, record in enumerate(series_records([1.5, 1.5], runs=1)):
        (results / f"{index}.json").parent.mkdir(exist_ok=True)
        (results / f"{index}.json").write_text(json.dumps(record))
    assert main(["history", str(results), "--out", str(tmp_path / "page")]) == 0
    data = json.loads((tmp_path / "page" / DATA_FILE).read_text())
    assert [len(s["points"]) for s in data["series"]] == [2] and "wrote" in capsys.readouterr().out
    assert "fetch(\"history.json\")" in (tmp_path / "page" / PAGE_FILE).read_text()


@pytest.mark.parametrize(("make", "expect"), [
    ("missing", "results directory '.*nope' does not exist"),
    ("empty", "no successful twinbench records in"),
    ("one-side", "no ratio in these records"),
])
def test_the_command_says_what_is_wrong_in_one_line(tmp_path, capsys, make, expect):
    results = tmp_path / ("nope" if make == "missing" else "results")
    if make != "missing":
        results.mkdir()
    if make == "one-side":
        record = throughput_record("torch", keras="3.15.1", step_s=0.01, run=0)
        (results / "torch.json").write_text(json.dumps(record))
    assert main(["history", str(results), "--out", str(tmp_path / "page")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("twinbench: error: ")
    assert __import__("re").search(expect, err)


def test_write_page_leaves_the_data_beside_the_page(tmp_path):
    page = write_page({"series": [], "sources": [], "detector": "", "generated": ""}, tmp_path / "out")
    assert page.name == PAGE_FILE and (page.parent / DATA_FILE).exists()


# ------------------------------------------------------------------------------------------------- the pipeline


@pytest.mark.large
def test_a_clear_step_over_versions_is_called_at_its_place():
    # 5 runs per cell and stack: every point and segment has enough independent samples for a verdict.
    (series,) = [s for s in collect(series_records([1.5, 1.5, 1.5, 1.8, 1.8, 1.8])) if s["axis"] == "version"]
    assert all(p["verdict_status"] == verdict.CALLED for p in series["points"])
    (step,) = [step for step in series["steps"] if step["called"]]
    assert step["index"] == 3 and (step["before"], step["after"]) == ("keras 3.2.0", "keras 3.3.0")
    assert step["change_low"] <= 1.2 <= step["change_high"]
    for other in series["steps"]:  # candidates asv proposed in the flat parts: dropped, with the reason
        assert other is step or "includes 1" in other["why"]


@pytest.mark.large
def test_no_step_is_called_in_noise():
    (series,) = [s for s in collect(series_records([1.5] * 5, spread=0.02, seed=7)) if s["axis"] == "version"]
    assert not any(step["called"] for step in series["steps"])
