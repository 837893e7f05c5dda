"""The measurement plumbing without any framework: the step clock, timing figures, records v2, the
overhead decomposition and ``compare``'s output, on synthetic numbers whose answers are known."""


import dataclasses

import numpy as np
import pytest

from twinbench.backends.base import StepClock, cycled_batches, epoch_edges
from twinbench.cell import Cell
from twinbench.cli import main
from twinbench.measuring.throughput import ThroughputConfig, repeat_schedule, segments, window_schedule
from twinbench.measuring.timing import (
    feed_pairs,
    memory_figures,
    overhead_pairs,
    profiler_overhead,
    train_timing,
)
from twinbench.records import (
    SCHEMA,
    SCHEMA_VERSION,
    RecordError,
    load_records,
    read_record,
    read_timeline,
    write_json_atomic,
    write_record,
)
from twinbench.results.decompose import (
    DECOMPOSITION,
    TF_NATIVE_FEED_NOTE,
    decomposition,
    decomposition_table,
    lasting_feed_cost,
    throughput_rows,
)
from twinbench.stats import ratio_ci

# ---------------------------------------------------------------------- the step clock


def test_epoch_edges():
    assert epoch_edges(10, 3) == [0, 1, 4, 7, 10]
    assert epoch_edges(10, 3, last_batch_partial=True) == [0, 1, 4, 7, 9, 10]
    assert epoch_edges(10, 0) == [0, 1, 10]  # no windows: only the first step and the epoch
    assert epoch_edges(1, 5) == [0, 1]


def test_clock_syncs_only_at_edges_and_keeps_on_edge_out_of_windows():
    syncs, calls = [], []
    clock = StepClock([0, 1, 4, 7], sync=lambda: syncs.append(len(calls)), on_edge=lambda edge: calls.append(edge))
    for step in range(7):
        clock.before_step(step)
        clock.before_step(step)  # a second call at the same step does nothing
    clock.finish(7)
    assert calls == [0, 1, 4, 7]
    assert len(syncs) == 4  # one sync per edge, none for the other steps
    assert [(a, b) for a, b, _ in clock.windows()] == [(0, 1), (1, 4), (4, 7)]
    for start, end, seconds in clock.windows():
        assert seconds == clock.arrived[end] - clock.left[start] >= 0
        assert clock.left[start] >= clock.arrived[start]  # on_edge ran between the two timestamps
    figures = clock.epoch_figures(3)
    assert figures["first_step_s"] == clock.interval(0, 1)
    assert figures["window_times_s"] == [clock.interval(1, 4), clock.interval(4, 7)]


def test_clock_finish_syncs_even_off_an_edge():
    syncs = []
    clock = StepClock([0], sync=lambda: syncs.append(1))
    clock.before_step(0)
    clock.before_step(1)
    assert clock.finish(2) == clock.arrived[2]
    assert len(syncs) == 2


def test_cycled_batches_are_full_and_follow_the_shared_order():
    batches = cycled_batches(10, 4, 5, seed=0)
    assert [len(b) for b in batches] == [4] * 5  # the partial batch of 2 is skipped in each epoch
    from twinbench.data import batch_indices

    epoch0 = batch_indices(10, 4, epoch=0, seed=0)
    np.testing.assert_array_equal(batches[0], epoch0[0])
    np.testing.assert_array_equal(batches[2], batch_indices(10, 4, epoch=1, seed=0)[0])
    with pytest.raises(ValueError, match="full batch"):
        cycled_batches(3, 4, 1, seed=0)


# ---------------------------------------------------------------------- timing figures


def epoch(index, *, started, train, eval_s, first=0.5, windows=(0.2, 0.2), window=4):
    trained = started + train
    return {"epoch": index, "train_time_s": train, "eval_time_s": eval_s, "started_at": started,
            "trained_at": trained, "ended_at": trained + eval_s, "first_step_s": first,
            "window_steps": window, "window_times_s": list(windows)}


def test_train_timing_separates_first_step_epochs_gaps_and_eval():
    epochs = [epoch(0, started=0.0, train=3.0, eval_s=0.5, first=2.0, windows=(0.4, 0.4)),
              epoch(1, started=3.6, train=1.0, eval_s=0.5, first=0.1, windows=(0.4, 0.8)),
              epoch(2, started=5.3, train=1.2, eval_s=0.7, first=0.1, windows=(0.4,))]
    timing = train_timing(epochs, batch_size=32)
    assert timing["first_step_s"] == 2.0  # epoch 0's, with compilation
    assert timing["first_step_later_epochs_s"]["median"] == pytest.approx(0.1)
    # One step-time sample per full window: 0.4 s / 4 steps = 0.1 s (four times), 0.8 / 4 = 0.2 s.
    assert timing["steady_step_s"]["n"] == 5
    assert timing["steady_step_s"]["median"] == pytest.approx(0.1)
    assert timing["steady_step_s"]["max"] == pytest.approx(0.2)
    assert timing["throughput_images_per_s"]["median"] == pytest.approx(320.0)
    assert timing["epoch_time_s"]["first"] == 3.0
    assert timing["epoch_time_s"]["later"]["median"] == pytest.approx(1.1)  # epochs after the first only
    # Gaps: 3.6 - 3.0 and 5.3 - 4.6: from the end of one epoch's training to the next one's start.
    assert timing["epoch_gap_s"]["n"] == 2
    assert timing["epoch_gap_s"]["median"] == pytest.approx(0.65)
    assert timing["eval_time_s"]["median"] == pytest.approx(0.5)
    for key in ("median", "q1", "q3", "iqr", "ci_low", "ci_high", "ci_method"):
        assert key in timing["steady_step_s"]


def test_train_timing_of_one_epoch_has_no_gap_and_no_later_epochs():
    timing = train_timing([epoch(0, started=0.0, train=1.0, eval_s=0.1)], batch_size=8)
    assert timing["epoch_gap_s"] is None and timing["epoch_time_s"]["later"] is None
    assert timing["steady_step_s"]["n"] == 2


def test_memory_figures_without_nvml_say_so():
    profile = {"fields": {"memory_used_bytes": {"peak": None}, "process_memory_bytes": {"peak": None}},
               "attributed": None, "host_peak_rss_bytes": 123, "source": "psutil"}
    figures = memory_figures({}, profile)
    assert figures["allocator"] is None and figures["device_memory_used_peak_bytes"] is None
    assert figures["host_peak_rss_bytes"] == 123 and figures["source"] == "psutil"


# ---------------------------------------------------------------------- profiler cost


def test_repeat_schedule_interleaves_abba():
    assert repeat_schedule(4, 4) == [True, False, False, True, True, False, False, True]
    assert repeat_schedule(2, 0) == [True, True]
    assert repeat_schedule(1, 3) == [True, False, False, False]


def test_profiler_overhead_flags():
    off = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0]
    same = profiler_overhead(off, off, ratio_ci=ratio_ci)
    assert same["overhead_pct"] == pytest.approx(0.0)
    assert same["under_limit"] and same["shown_under_limit"] == (same["ci_high"] < 1.01)
    slow = profiler_overhead([x * 1.05 for x in off], off, ratio_ci=ratio_ci)
    assert slow["overhead_pct"] == pytest.approx(5.0)
    assert not slow["under_limit"] and not slow["shown_under_limit"]
    assert profiler_overhead(off, [], ratio_ci=ratio_ci) is None


def test_paired_overhead_cancels_drift_between_pairs():
    # The machine slows down 3x over the run; within each pair the sampler costs exactly 0.5%.
    drift = np.linspace(1.0, 3.0, 8)
    pairs = [(d * 1.005, d) for d in drift]
    repeats = []
    for i, (on, off) in enumerate(pairs):
        first, second = ((on, True), (off, False)) if i % 2 == 0 else ((off, False), (on, True))
        repeats += [{"profiler": first[1], "step_s": first[0]}, {"profiler": second[1], "step_s": second[0]}]
    assert overhead_pairs(repeats) == pairs
    result = profiler_overhead([a for a, _ in pairs], [b for _, b in pairs], ratio_ci=ratio_ci,
                               pairs=overhead_pairs(repeats))
    assert result["ci_high"] - result["ci_low"] > 0.5  # unpaired: the drift swamps a 0.5% effect
    assert result["paired"]["overhead_pct"] == pytest.approx(0.5)
    assert result["decided_by"] == "paired" and result["under_limit"] and result["shown_under_limit"]


# ---------------------------------------------------------------------- decomposition

CELLS = {"torch": ("torch", "torch"), "keras[torch]": ("keras", "torch"), "tf_keras": ("tf_keras", "tensorflow"),
         "keras[tensorflow]": ("keras", "tensorflow"), "keras[jax]": ("keras", "jax")}


def throughput_record(label, step_times, *, model="cifar_cnn", batch_size=64, off=(1000.0,) * 3, axes=None,
                      jit_compile=None):
    """A throughput record; ``off``: the repeats with the profiler off (absurd by default: never a ratio's);
    ``axes``: the cell's mode axes off their defaults; ``jit_compile``: what the record says compilation resolved to."""
    implementation, backend = CELLS[label]
    repeats = [{"repeat": i, "profiler": True, "step_s": s} for i, s in enumerate(step_times)]
    repeats += [{"repeat": 100 + i, "profiler": False, "step_s": s} for i, s in enumerate(off)]
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
            "cell": {"model": model, "implementation": implementation, "backend": backend, "dataset": "synthetic",
                     **(axes or {})},
            "config": {"batch_size": batch_size}, "model": {"input_shape": [32, 32, 3], "params": 1},
            "timing": {"repeats": repeats}, "settings": {"jit_compile": jit_compile}}


def test_modes_are_compared_within_a_mode_and_against_each_other_one_axis_at_a_time():
    rng = np.random.default_rng(1)
    base = 0.010 * (1 + 0.01 * rng.standard_normal(12))
    records = [
        throughput_record("torch", base, jit_compile=False),
        throughput_record("keras[torch]", base * 2.0, jit_compile=False),
        throughput_record("torch", base * 0.5, axes={"jit": "on"}, jit_compile=True),
        throughput_record("keras[torch]", base * 0.8, axes={"jit": "on"}, jit_compile=True),
        throughput_record("keras[torch]", base * 3.0, axes={"data_format": "channels_first"}, jit_compile=False),
        throughput_record("torch", base * 0.25, axes={"precision": "mixed_bfloat16"}, jit_compile=False),
        # keras[jax] compiles by default: its default run is no "not compiled" baseline, only an explicit jit=off is
        throughput_record("keras[jax]", base, jit_compile=True),
        throughput_record("keras[jax]", base, axes={"jit": "on"}, jit_compile=True),
    ]
    rows = {(r["numerator"], r["denominator"]): r for r in decomposition(records)}
    assert rows[("keras[torch]", "torch")]["ratio"] == pytest.approx(2.0)
    assert rows[("keras[torch] jit=on", "torch jit=on")]["ratio"] == pytest.approx(1.6)  # within one mode
    assert rows[("torch jit=on", "torch")]["ratio"] == pytest.approx(0.5)  # compile effect (default = eager)
    assert rows[("keras[torch] jit=on", "keras[torch]")]["meaning"].startswith("compile effect")
    assert rows[("keras[torch] data_format=channels_first", "keras[torch]")]["ratio"] == pytest.approx(1.5)
    assert rows[("torch precision=mixed_bfloat16", "torch")]["ratio"] == pytest.approx(0.25)
    assert ("keras[jax] jit=on", "keras[jax]") not in rows  # its default compiled too: not a compile effect
    assert not [key for key in rows if ("jit=on" in key[0]) != ("jit=on" in key[1]) and "torch" not in key[0]]
    # never across modes silently: no row compares e.g. torch jit=on with keras[torch] (eager)
    assert ("keras[torch]", "torch jit=on") not in rows and ("keras[torch] jit=on", "torch") not in rows
    records.append(throughput_record("keras[jax]", base * 4.0, axes={"jit": "off"}, jit_compile=False))
    rows = {(r["numerator"], r["denominator"]): r for r in decomposition(records)}
    assert rows[("keras[jax] jit=on", "keras[jax] jit=off")]["ratio"] == pytest.approx(0.25)


def test_decomposition_recovers_known_ratios():
    rng = np.random.default_rng(0)
    base = 0.010 * (1 + 0.01 * rng.standard_normal(12))  # torch: 10 ms +- 1%
    records = [
        throughput_record("torch", base),
        throughput_record("keras[torch]", base * 2.0),  # exactly twice as slow
        throughput_record("tf_keras", base * 1.5),
        throughput_record("keras[tensorflow]", base * 1.5),  # same as tf_keras
        throughput_record("keras[jax]", base * 0.5),
    ]
    rows = {(r["numerator"], r["denominator"]): r for r in decomposition(records)}
    assert len(rows) == len(DECOMPOSITION)
    keras_torch = rows[("keras[torch]", "torch")]
    assert keras_torch["ratio"] == pytest.approx(2.0)
    assert keras_torch["differs"] and keras_torch["ci_low"] > 1.0
    same = rows[("keras[tensorflow]", "tf_keras")]
    assert same["ratio"] == pytest.approx(1.0) and not same["differs"]
    assert rows[("keras[tensorflow]", "keras[torch]")]["ratio"] == pytest.approx(0.75)
    assert rows[("keras[jax]", "keras[torch]")]["ratio"] == pytest.approx(0.25)
    assert rows[("keras[jax]", "keras[tensorflow]")]["ratio"] == pytest.approx(1 / 3)
    native = rows[("torch", "tf_keras")]
    assert native["ratio"] == pytest.approx(1 / 1.5) and native["differs"] and native["ci_high"] < 1.0
    assert keras_torch["n_a"] == 12  # only the repeats with the profiler on
    text = decomposition_table(list(rows.values()))
    assert "keras[torch] / torch" in text and "2.000" in text and "1.000" in text
    # One run (process) per cell: the ratios are data, not verdicts (twinbench.results.verdict)
    assert "2.00x slower" not in text and "no measurable difference" not in text
    assert keras_torch["verdict"].startswith("unresolved (") and "1 independent samples" in keras_torch["verdict"]


def test_decomposition_of_training_records_uses_epochs_after_the_first():
    def train_record(label, times):
        implementation, backend = CELLS[label]
        return {"kind": "train", "status": "ok", "config": {"batch_size": 32}, "model": {"input_shape": [8, 8, 1]},
                "cell": {"model": "mnist_cnn", "implementation": implementation, "backend": backend,
                         "dataset": "digits"},
                "results": {"epochs": [{"train_time_s": t} for t in times]}}

    rows = decomposition([train_record("torch", [100.0, 1.0, 1.1, 0.9]),
                          train_record("keras[torch]", [1.0, 3.0, 3.3, 2.7])])
    assert len(rows) == 1
    assert rows[0]["ratio"] == pytest.approx(3.0)  # the 100 s first epoch is left out
    assert rows[0]["n_a"] == rows[0]["n_b"] == 3


def test_decomposition_keeps_batch_sizes_apart_and_skips_failed_cells():
    records = [throughput_record("torch", [1.0, 1.0, 1.0]), throughput_record("keras[torch]", [2.0, 2.0, 2.0],
                                                                              batch_size=128)]
    assert decomposition(records) == []
    failed = throughput_record("keras[torch]", [2.0, 2.0, 2.0])
    failed["status"] = "failed"
    assert decomposition([records[0], failed]) == []


# ---------------------------------------------------------------------- records v2 and compare


def test_v1_records_are_skipped_with_a_reason_and_timelines_are_not_records(tmp_path):
    old = throughput_record("torch", [1.0, 1.0])
    old["schema_version"] = 1
    write_json_atomic(tmp_path / "old.json", old)
    record = throughput_record("keras[torch]", [1.0, 1.1])
    record["timeline"] = [{"name": "run", "samples": [], "windows": [], "markers": []}]
    path = write_record(record, tmp_path)
    assert record["timeline_file"] == "cifar_cnn__keras__torch__synthetic.timeline.json.gz"
    assert "timeline" not in read_record(path)
    assert read_timeline(path)["segments"][0]["name"] == "run"
    records, skipped = load_records(tmp_path)
    assert [r["cell"]["implementation"] for r in records] == ["keras"]
    assert len(skipped) == 1 and "schema version 1" in skipped[0] and "reads 2" in skipped[0]
    with pytest.raises(RecordError):
        read_record(tmp_path / "old.json")


def test_compare_prints_the_tables_the_decomposition_and_the_profiler_cost(tmp_path, capsys):
    for label, factor in (("torch", 1.0), ("keras[torch]", 1.3)):
        on = [0.01 * factor * (1 + 0.001 * i) for i in range(8)]
        record = throughput_record(label, on, off=[t / 1.05 for t in on])  # the profiler costs 5%
        record["timing"]["first_step_s"] = 0.5
        record["settings"] = {"jit_compile": False}
        write_json_atomic(tmp_path / f"{label}.json", record)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "keras[torch] / torch" in out and "1.300" in out and "unresolved (" in out  # one run per cell
    assert "Keras 3 overhead on PyTorch" in out
    assert "profiler cost, keras[torch] (batch 64): unpaired +5.00%" in out and "median NOT under 1%" in out
    assert "paired +5.00%" in out  # the ABBA neighbours: repeats 0-1, 2-3, ... of the 8 on / 8 off


def feed_compute_record(label, whole, compute):
    """A throughput record whose compute windows sit beside its profiler-on whole windows as ``window_schedule``
    puts them (no profiler-off windows)."""
    record = throughput_record(label, [], off=())
    kinds = window_schedule([True] * len(whole), len(compute))
    times = {"whole": iter(whole), "compute": iter(compute)}
    record["timing"]["repeats"] = [{"repeat": i, "window": kind, "profiler": on, "step_s": next(times[kind])}
                                   for i, (kind, on) in enumerate(kinds)]
    record["timing"]["first_step_s"] = 0.5
    return record


def test_compute_windows_are_their_own_samples_and_feed_is_whole_minus_the_compute_beside_it(tmp_path, capsys):
    assert window_schedule([True, True, False], 3) == [("whole", True), ("compute", True), ("compute", True),
                                                      ("whole", True), ("whole", False), ("compute", True)]
    assert segments(window_schedule([True, True], 2), warmup=4) == [("whole", 4, [0]), ("compute", 4, [1, 2]),
                                                                    ("whole", 1, [3])]
    cell = Cell("mnist_cnn", "torch", "torch", "synthetic")
    config = ThroughputConfig(cell, repeats=3)
    assert config.compute_windows == 3 and config.cell.feed == "native"
    assert ThroughputConfig(dataclasses.replace(cell, feed="arrays")).cell.label == "torch feed=arrays"
    assert ThroughputConfig(dataclasses.replace(cell, replicas=2)).compute_windows == 0  # compute runs on one replica
    rng = np.random.default_rng(0)
    noise = 1 + 0.001 * rng.standard_normal(8)
    records = [feed_compute_record("torch", 0.010 * noise, 0.006 * noise),
               feed_compute_record("keras[torch]", 0.013 * noise, 0.012 * noise)]
    pairs = feed_pairs(records[0]["timing"]["repeats"])
    assert len(pairs) == 8 and all(w == pytest.approx(c / 0.6) for w, c in pairs)
    (whole,) = decomposition(records)
    (compute,) = decomposition(records, part="compute")
    assert whole["ratio"] == pytest.approx(1.3, rel=1e-6) and "part" not in whole
    assert compute["ratio"] == pytest.approx(2.0, rel=1e-6) and compute["part"] == "compute"
    assert compute["n_a"] == compute["n_b"] == 8 and compute["samples"] == "s/step per compute window"
    old = throughput_record("torch", [0.01, 0.01, 0.01])  # a record from before compute windows: none
    assert decomposition([old, throughput_record("keras[torch]", [0.02] * 3)], part="compute") == []
    with pytest.raises(ValueError, match="part must be one of whole, compute"):
        decomposition(records, part="feed")

    for record in records:
        write_json_atomic(tmp_path / f"{record['cell']['implementation']}.json", record)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Feed vs compute" in out and "Overhead decomposition of compute" in out and "2.000" in out
    feed_section = out[out.index("Feed vs compute"):]
    line = next(row for row in feed_section.splitlines() if row.startswith("cifar_cnn  torch "))
    assert "10.00 [" in line and "6.00 [" in line and "4.00 [" in line  # whole, compute, feed (ms)
    from twinbench.results.report import build_report

    report = build_report(tmp_path, figures=False).read_text()
    assert "## Feed vs compute" in report and "| keras[torch] / torch |" in report
    assert TF_NATIVE_FEED_NOTE not in out and TF_NATIVE_FEED_NOTE not in report  # no TensorFlow cell

    # A TensorFlow cell fed natively: whole - compute leaves out what from_generator costs the whole process.
    tf_record = feed_compute_record("tf_keras", 0.010 * noise, 0.010 * noise)
    assert lasting_feed_cost([tf_record]) and not lasting_feed_cost(records)
    tf_arrays = {**tf_record, "cell": {**tf_record["cell"], "feed": "arrays"}}
    assert not lasting_feed_cost([tf_arrays])
    write_json_atomic(tmp_path / "tf_keras.json", tf_record)
    assert main(["compare", str(tmp_path)]) == 0
    assert TF_NATIVE_FEED_NOTE in capsys.readouterr().out
    assert TF_NATIVE_FEED_NOTE in build_report(tmp_path, figures=False).read_text()


def test_several_runs_of_a_cell_are_pooled():
    records = [throughput_record("torch", [1.0, 1.0, 1.0]), throughput_record("torch", [1.0, 1.0]),
               throughput_record("keras[torch]", [2.0, 2.0, 2.0, 2.0])]
    (row,) = decomposition(records)
    assert (row["n_a"], row["n_b"], row["runs_a"], row["runs_b"]) == (4, 5, 1, 2)
    assert row["ratio"] == pytest.approx(2.0)
    assert row["runs_resampled"] == [False, True]  # the two torch runs are resampled as runs


def test_gap_parts_add_up_to_the_gap_and_leave_out_what_fell_before_the_last_sync():
    from twinbench.backends.base import GAP_PARTS
    from twinbench.measuring.timing import gap_parts
    from twinbench.results.views import GAP_PARTS as SHOWN_PARTS

    assert SHOWN_PARTS == GAP_PARTS  # results spell the parts without importing backends
    # Epoch 0 trained until t=10; a reshuffle at 9.5 (Keras 3: inside the last window) is not part of the gap.
    earlier = {"trained_at": 10.0, "gap_events": [["callbacks", 10.5], ["reshuffle", 9.5], ["iterator", 9.6],
                                                  ["reshuffle", 10.7], ["iterator", 10.9]]}
    later = {"begin_entered_at": 11.2, "started_at": 11.25}
    parts = gap_parts(earlier, later)
    assert parts == pytest.approx({"evaluation": 0.5, "callbacks": 0.2, "reshuffle": 0.2, "iterator": 0.3,
                                   "other": 0.05})
    assert sum(parts.values()) == pytest.approx(later["started_at"] - earlier["trained_at"])
    assert gap_parts({"trained_at": 1.0}, later) is None  # a record from before the parts: no breakdown


def test_train_timing_summarizes_gap_parts_whose_means_add_up_to_the_gap():
    epochs = [{"epoch": e, "started_at": 10.0 * e, "trained_at": 10.0 * e + 8, "train_time_s": 8.0, "eval_time_s": 1.0,
               "first_step_s": 0.5 if e else 2.0, "first_batch_at": 10.0 * e + 0.1, "window_steps": 2,
               "window_times_s": [0.4, 0.4], "gap_events": [["callbacks", 10.0 * e + 9], ["reshuffle", 10.0 * e + 9.5]],
               "begin_entered_at": 10.0 * e - 0.25} for e in range(3)]
    timing = train_timing(epochs, batch_size=32)
    parts = timing["epoch_gap_parts_s"]
    assert {k: v["mean"] for k, v in parts.items()} == pytest.approx(
        {"evaluation": 1.0, "callbacks": 0.5, "reshuffle": 0.25, "iterator": 0.0, "other": 0.25})
    assert sum(v["mean"] for v in parts.values()) == pytest.approx(timing["epoch_gap_s"]["mean"]) == 2.0
    first = timing["first_step_parts_s"]  # later first steps 0.5 s: 0.1 s to the first batch, 0.2 s steady
    assert first["first_batch"]["median"] == pytest.approx(0.1) and first["retracing"]["median"] == pytest.approx(0.2)


def test_pinned_and_free_runs_of_a_cell_are_separate_rows_never_pooled():
    free = [throughput_record("torch", [1.0] * 3), throughput_record("keras[torch]", [2.0] * 3)]
    pinned = [throughput_record("torch", [4.0] * 3, axes={"cpus": "0"}),
              throughput_record("keras[torch]", [6.0] * 3, axes={"cpus": "0"})]
    for record in free + pinned:
        record["timing"]["first_step_s"] = 0.5
    rows = {row["label"]: row for row in throughput_rows(free + pinned)}
    assert set(rows) == {"torch", "keras[torch]", "torch cpus=0", "keras[torch] cpus=0"}
    assert rows["torch"]["steady_step_s"]["median"] == 1.0 and rows["torch cpus=0"]["steady_step_s"]["median"] == 4.0
    ratios = sorted(round(row["ratio"], 6) for row in decomposition(free + pinned))
    assert ratios == [1.5, 2.0]  # keras[torch]/torch within each layout, never across
