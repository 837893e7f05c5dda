"""In-process interleaving (bench/measuring/interleave.py): an environment's two cells in one process, window by
window in an ABBA order; the process axis keeps their records apart; the decomposition pairs their windows."""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pytest

from conftest import BACKEND
from twinbench.cell import Cell, environment_cells
from twinbench.cli import main
from twinbench.measuring import contention
from twinbench.measuring.interleave import InterleaveError, abba_order, check_interleave
from twinbench.records import SCHEMA, SCHEMA_VERSION, load_records
from twinbench.results.decompose import decomposition, machine_minutes, paired_windows, pooled
from twinbench.stats import paired_ratio_ci, ratio_ci

PAIRED_ENVS = ("torch", "tensorflow")


@pytest.mark.skipif(BACKEND not in PAIRED_ENVS, reason="an environment with two cells (torch, tensorflow)")
def test_an_interleaved_run_writes_one_record_per_cell_with_one_process_and_abba_windows(tmp_path, capsys):
    code = main(["throughput", "--env", BACKEND, "--model", "mnist_cnn", "--batch-size", "8", "--steps", "2",
                 "--repeats", "2", "--warmup", "1", "--feed", "arrays", "--allocator", "tuned", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    records = {Cell.of(r).implementation: r for r in load_records(tmp_path)[0]}
    assert len(records) == 2
    cells = environment_cells(BACKEND, "mnist_cnn", dataset="synthetic")
    first, second = (records[cell.implementation] for cell in cells)
    for record in (first, second):
        assert record["status"] == "ok" and record["cell"]["process"] == "shared"
        assert record["cell"]["feed"] == "arrays" and record["cell"]["allocator"] == "tuned"  # the run's own axes
        assert record["interleaved"]["order"] == "ABBA" and record["interleaved"]["process"] == \
            first["interleaved"]["process"]
        assert [r["steps"] for r in record["timing"]["repeats"]] == [2, 2]
        assert all(r["page_faults_per_step"] is None or r["page_faults_per_step"] >= 0
                   for r in record["timing"]["repeats"])
        assert record["timing"]["steady_step_s"]["n"] == 2 and record["started"] <= record["finished"]
        # The kernel's count of contention in each window (twinbench.measuring.contention), and per run.
        if sys.platform == "linux":
            assert all(r["contention"]["wall_s"] > 0 for r in record["timing"]["repeats"])
            assert record["contention"]["windows"] == 2
    assert first["interleaved"]["window_index"] == [0, 3] and second["interleaved"]["window_index"] == [1, 2]
    assert first["interleaved"]["with"] == [Cell.of(second).label]
    assert [(a, b) for a, b, _ in paired_windows([second], [first])] == [
        (second["timing"]["repeats"][k]["step_s"], first["timing"]["repeats"][k]["step_s"]) for k in range(2)]
    [row] = [row for row in decomposition([first, second]) if row["samples"].endswith("paired by ABBA block")]
    assert row["numerator"] == f"{Cell.of(second).label}" and row["machine_min"] is not None


@pytest.mark.skipif(BACKEND not in PAIRED_ENVS, reason="an environment with two cells (torch, tensorflow)")
def test_a_busy_machine_reaches_compare_as_no_verdict(tmp_path, capsys, monkeypatch):
    """A whole interleaved run on a simulated busy machine (the kernel's counters say others took half the CPUs):
    every window is flagged, and compare prints the ratio with no verdict and the reason."""
    hz = os.sysconf("SC_CLK_TCK")

    def busy(proc=None):  # the CPUs busy half the time without this process: others take 50% of 2 CPUs
        t = time.perf_counter()
        return contention.Snapshot(t=t, wait_ns={}, own_cpu_s=0.0, busy_ticks=t * hz, steal_ticks=0, cpus=2,
                                   cpus_from="affinity")

    monkeypatch.setattr(contention, "snapshot", busy)
    code = main(["throughput", "--env", BACKEND, "--model", "mnist_cnn", "--batch-size", "8", "--steps", "2",
                 "--repeats", "2", "--warmup", "1", "--feed", "arrays", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    records = load_records(tmp_path)[0]
    assert all(r["contention"]["flagged"] == 2 for r in records)
    capsys.readouterr()
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "machine busy: others took 50% of the CPUs in 2 of 2 windows of " in out
    assert "rerun on a quiet machine" in out and "busy 2/2" in out and "x slower" not in out


def test_abba_order_and_the_cells_that_cannot_share_a_process():
    assert abba_order(2, 4) == [0, 1, 1, 0, 0, 1, 1, 0]
    with pytest.raises(InterleaveError, match="needs two cells"):
        check_interleave(environment_cells("jax", "mnist_cnn", dataset="synthetic"))
    torch_cells = environment_cells("torch", "mnist_cnn", dataset="synthetic")
    check_interleave(torch_cells)
    import dataclasses

    with pytest.raises(InterleaveError, match="torch.compile"):
        check_interleave([dataclasses.replace(cell, jit="on") for cell in torch_cells])
    with pytest.raises(InterleaveError, match="--replicas 2"):
        check_interleave([dataclasses.replace(cell, replicas=2) for cell in torch_cells])


def _record(implementation, backend, steps, *, process=None, window_index=None, started="2026-01-01T00:00:00",
            finished="2026-01-01T00:01:00", run_id=None):
    repeats = [{"repeat": i, "profiler": True, "step_s": s} for i, s in enumerate(steps)]
    for repeat, index in zip(repeats, window_index or [], strict=False):
        repeat["window_index"] = index
    record = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
              "started": started, "finished": finished, "run_id": run_id or f"run-{implementation}-{process}",
              "cell": Cell("cifar_cnn", implementation, backend, "synthetic",
                           process="shared" if process else "own").as_dict(),
              "config": {"batch_size": 64}, "model": {"input_shape": [32, 32, 3], "params": 1},
              "timing": {"repeats": repeats, "first_step_s": 1.0}}
    if process:
        record["interleaved"] = {"with": ["other"], "process": process, "order": "ABBA",
                                 "window_index": list(window_index)}
    return record


def _interleaved_pair(process, drift, *, ratio=1.5, noise=0.01, seed=0):
    """keras[torch] and torch of one process: each block's speed drifts (``drift``), both cells alike."""
    rng = np.random.default_rng(seed)
    torch_steps = [d * (1 + noise * rng.standard_normal()) for d in drift]
    keras_steps = [ratio * d * (1 + noise * rng.standard_normal()) for d in drift]
    order = abba_order(2, len(drift))
    torch_index = [i for i, cell in enumerate(order) if cell == 0]
    keras_index = [i for i, cell in enumerate(order) if cell == 1]
    return (_record("keras", "torch", keras_steps, process=process, window_index=keras_index),
            _record("torch", "torch", torch_steps, process=process, window_index=torch_index))


def test_the_paired_ratio_cancels_a_drift_both_cells_share():
    drift = list(np.linspace(1.0, 1.6, 12))  # the machine slows by 60% over the run
    keras, torch = _interleaved_pair("p1", drift)
    pairs = paired_windows([keras], [torch])
    assert len(pairs) == 12 and all(process == "p1" for _, _, process in pairs)
    paired = paired_ratio_ci([(a, b) for a, b, _ in pairs])
    unpaired = ratio_ci([a for a, _, _ in pairs], [b for _, b, _ in pairs])
    assert paired["ci_low"] <= 1.5 <= paired["ci_high"] and paired["paired"] is True
    assert paired["ci_high"] - paired["ci_low"] < 0.5 * (unpaired["ci_high"] - unpaired["ci_low"])
    [row] = decomposition([keras, torch])
    assert row["samples"].endswith("paired by ABBA block") and row["ratio"] == pytest.approx(paired["ratio"])
    assert row["independent_samples"] == 12  # paired ABBA blocks, not runs, are the independent samples here
    # Resolution: one process of one minute, counted once although two records span it.
    assert row["machine_min"] == pytest.approx(1.0)
    half = 100 * (row["ci_high"] - row["ci_low"]) / 2 / row["ratio"]
    assert row["half_width_pct"] == pytest.approx(half) and row["resolution_pct_min"] == pytest.approx(half)
    # Two processes: resampled as processes first; their minutes add up.
    more = _interleaved_pair("p2", [1.2] * 12, seed=1)
    two = paired_ratio_ci([(a, b) for a, b, _ in paired_windows([keras, more[0]], [torch, more[1]])],
                          runs=[p for _, _, p in paired_windows([keras, more[0]], [torch, more[1]])])
    assert two["runs_resampled"] == [True, True] and "processes, then pairs" in two["method"]
    assert machine_minutes([keras, torch, *more]) == pytest.approx(2.0)
    [row] = decomposition([keras, torch, *more])
    assert row["resolution_pct_min"] == pytest.approx(row["half_width_pct"] * math.sqrt(2.0))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_ratio_ci([(1.0, 2.0)])


def test_the_process_axis_keeps_interleaved_and_separate_records_apart():
    keras, torch = _interleaved_pair("p1", [1.0] * 6)
    own = [_record("keras", "torch", [3.0, 3.1, 2.9]), _record("torch", "torch", [1.0, 1.1, 0.9]),
           _record("keras", "jax", [2.0, 2.1, 1.9])]
    groups = pooled([keras, torch, *own])
    assert len(groups) == 2  # one per process axis value: never pooled together
    rows = {(row["numerator"], row["denominator"]): row for row in decomposition([keras, torch, *own])}
    shared = rows[("keras[torch] process=shared", "torch process=shared")]
    separate = rows[("keras[torch]", "torch")]
    assert shared["ratio"] == pytest.approx(1.5, rel=0.05) and separate["ratio"] == pytest.approx(3.0)
    assert shared["n_a"] == 6 and separate["n_a"] == 3 and "paired" not in separate["samples"]
    # keras[jax] runs in its own process always; across environments it meets the interleaved cells under both labels.
    assert ("keras[jax]", "keras[torch] process=shared") in rows and ("keras[jax]", "keras[torch]") in rows
    # Separate records of the same cells in the shared group do not pair: the pairing needs one process each.
    assert paired_windows([keras, own[0]], [torch, own[1]]) is None
