"""Contention from the kernel's accounting (``twinbench.measuring.contention``) and the verdict rules that use it
(``twinbench.results.verdict``): fake ``/proc`` text with known answers, the limits, a busy machine and unresolved
ratios through records to ``compare``'s text; one real check that a CPU hog beside this process is counted.
Framework-free; nothing here asserts a speed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from twinbench.backends.base import NullEvents
from twinbench.cli import main
from twinbench.measuring import contention
from twinbench.measuring.contention import Snapshot
from twinbench.records import SCHEMA, SCHEMA_VERSION, write_json_atomic
from twinbench.results import verdict
from twinbench.results.decompose import decomposition, decomposition_table
from twinbench.results.table import throughput_table, timing_table

HZ = 100  # ticks per second in these fakes


def _snap(t, *, busy=0, steal=0, own=0.0, wait=None, cpus=2):
    return Snapshot(t=t, wait_ns=wait or {"1": 0}, own_cpu_s=own, busy_ticks=busy, steal_ticks=steal, cpus=cpus,
                    cpus_from="affinity")


# ---------------------------------------------------------------------- one window's counts


def test_a_quiet_window_is_this_process_alone():
    # 1 s on 2 CPUs: the CPUs were busy 100 ticks (1 s), all of it this process's own CPU time.
    counts = contention.window(_snap(10.0), _snap(11.0, busy=100, own=1.0, wait={"1": 20_000_000}), clock_ticks=HZ)
    assert counts["wall_s"] == pytest.approx(1.0) and counts["others_cpu_s"] == 0.0
    assert counts["run_queue_wait_s"] == pytest.approx(0.02) and counts["wait_share"] == pytest.approx(0.02)
    assert counts["steal_s"] == 0.0 and not counts["busy"] and counts["reasons"] == []


def test_a_busy_window_counts_the_others_cpu_and_the_wait():
    # Busy 190 ticks, 1.0 s of it ours: others took 0.9 s of 2 CPU-seconds; our threads waited 0.3 s in all.
    start = _snap(0.0, busy=5000, own=3.0, wait={"1": 1_000_000_000, "2": 0})
    end = _snap(1.0, busy=5190, own=4.0, wait={"1": 1_200_000_000, "2": 50_000_000, "3": 50_000_000})
    counts = contention.window(start, end, clock_ticks=HZ)
    assert counts["others_cpu_s"] == pytest.approx(0.9) and counts["others_share"] == pytest.approx(0.45)
    assert counts["run_queue_wait_s"] == pytest.approx(0.3)  # a thread born inside the window counts from 0
    assert counts["busy"] and counts["reasons"] == ["others"]


def test_a_process_whose_own_threads_queue_is_not_a_busy_machine():
    # TensorFlow's pools on 2 CPUs, measured quiet (contention module docstring): the threads waited 0.8 s of a 1 s
    # window for each other while nothing else ran; no limit is exceeded.
    counts = contention.window(_snap(0.0, busy=0, own=0.0), _snap(1.0, busy=200, own=2.0, wait={"1": 800_000_000}),
                               clock_ticks=HZ)
    assert counts["wait_share"] == pytest.approx(0.8) and counts["others_cpu_s"] == 0.0
    assert not counts["busy"] and counts["reasons"] == []


def test_steal_is_counted_apart_and_tick_rounding_never_gives_negative_others():
    counts = contention.window(_snap(0.0), _snap(2.0, busy=50, own=0.6, steal=30), clock_ticks=HZ)
    assert counts["others_cpu_s"] == 0.0  # 0.5 s of ticks < 0.6 s of getrusage: rounding, not "negative others"
    assert counts["steal_s"] == pytest.approx(0.3) and counts["steal_share"] == pytest.approx(0.075)
    assert counts["reasons"] == ["steal"]


@pytest.mark.parametrize(("field", "limit"), [("others", contention.OTHERS_SHARE_LIMIT),
                                              ("steal", contention.STEAL_SHARE_LIMIT)])
def test_each_limit_flags_just_above_it_and_not_just_below(field, limit):
    def counts(share):
        amount = share * 10.0 * 2  # a 10 s window on 2 CPUs
        end = {"others": _snap(10.0, busy=round(amount * HZ)), "steal": _snap(10.0, steal=round(amount * HZ))}[field]
        return contention.window(_snap(0.0), end, clock_ticks=HZ)

    assert not counts(limit * 0.9)["busy"]
    assert counts(limit * 1.1)["reasons"] == [field]


def test_snapshot_reads_fake_proc_text(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    lines = ["cpu  1000 0 0 0 0 0 0 0 0 0"]  # the machine line: left out while every CPU of ours has its own line
    lines += [f"cpu{cpu} 100 10 20 900 5 1 2 7 0 0" for cpu in cpus]
    (tmp_path / "stat").write_text("\n".join(lines) + "\nintr 1 2 3\n")
    for tid, wait in (("11", 500), ("12", 700)):
        (tmp_path / "self" / "task" / tid).mkdir(parents=True)
        (tmp_path / "self" / "task" / tid / "schedstat").write_text(f"123 {wait} 9\n")
    snap = contention.snapshot(tmp_path)
    assert snap.wait_ns == {"11": 500, "12": 700}
    assert snap.busy_ticks == len(cpus) * (100 + 10 + 20 + 1 + 2) and snap.steal_ticks == 7 * len(cpus)
    assert (snap.cpus, snap.cpus_from) == (len(cpus), "affinity")
    (tmp_path / "stat").write_text("cpu  1000 0 0 0 0 0 0 3 0 0\n")  # no per-CPU lines: the whole machine
    snap = contention.snapshot(tmp_path)
    assert (snap.busy_ticks, snap.steal_ticks, snap.cpus_from) == (1000, 3, "machine")
    assert contention.why_not(tmp_path) is None


def test_without_proc_there_are_no_counts_and_the_record_says_why(tmp_path):
    assert contention.snapshot(tmp_path / "absent") is None
    why = contention.why_not(tmp_path / "absent")
    assert "contention not recorded" in why
    assert contention.window(None, _snap(1.0)) is None
    summary = contention.run_summary([None, None], unavailable=why)
    assert summary == {"unavailable": why, "windows": 2, "flagged": None}


def test_run_summary_counts_flagged_windows():
    quiet = contention.window(_snap(0.0), _snap(1.0), clock_ticks=HZ)
    busy = contention.window(_snap(0.0), _snap(1.0, busy=150), clock_ticks=HZ)
    summary = contention.run_summary([quiet, busy, quiet, None])
    assert (summary["windows"], summary["flagged"], summary["max_others_share"]) == (3, 1, 0.75)
    assert summary["limits"]["others_share"] == contention.OTHERS_SHARE_LIMIT


def test_epoch_contention_counts_training_windows_only(monkeypatch):
    ticks = iter(range(100))
    monkeypatch.setattr(contention, "snapshot", lambda proc=None: _snap(float(next(ticks)), busy=0))
    events = contention.EpochContention(NullEvents())
    for epoch in range(2):
        events.mark("epoch_begin", epoch=epoch)
        with events.window(f"train-epoch-{epoch}", epoch=epoch, phase="train"):
            pass
        with events.window(f"eval-epoch-{epoch}", epoch=epoch, phase="eval"):
            pass
    epochs = [{"epoch": 0}, {"epoch": 1}]
    events.annotate(epochs)
    assert [e["contention"]["wall_s"] for e in epochs] == [1.0, 1.0]  # one snapshot in, one out, per train window


def test_a_cpu_hog_beside_this_process_is_counted():
    """Accounting, not timing: a child spinning for about a second shows up as others' CPU in the window."""
    start = contention.snapshot()
    if start is None:
        pytest.skip(contention.why_not())
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
    finally:
        hog.kill()
        hog.wait()
    counts = contention.window(start, contention.snapshot())
    assert counts["others_cpu_s"] > 0.3, counts


# ---------------------------------------------------------------------- the verdict rules, through records


CELLS = {"torch": ("torch", "torch"), "keras[torch]": ("keras", "torch")}


def _windows(times, busy_share=None):
    """Throughput repeats of ``times`` s/step, each counted as quiet or with others taking ``busy_share``."""
    repeats = []
    for i, step in enumerate(times):
        end = _snap(1.0, busy=round(2 * HZ * busy_share) if busy_share else 0)
        repeats.append({"repeat": i, "window": "whole", "profiler": True, "steps": 10, "seconds": 10 * step,
                        "step_s": step, "contention": contention.window(_snap(0.0), end, clock_ticks=HZ)})
    return repeats


def _record(label, times, *, run, busy_share=None, minutes=1.0, counted=True):
    implementation, backend = CELLS[label]
    repeats = _windows(times, busy_share)
    if not counted:  # a record made before windows were counted
        repeats = [{k: v for k, v in r.items() if k != "contention"} for r in repeats]
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
            "run_id": f"{label}-{run}", "started": "2026-01-01T00:00:00",
            "finished": f"2026-01-01T00:{int(minutes):02d}:{round(60 * (minutes % 1)):02d}",
            "cell": {"model": "cifar_cnn", "implementation": implementation, "backend": backend,
                     "dataset": "synthetic"},
            "config": {"batch_size": 64}, "model": {"input_shape": [32, 32, 3], "params": 1},
            "timing": {"repeats": repeats, "first_step_s": 0.5}, "settings": {"jit_compile": False},
            "contention": contention.run_summary([r.get("contention") for r in repeats])}


def _runs(label, factor, *, runs, spread=0.001, **kwargs):
    rng = np.random.default_rng(len(label))
    return [_record(label, 0.01 * factor * (1 + spread * rng.standard_normal(12)) * (1 + spread * run), run=run,
                    **kwargs) for run in range(runs)]


def _row(records):
    (row,) = [r for r in decomposition(records) if (r["numerator"], r["denominator"]) == ("keras[torch]", "torch")]
    return row


def test_a_resolved_quiet_ratio_keeps_its_verdict():
    row = _row(_runs("torch", 1.0, runs=5) + _runs("keras[torch]", 1.48, runs=5))
    assert row["verdict_status"] == "called" and row["verdict"].startswith("1.48x slower")
    assert row["contention"] == "quiet / quiet" and row["independent_samples"] == 5
    assert "1.48x slower" in decomposition_table([row])


def test_a_busy_machine_gives_no_verdict_and_says_why(tmp_path, capsys):
    records = _runs("torch", 1.0, runs=5, busy_share=0.48) + _runs("keras[torch]", 1.48, runs=5)
    row = _row(records)
    assert row["verdict_status"] == "busy" and row["contention"] == "quiet / busy 60/60"  # keras[torch] / torch
    assert row["verdict"] == ("machine busy: others took 48% of the CPUs in 60 of 60 windows of torch; "
                              "rerun on a quiet machine")
    assert row["ratio"] == pytest.approx(1.48, rel=0.01)  # the ratio and its CI are still data
    for i, record in enumerate(records):
        write_json_atomic(tmp_path / f"{i}.json", record)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "machine busy: others took 48% of the CPUs" in out and "1.48x slower" not in out
    assert "busy 60/60" in out and "1.480" in out


def test_a_few_busy_windows_under_the_limit_still_allow_a_verdict():
    torch = _runs("torch", 1.0, runs=5)
    torch[0]["timing"]["repeats"] = _windows([r["step_s"] for r in torch[0]["timing"]["repeats"]], 0.5)  # 12 of 60
    row = _row(torch + _runs("keras[torch]", 1.48, runs=5))
    assert row["contention"] == "quiet / busy 12/60" and row["verdict_status"] == "called"


def test_too_few_processes_leave_a_ratio_unresolved_with_the_minutes_that_would_resolve_it():
    # One process per side: windows of one process are not independent samples, however narrow their CI.
    row = _row(_runs("torch", 1.0, runs=1, minutes=1.0) + _runs("keras[torch]", 1.48, runs=1, minutes=1.0))
    assert row["verdict_status"] == "unresolved" and row["independent_samples"] == 1
    # 4 more runs per side at 1 minute each
    assert row["more_min"] == pytest.approx(8.0)
    assert row["verdict"] == (f"unresolved (±{row['half_width_pct']:.1f}%, 1 independent samples): "
                              "about 8 more minutes of machine time would resolve it")


def test_too_wide_a_ci_leaves_a_ratio_unresolved_with_the_minutes_from_the_resolution():
    records = (_runs("torch", 1.0, runs=5, spread=0.2, minutes=1.0)
               + _runs("keras[torch]", 1.48, runs=5, spread=0.2, minutes=1.0))
    row = _row(records)
    assert row["half_width_pct"] > verdict.MAX_HALF_WIDTH_PCT and row["verdict_status"] == "unresolved"
    needed = (row["resolution_pct_min"] / verdict.MAX_HALF_WIDTH_PCT) ** 2  # half-width ~ 1 / sqrt(minutes)
    assert row["more_min"] == pytest.approx(needed - 10.0)
    assert f"about {int(np.ceil(needed - 10.0))} more minutes" in row["verdict"]


def test_records_without_counts_say_so_and_meet_only_the_resolution_rule():
    records = (_runs("torch", 1.0, runs=5, counted=False)
               + _runs("keras[torch]", 1.48, runs=5, busy_share=0.9, counted=False))
    row = _row(records)
    assert row["contention"] == "not recorded / not recorded" and row["verdict_status"] == "called"
    assert "not recorded" in throughput_table(records)


def test_the_throughput_and_training_tables_show_contention():
    records = _runs("torch", 1.0, runs=1, busy_share=0.48) + _runs("keras[torch]", 1.48, runs=1)
    table = throughput_table(records)
    assert "contention" in table.splitlines()[0] and "busy 12/12" in table and "quiet" in table
    train = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "train", "status": "ok",
             "cell": {"model": "mnist_cnn", "implementation": "torch", "backend": "torch", "dataset": "digits"},
             "config": {"batch_size": 32}, "model": {"input_shape": [28, 28, 1], "params": 1},
             "settings": {"jit_compile": False},
             "results": {"epochs": [{"epoch": e, "train_time_s": 1.0, "contention": contention.window(
                 _snap(0.0), _snap(1.0, busy=150 if e == 2 else 0), clock_ticks=HZ)} for e in range(3)]},
             "timing": {"first_step_s": 0.1, "steady_step_s": None, "epoch_time_s": {"later": None},
                        "epoch_gap_s": None, "eval_time_s": None}}
    assert "busy 1/2" in timing_table([train])  # the epochs after the first
