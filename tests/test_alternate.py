"""Cross-environment ratios from short processes alternated A,B,B,A (bench/measuring/alternate.py), their pairing in
the decomposition (``alternated_pairs``), and the main job's timing verdicts (bench/results/timing_verdicts.py) on a
quiet, a busy and an unresolved machine. The runner is driven with fake processes: nothing here times anything;
one large test starts real ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKEND
from twinbench.cell import Cell, environment_cells
from twinbench.cli import main
from twinbench.measuring import contention
from twinbench.measuring.alternate import process_argv, run_alternated
from twinbench.measuring.contention import Snapshot
from twinbench.measuring.environment import ALTERNATION_ENV
from twinbench.records import SCHEMA, SCHEMA_VERSION, load_records, write_json_atomic
from twinbench.results.decompose import alternated_pairs, decomposition
from twinbench.results.table import WARM_NOTE, results_table
from twinbench.results.timing_verdicts import (
    latest_sequence,
    main_job_text,
    run_text,
    structure,
    verdict_section,
)

# Framework-free (fake children, made-up records): one environment runs it (conftest.py's ONE_ENVIRONMENT, the torch
# environment, where the large tier's real sequence runs too).
pytestmark = pytest.mark.one_environment

ROOT = Path(__file__).resolve().parents[1]
HZ = 100
ENVS = ("torch", "tensorflow", "jax")


def _cells(model="mnist_cnn"):
    return {env: environment_cells(env, model, dataset="synthetic") for env in ENVS}


# ---------------------------------------------------------------------- the runner


class _FakeChildren:
    """``subprocess.call`` that records each process's command line and slot; ``fail`` slots exit 1."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, argv, env, timeout=None):
        slot = json.loads(env[ALTERNATION_ENV])
        self.calls.append((argv, slot, env["KERAS_BACKEND"]))
        if slot["slot"] in self.fail and timeout:
            raise subprocess.TimeoutExpired(argv, timeout)
        return 1 if slot["slot"] in self.fail else 0


def test_environments_take_turns_in_abba_blocks_and_each_process_knows_its_slot(tmp_path):
    children = _FakeChildren()
    pythons = {env: f"/venv/{env}/bin/python" for env in ENVS}
    sequence = run_alternated(_cells(), pythons, out_dir=tmp_path, blocks=3, child_args=["--steps", "2"],
                              call=children, log=lambda line: None)
    order = [slot["environment"] for _, slot, _ in children.calls]
    assert order == ["torch", "tensorflow", "jax", "jax", "tensorflow", "torch", "torch", "tensorflow", "jax"]
    assert [slot["block"] for _, slot, _ in children.calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {slot["sequence"] for _, slot, _ in children.calls} == {sequence.sequence}
    assert [backend for _, _, backend in children.calls][:3] == ["torch", "tensorflow", "jax"]
    torch_argv, _, _ = children.calls[0]
    assert torch_argv[:4] == ["/venv/torch/bin/python", "-m", "twinbench", "throughput"]
    assert "--env" in torch_argv and "--interleave" in torch_argv and torch_argv[-2:] == ["--steps", "2"]
    jax_argv, _, _ = children.calls[2]
    assert jax_argv[4:10] == ["--model", "mnist_cnn", "--impl", "keras", "--backend", "jax"]  # alone in its process
    assert sequence.blocks == 3 and sequence.failures == 0 and sequence.stopped == "blocks"


def test_a_failed_process_is_counted_and_the_sequence_goes_on(tmp_path):
    children = _FakeChildren(fail={1})
    lines = []
    sequence = run_alternated(_cells(), {env: "python" for env in ENVS}, out_dir=tmp_path, blocks=2,
                              call=children, log=lines.append)
    assert len(children.calls) == 6 and sequence.failures == 1
    assert any("slot 1: FAILED (exit code 1); the others go on" in line for line in lines)


def test_a_hung_process_is_ended_and_counted_and_the_sequence_goes_on(tmp_path):
    children = _FakeChildren(fail={0})
    lines = []
    sequence = run_alternated(_cells(), {env: "python" for env in ENVS}, out_dir=tmp_path, blocks=1,
                              process_timeout_s=5, call=children, log=lines.append)
    assert len(children.calls) == 3 and sequence.failures == 1 and sequence.slots[0]["code"] == "timeout"
    assert any("slot 0: FAILED (ended after 5 s); the others go on" in line for line in lines)


def test_the_budget_stops_between_blocks_never_inside_one(tmp_path):
    now = [0.0]

    def clock():
        return now[0]

    def call(argv, env, timeout=None):
        now[0] += 10.0  # every process takes 10 s: a block of three, 30 s
        return 0

    sequence = run_alternated(_cells(), {env: "python" for env in ENVS}, out_dir=tmp_path, blocks=10, budget_s=70,
                              call=call, clock=clock, log=lambda line: None)
    assert sequence.blocks == 2 and len(sequence.slots) == 6 and sequence.stopped == "budget"


def test_an_environment_without_a_python_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="no Python given for environment jax"):
        run_alternated(_cells(), {"torch": "python", "tensorflow": "python"}, out_dir=tmp_path, blocks=1,
                       call=_FakeChildren())


def test_a_lone_cell_runs_with_its_own_options():
    [cell] = _cells()["jax"]
    argv = process_argv("py", "jax", [cell], out_dir="out")
    assert argv == ["py", "-m", "twinbench", "throughput", "--model", "mnist_cnn", "--impl", "keras", "--backend",
                    "jax", "--out", "out"]


# ---------------------------------------------------------------------- records of a sequence, and their verdicts


# s/step of each cell on the quiet machine (any numbers: what matters is that the pairs recover their ratios)
SPEED = {("torch", "torch"): 0.010, ("keras", "torch"): 0.015, ("tf_keras", "tensorflow"): 0.012,
         ("keras", "tensorflow"): 0.013, ("keras", "jax"): 0.011}


def _snap(t, busy=0):
    return Snapshot(t=t, wait_ns={"1": 0}, own_cpu_s=0.0, busy_ticks=busy, steal_ticks=0, cpus=2, cpus_from="affinity")


def _windows(steps, busy_share, first_index, stride):
    end = _snap(1.0, busy=round(2 * HZ * busy_share))
    return [{"repeat": i, "window": "whole", "profiler": True, "steps": 10, "seconds": 10 * s, "step_s": s,
             "window_index": first_index + stride * i,
             "contention": contention.window(_snap(0.0), end, clock_ticks=HZ)} for i, s in enumerate(steps)]


def _sequence(blocks, *, drift=0.6, process_noise=0.003, window_noise=0.003, busy_share=0.0, seed=0,
              sequence="seq1"):
    """The records of an alternated sequence: each block's processes slowed alike by a drift (the machine slows by
    ``drift`` over the sequence), each process by its own ``process_noise``, each window by ``window_noise``."""
    rng = np.random.default_rng(seed)
    records = []
    for block in range(blocks):
        speed_of_block = 1.0 + drift * block / max(blocks - 1, 1)
        order = list(ENVS) if block % 2 == 0 else list(ENVS)[::-1]
        for position, env in enumerate(order):
            slot = block * len(ENVS) + position
            process_factor = speed_of_block * (1 + process_noise * rng.standard_normal())
            cells = environment_cells(env, "cifar_cnn", dataset="synthetic")
            for index, cell in enumerate(cells):
                steps = [SPEED[(cell.implementation, cell.backend)] * process_factor
                         * (1 + window_noise * rng.standard_normal()) for _ in range(6)]
                shared = len(cells) > 1
                record = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
                          "run_id": f"{sequence}-{slot}", "started": "2026-01-01T00:00:00",
                          "finished": "2026-01-01T00:00:10",
                          "cell": Cell("cifar_cnn", cell.implementation, cell.backend, "synthetic",
                                       process="shared" if shared else "own").as_dict(),
                          "config": {"batch_size": 32}, "model": {"input_shape": [32, 32, 3], "params": 1},
                          "timing": {"repeats": _windows(steps, busy_share, index, len(cells)), "first_step_s": 0.5},
                          "settings": {"jit_compile": False},
                          "alternation": {"sequence": sequence, "slot": slot, "block": block, "environment": env,
                                          "order": "ABBA", "environments": list(ENVS)}}
                if shared:
                    record["interleaved"] = {"with": ["other"], "process": f"{sequence}-{slot}", "order": "ABBA",
                                             "window_index": [r["window_index"] for r in record["timing"]["repeats"]]}
                records.append(record)
    return records


def _rows(records):
    """Rows by (numerator, denominator) implementation labels (their ``process=shared`` left out)."""
    return {(row["numerator"].split()[0], row["denominator"].split()[0]): row for row in decomposition(records)
            if not row["meaning"].startswith("process effect")}


def _side(records, label):
    return [r for r in records if Cell.of(r).label.split()[0] == label]


def test_every_ratio_has_a_row_and_cross_environment_ones_pair_the_processes_of_a_block():
    records = _sequence(6)
    rows = _rows(records)
    assert len(rows) == 6  # the six of DECOMPOSITION
    native = rows[("torch", "tf_keras")]
    assert native["paired"] and native["n_a"] == 6 and native["independent_samples"] == 6
    assert "paired by alternated ABBA block of processes" in native["samples"]
    assert native["ratio"] == pytest.approx(0.010 / 0.012, rel=0.01)
    # The machine slowed by 60% over the sequence; pairing the processes of one block cancels it.
    assert native["half_width_pct"] < 2.0 and native["verdict_status"] == "called"
    keras = rows[("keras[torch]", "torch")]
    assert keras["samples"].endswith("paired by ABBA block") and keras["verdict_status"] == "called"
    assert len(alternated_pairs(_side(records, "keras[jax]"), _side(records, "keras[tensorflow]"))) == 6


def test_unpaired_records_of_the_same_cells_drift_apart():
    """Without the alternation info the same records are two independent sets: the drift widens the CI."""
    records = _sequence(6)
    for record in records:
        del record["alternation"]
    native = _rows(records)[("torch", "tf_keras")]
    assert not native.get("paired") and native["half_width_pct"] > 5.0


def test_a_block_with_a_failed_process_has_no_pair():
    records = [r for r in _sequence(6) if not (r["alternation"]["slot"] == 1)]  # tensorflow of block 0 failed
    assert len(alternated_pairs(_side(records, "torch"), _side(records, "tf_keras"))) == 5


def test_a_failed_process_is_recorded_with_its_slot_and_listed(tmp_path, monkeypatch):
    from twinbench.cli.run_commands import record_failure
    from twinbench.measuring.throughput import ThroughputConfig

    slot = {"sequence": "seq1", "slot": 1, "block": 0, "environment": "tensorflow", "order": "ABBA",
            "environments": list(ENVS)}
    monkeypatch.setenv(ALTERNATION_ENV, json.dumps(slot))
    config = ThroughputConfig(Cell("cifar_cnn", "tf_keras", "tensorflow", "synthetic"))
    assert record_failure("throughput", config, RuntimeError("boom"), out=tmp_path) == 1
    [failed] = load_records(tmp_path)[0]
    assert failed["status"] == "failed" and failed["alternation"] == slot
    records = [r for r in _sequence(6) if r["alternation"]["slot"] != 1] + [failed]
    text = verdict_section(records)
    assert "failed processes (recorded; the others went on): cifar_cnn tf_keras (slot 1)" in text
    assert "5/5" in text  # torch / tf_keras: the five blocks with both processes


def test_too_few_blocks_say_unresolved_and_how_long_would_resolve_it():
    native = _rows(_sequence(3))[("torch", "tf_keras")]
    assert native["verdict_status"] == "unresolved"
    assert native["verdict"].startswith("unresolved (") and "3 independent samples" in native["verdict"]
    assert "more minute" in native["verdict"] and "would resolve it" in native["verdict"]


def test_a_busy_machine_gives_no_timing_verdict_and_the_section_says_why():
    records = _sequence(6, busy_share=0.5)
    text = verdict_section(records, run="cifar_cnn batch 32: 6 blocks")
    assert "machine busy: others took 50% of the CPUs" in text and "rerun on a quiet machine" in text
    assert "x slower" not in text and "x faster" not in text
    assert "resolution reached: 0 of 6 ratios called, 0 unresolved, 6 with the machine busy" in text
    assert "machine: busy: 180 of 180 timed windows busy (others took at most 50% of the CPUs" in text


def test_a_quiet_machine_gets_verdicts_with_their_resolution():
    records, older = _sequence(6), _sequence(2, sequence="older")
    for record in older:
        record["finished"] = "2025-12-31T00:00:00"
    assert run_text(latest_sequence(older + records)).startswith(
        "cifar_cnn batch 32: 6 block(s) of one process per environment (torch, tensorflow, jax; ABBA order), 18 "
        "processes, 6 windows x 10 steps per cell and process")
    text = verdict_section(records)
    assert "resolution reached: 6 of 6 ratios called" in text and "machine: quiet: 0 of 180 timed windows busy" in text
    assert "1.20x faster" in text  # torch / tf_keras = 0.833


def test_a_cpu_hog_beside_the_processes_would_be_counted_as_busy():
    """The busy machine for real, in miniature: a CPU-bound child beside a window of this process is what the
    kernel's counts flag (twinbench.measuring.contention), so a process of the sequence gets no verdict."""
    if sys.platform != "linux":
        pytest.skip("the kernel's accounting is Linux's")

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        start = contention.snapshot()
        time.sleep(0.6)
        window = contention.window(start, contention.snapshot())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert window["busy"] and "others" in window["reasons"]


# ---------------------------------------------------------------------- the main job's output and the README


def _train_records():
    records = []
    for env in ENVS:
        for cell in environment_cells(env, "cifar_cnn"):
            records.append({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "train", "status": "ok",
                            "run_id": cell.label, "started": "2026-01-01T00:00:00", "finished": "2026-01-01T00:00:10",
                            "cell": cell.as_dict(), "config": {"batch_size": 64},
                            "model": {"params": 167562, "input_shape": [8, 8, 1]},
                            "results": {"accuracy_before": 0.1, "accuracy_after": 0.95, "final_loss": 0.1,
                                        "epochs": [{"epoch": 0, "train_time_s": 1.0}]},
                            "timing": {}})
    return records


def test_the_readme_block_has_the_format_the_main_job_prints():
    readme = (ROOT / "README.md").read_text()
    begin, end = "<!-- main-job output: begin -->", "<!-- main-job output: end -->"
    assert begin in readme and end in readme, "README.md lost its generated main-job block (tools/readme_main_job.py)"
    block = readme.split(begin, 1)[1].split(end, 1)[0]
    body = block.split("```", 2)[1].strip("\n")  # the fenced output
    expected = structure(main_job_text(_train_records(), _sequence(6)))
    assert structure(body) == expected


def test_a_first_epoch_after_other_cells_in_its_process_is_marked_and_the_block_keeps_its_format():
    records = _train_records()
    for position, record in enumerate(records[:2], start=1):  # train --cell-processes one: the torch environment's
        record["shared_process"] = {"id": "p", "position": position, "cells": [r["cell"] for r in records[:2]]}
    table = results_table(records)
    marked = [line for line in table.splitlines()[:-1] if "*" in line]
    assert len(marked) == 1 and "1.00 *" in marked[0]  # the second cell of the process; the first is a cold start
    assert table.splitlines()[-1] == WARM_NOTE
    assert structure(main_job_text(records, _sequence(6))) == structure(main_job_text(_train_records(), _sequence(6)))


def test_the_alternate_command_refuses_bad_input_in_one_line(capsys):
    assert main(["alternate"]) == 2
    assert "give each environment's Python: --python ENV=PATH" in capsys.readouterr().err
    assert main(["alternate", "--python", "torch=/no/such/python"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "torch", reason="starts processes of the torch environment")
def test_a_real_sequence_writes_records_that_name_their_slots(tmp_path, capsys):
    code = main(["alternate", "--python", f"torch={sys.executable}", "--model", "mnist_cnn", "--batch-size", "8",
                 "--steps", "2", "--repeats", "2", "--warmup", "1", "--blocks", "2", "--budget-s", "600",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    records = load_records(tmp_path)[0]
    assert len(records) == 4 and all(r["alternation"]["environment"] == "torch" for r in records)
    assert sorted({r["alternation"]["block"] for r in records}) == [0, 1]
    assert "Timing verdicts" in out and "resolution reached:" in out and "machine:" in out


def test_records_written_as_they_come_survive_an_interrupted_sequence(tmp_path):
    """Each process writes its own records; the runner keeps none in memory, so a sequence cut short keeps all its
    finished processes' records (written here by the fake children)."""
    def call(argv, env, timeout=None):
        slot = json.loads(env[ALTERNATION_ENV])
        if slot["slot"] == 2:
            raise KeyboardInterrupt
        write_json_atomic(tmp_path / f"slot{slot['slot']}.json", {"slot": slot})
        return 0

    with pytest.raises(KeyboardInterrupt):
        run_alternated(_cells(), {env: "python" for env in ENVS}, out_dir=tmp_path, blocks=2, call=call,
                       log=lambda line: None)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["slot0.json", "slot1.json"]
