"""Real, tiny runs in this environment's implementations: ``bench run`` and ``bench bench`` write
schema-v2 records with every figure and its spread, a timeline with epoch markers, and the step clock
sees exactly the steps before each edge. Nothing here asserts a timing: times on a shared test machine
are noise, so only their presence, order and structure are checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, impl_id, requires_backend
from twinbench.backends import get_runner
from twinbench.backends.base import GAP_PARTS, StepClock, TrainConfig
from twinbench.cli import main
from twinbench.measuring.timing import gap_parts
from twinbench.records import SCHEMA_VERSION, load_records, read_record, read_timeline

pytestmark = requires_backend

TINY = ["--model", "mnist_cnn", "--input-shape", "12x12x1", "--batch-size", "16"]
SUMMARY_KEYS = {"n", "median", "q1", "q3", "iqr", "ci_low", "ci_high", "ci_method"}


def _ticking_clock(monkeypatch, module):
    """Make ``module._now_iso`` return 00:00:00, 00:00:01, ... so a record shows when each stamp was taken."""
    ticks = iter(range(60))
    monkeypatch.setattr(module, "_now_iso", lambda: f"2026-01-01T00:00:{next(ticks):02d}")


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_bench_run_writes_a_v2_record_with_timing_settings_memory_and_timeline(pair, tmp_path, capsys, monkeypatch):
    import twinbench.measuring.train

    implementation, backend = pair
    _ticking_clock(monkeypatch, twinbench.measuring.train)
    code = main(["train", "--impl", implementation, "--backend", backend, *TINY, "--dataset", "synthetic",
                 "--synthetic-train", "100", "--synthetic-test", "32", "--epochs", "2", "--timing-window", "2",
                 "--profile-interval", "0.02", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    (record,), skipped = load_records(tmp_path)
    assert skipped == []
    assert record["schema_version"] == SCHEMA_VERSION == 2 and record["kind"] == "train"
    assert record["started"] == "2026-01-01T00:00:00" < record["finished"]  # stamped before the run, not after

    # 100 samples / 16 = 7 steps, the last one partial: edges 0, 1, 3, 5, 6, 7 -> two full windows of 2.
    for epoch in record["results"]["epochs"]:
        assert epoch["steps"] == 7 and epoch["window_steps"] == 2 and len(epoch["window_times_s"]) == 2
        assert epoch["started_at"] < epoch["trained_at"] < epoch["ended_at"]
        assert epoch["first_step_s"] > 0
    timing = record["timing"]
    assert timing["first_step_s"] == record["results"]["epochs"][0]["first_step_s"]
    assert SUMMARY_KEYS <= set(timing["steady_step_s"]) and timing["steady_step_s"]["n"] == 4
    assert SUMMARY_KEYS <= set(timing["throughput_images_per_s"])
    assert timing["epoch_gap_s"]["n"] == 1 and timing["epoch_gap_s"]["median"] > 0
    assert timing["eval_time_s"]["n"] == 2 and timing["epoch_time_s"]["later"]["n"] == 1
    # How busy the machine was in each epoch's training window, from the kernel's accounting (Linux).
    if sys.platform == "linux":
        assert all(e["contention"]["wall_s"] > 0 and isinstance(e["contention"]["busy"], bool)
                   for e in record["results"]["epochs"])
        assert record["contention"]["windows"] == 2 and record["contention"]["flagged"] in (0, 1, 2)

    # Between the epochs: parts that add up to the gap, none negative, the evaluation the one after epoch 0.
    earlier, later = record["results"]["epochs"]
    parts = gap_parts(earlier, later)
    assert set(parts) == set(GAP_PARTS) and min(parts.values()) >= 0
    assert sum(parts.values()) == pytest.approx(later["started_at"] - earlier["trained_at"], abs=1e-9)
    assert parts["evaluation"] == pytest.approx(earlier["eval_time_s"], abs=1e-9)
    assert later["started_at"] < later["first_batch_at"] < later["trained_at"]
    assert set(timing["epoch_gap_parts_s"]) == set(GAP_PARTS) and timing["first_step_parts_s"]["first_batch"]["n"] == 1
    threads = record["threads"]
    assert threads["python_threads"]["max_alive"] >= 1 and threads["native_threads_max"] >= 1
    assert threads["cpus"] == {"layout": "free", "affinity": sorted(os.sched_getaffinity(0))}
    assert threads["sampler"] == {"enabled": True, "interval_s": 0.02}

    settings = record["settings"]
    for key in ("device", "jit_compile", "precision_policy", "tf32", "threads"):
        assert key in settings, key
    assert settings["precision_policy"] == "float32"
    assert isinstance(settings["jit_compile"], bool)
    if implementation == "keras":
        assert settings["keras_backend"] == backend
    environment = record["environment"]
    assert environment["versions"]["python"] and environment["machine"]["cpu_model"] is not None
    assert record["memory"]["host_peak_rss_bytes"] > 0
    assert record["memory"]["source"] in ("nvml", "psutil")

    # The profiler: epoch markers in order, train/eval windows, a timeline in the sidecar.
    profile = record["profile"]
    markers = [(m["name"], m["info"].get("epoch")) for m in profile["markers"]]
    assert markers == [("epoch_begin", 0), ("epoch_end", 0), ("epoch_begin", 1), ("epoch_end", 1)]
    names = [w["name"] for w in profile["windows"]]
    assert names == ["build", "eval-before", "train-epoch-0", "eval-epoch-0", "train-epoch-1", "eval-epoch-1"]
    timeline = read_timeline(tmp_path / f"mnist_cnn__{implementation}__{backend}__synthetic.json")
    (segment,) = timeline["segments"]
    assert segment["samples"] and segment["markers"] == profile["markers"]
    assert {s["source"] for s in segment["samples"]} <= {"nvml", "psutil"}
    assert [s["t_s"] for s in segment["samples"]] == sorted(s["t_s"] for s in segment["samples"])
    assert any(s["phase"] is not None for s in segment["samples"])
    assert "steady-state step" in capsys.readouterr().out


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_bench_bench_writes_repeats_summaries_and_profiler_cost(pair, tmp_path, capsys, monkeypatch):
    import twinbench.measuring.throughput

    implementation, backend = pair
    _ticking_clock(monkeypatch, twinbench.measuring.throughput)
    code = main(["throughput", "--impl", implementation, "--backend", backend, *TINY, "--steps", "3", "--warmup", "2",
                 "--repeats", "3", "--overhead-repeats", "2", "--compute-repeats", "2", "--profile-interval", "0.02",
                 "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    path = tmp_path / f"mnist_cnn__{implementation}__{backend}__synthetic.json"
    record = read_record(path)
    assert record["kind"] == "throughput" and record["status"] == "ok"
    assert record["started"] == "2026-01-01T00:00:00" < record["finished"]  # stamped before the run, not after
    timing = record["timing"]
    # The whole windows keep the profiler's ABBA order; a compute window sits after, then before, one with it on.
    assert [(r["window"], r["profiler"]) for r in timing["repeats"]] == [
        ("whole", True), ("compute", True), ("whole", False), ("whole", False), ("compute", True), ("whole", True),
        ("whole", True)]
    assert all(r["steps"] == 3 and r["seconds"] > 0 for r in timing["repeats"])
    # Minor page faults per step of each window (Linux: getrusage), counted between the window's edges.
    assert all(r["page_faults_per_step"] is None or r["page_faults_per_step"] >= 0 for r in timing["repeats"])
    if sys.platform == "linux":
        assert all(r["page_faults_per_step"] is not None for r in timing["repeats"])
        assert all(r["contention"]["wall_s"] > 0 and r["contention"]["others_cpu_s"] >= 0 for r in timing["repeats"])
        assert record["contention"]["windows"] == 7 and "schedstat" in record["contention"]["source"]
    assert SUMMARY_KEYS <= set(timing["steady_step_s"]) and timing["steady_step_s"]["n"] == 3
    assert timing["profiler_off_step_s"]["n"] == 2 and timing["throughput_images_per_s"]["n"] == 3
    assert SUMMARY_KEYS <= set(timing["compute_step_s"]) and timing["compute_step_s"]["n"] == 2
    assert SUMMARY_KEYS <= set(timing["feed_step_s"]) and timing["feed_step_s"]["n"] == 2
    steps = {r["repeat"]: r["step_s"] for r in timing["repeats"]}
    # Feed: each compute window against the whole window beside it (repeats 0 and 1, 4 and 5).
    assert timing["feed_step_s"]["median"] == pytest.approx((steps[0] - steps[1] + steps[5] - steps[4]) / 2)
    assert timing["first_step_s"] > 0 and timing["warmup_s"] >= timing["first_step_s"]
    overhead = record["profiler_overhead"]
    assert overhead["n_a"] == 3 and overhead["n_b"] == 2
    assert overhead["overhead_pct"] == pytest.approx(100 * (overhead["ratio"] - 1))
    assert isinstance(overhead["under_limit"], bool) and isinstance(overhead["shown_under_limit"], bool)
    assert record["profile"]["windows_profiled"] == ["warmup", "repeat-0", "repeat-1", "repeat-4", "repeat-5",
                                                     "repeat-6"]
    segments = read_timeline(path)["segments"]
    assert [(s["name"], s["profiler_enabled"]) for s in segments] == [
        ("warmup", True), ("repeat-0", True), ("compute-warmup", False), ("repeat-1", True),
        ("whole-lead-2", False), ("repeat-2", False), ("repeat-3", False), ("compute-lead-4", False),
        ("repeat-4", True), ("whole-lead-5", False), ("repeat-5", True), ("repeat-6", True)]
    assert all(s["samples"] == [] for s in segments if not s["profiler_enabled"])
    assert [s["offset_s"] for s in segments] == sorted(s["offset_s"] for s in segments)
    assert "profiler cost" in capsys.readouterr().out


def _one_thread_pools(pools: dict) -> bool:
    """Whether every pool the framework reports runs one thread (``--threads 1``; TF: what 0 resolves to)."""
    if "torch_intra_op" in pools:
        return pools["torch_intra_op"] == 1
    if "tf_intra_op" in pools:
        return pools["tf_intra_op"]["resolves_to"] == 1 and pools["tf_inter_op"]["resolves_to"] == 1
    return pools["xla_cpu_multi_thread_eigen"] is False


@pytest.mark.large  # a fresh process that starts its framework
def test_threads_and_cpus_reach_the_record_of_a_pinned_child(tmp_path):
    """``--threads 1 --cpus 0`` in a fresh process (pinning must come before any framework starts): the record says
    the pools run one thread, the process ran on CPU 0 only, and the cell is the pinned one."""
    implementation, backend = IMPLEMENTATIONS_HERE[0]
    done = subprocess.run([sys.executable, "-m", "twinbench", "throughput", "--impl", implementation, "--backend", backend,
                           *TINY, "--steps", "2", "--warmup", "1", "--repeats", "1", "--overhead-repeats", "0",
                           "--threads", "1", "--cpus", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-800:]
    record = json.loads((tmp_path / f"mnist_cnn__{implementation}__{backend}__synthetic__cpus-0.json").read_text())
    threads = record["threads"]
    assert record["cell"]["cpus"] == "0" and threads["cpus"] == {"layout": "0", "affinity": [0]}
    assert threads["requested"] == 1 and _one_thread_pools(threads["pools"]), threads["pools"]
    assert threads["env"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def step_counter(runner, model):
    """Optimizer steps applied so far, read from the framework (reading a value waits for it)."""
    if runner.implementation == "torch":
        steps = [state["step"] for state in model.twinbench_optimizer.state.values()]
        return int(max(steps)) if steps else 0
    if runner.implementation == "tf_keras":
        return int(model.optimizer.iterations.numpy())
    import keras

    state = getattr(model, "_jax_state", None)
    if state:  # JAX inside fit: the newest state is not written back to the variables yet
        index = next(i for i, v in enumerate(model.optimizer.variables) if v.path.endswith("iteration"))
        return int(np.asarray(state["optimizer_variables"][index]))
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_clock_edges_fall_between_the_right_steps(pair):
    """At edge i, exactly i optimizer steps have been applied: the clock is called before each step."""
    from twinbench.data import load_dataset

    runner = get_runner(*pair)
    runner.setup(seed=0)
    model = runner.prepare("mnist_cnn", input_shape=(12, 12, 1), num_classes=10)
    dataset = load_dataset("synthetic", input_shape=(12, 12, 1), num_classes=10, synthetic_train=64, synthetic_test=8)
    seen = {}
    clock = StepClock([0, 1, 3, 6], sync=lambda: runner.sync(model),
                      on_edge=lambda edge: seen.setdefault(edge, step_counter(runner, model)))
    runner.train_steps(model, dataset, TrainConfig(batch_size=16), steps=6, clock=clock)
    assert seen == {0: 0, 1: 1, 3: 3, 6: 6}


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_compute_steps_and_the_arrays_feed_train_with_the_clock_between_the_right_steps(pair):
    """``train_steps(feed="arrays")`` and ``compute_steps`` apply exactly the steps the clock counts, the weights move
    and stay finite, and the model still trains through its usual path afterwards."""
    from twinbench.data import load_dataset

    runner = get_runner(*pair)
    runner.setup(seed=0)
    model = runner.prepare("mnist_cnn", input_shape=(12, 12, 1), num_classes=10)
    dataset = load_dataset("synthetic", input_shape=(12, 12, 1), num_classes=10, synthetic_train=64, synthetic_test=8)
    config = TrainConfig(batch_size=16)
    seen = {}
    clock = StepClock([0, 2], sync=lambda: runner.sync(model), on_edge=lambda e: seen.setdefault(("arrays", e),
                                                                                                 step_counter(runner, model)))
    runner.train_steps(model, dataset, config, steps=2, clock=clock, feed="arrays")
    before = runner.get_weights(model)
    clock = StepClock([0, 1, 6], sync=lambda: runner.sync(model), on_edge=lambda e: seen.setdefault(("compute", e),
                                                                                                    step_counter(runner, model)))
    runner.compute_steps(model, dataset, config, steps=6, clock=clock)  # cycles through COMPUTE_BATCHES batches
    assert seen == {("arrays", 0): 0, ("arrays", 2): 2, ("compute", 0): 2, ("compute", 1): 3, ("compute", 6): 8}
    after = runner.get_weights(model)
    assert all(np.isfinite(value).all() for value in after.values())
    assert any(not np.allclose(before[name], after[name]) for name in before if "kernel" in name or "weight" in name)
    assert np.isfinite(runner.train_step(model, dataset.x_train[:16], dataset.y_train[:16], config))


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's asynchronous dispatch")
def test_jax_sync_blocks_on_real_arrays(monkeypatch):
    """``sync(model)`` inside fit must hand jax.Array leaves to block_until_ready, not Keras' wrappers
    (which JAX would silently skip, leaving the steps unsynchronised)."""
    import jax

    from twinbench.data import load_dataset

    runner = get_runner("keras", "jax")
    runner.setup(seed=0)
    model = runner.prepare("mnist_cnn", input_shape=(12, 12, 1), num_classes=10)
    dataset = load_dataset("synthetic", input_shape=(12, 12, 1), num_classes=10, synthetic_train=64, synthetic_test=8)
    blocked = []
    real = jax.block_until_ready
    monkeypatch.setattr(jax, "block_until_ready", lambda x: blocked.append(jax.tree_util.tree_leaves(x)) or real(x))
    clock = StepClock([0, 2, 4], sync=lambda: runner.sync(model))
    runner.train_steps(model, dataset, TrainConfig(batch_size=16), steps=4, clock=clock)
    assert len(blocked) == 3
    for leaves in blocked:
        assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert len(blocked[1]) > len(model.trainable_variables)  # the whole training state, optimizer included


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_profiler_cost_brackets_every_sampled_window_and_counts_samples_inside_it(pair, tmp_path, capsys):
    implementation, backend = pair
    code = main(["profiler-cost", "--impl", implementation, "--backend", backend, *TINY, "--steps", "2",
                 "--warmup", "2", "--cycles", "2", "--intervals", "0.15,0.002", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    record = read_record(tmp_path / f"mnist_cnn__{implementation}__{backend}__synthetic__profiler_cost.json")
    assert record["kind"] == "profiler_cost" and record["status"] == "ok"
    windows = record["windows"]
    assert [w["interval_s"] is None for w in windows] == [True, False] * 4 + [True]
    assert sorted(w["interval_s"] for w in windows if w["cycle"] == 1 and w["interval_s"]) == [0.002, 0.15]
    assert all(w["seconds"] > 0 and w["steps"] == 2 for w in windows)
    assert all(w["samples"] == w["samples_total"] == 0 for w in windows if w["interval_s"] is None)
    # Inside the timed interval: never more than the profiler took (its last sample, at stop, is outside).
    assert all(w["samples"] < w["samples_total"] for w in windows if w["interval_s"])
    analysis = record["analysis"]
    assert analysis["n_windows_on"] == 4 and analysis["per_sample_s"]["ci"] is None  # 2 cycles: no interval
    assert [row["interval_s"] for row in analysis["per_interval"]] == [0.15, 0.002]
    out = capsys.readouterr().out
    assert "nothing shown" in out and "measured directly at 0.15 s" in out
    assert main(["profiler-cost", "--show", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == out.splitlines()[0]


def test_a_failed_profiler_cost_run_is_recorded_and_said_in_one_line(tmp_path, capsys, monkeypatch):
    import twinbench.studies.profiler_cost

    implementation, backend = IMPLEMENTATIONS_HERE[0]

    def broken(config):
        raise RuntimeError("the machine went away\nsecond line")

    monkeypatch.setattr(twinbench.studies.profiler_cost, "execute_cost", broken)
    code = main(["profiler-cost", "--impl", implementation, "--backend", backend, *TINY, "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("twinbench: run failed: RuntimeError: the machine went away (recorded in ") and "\n" not in err
    record = read_record(tmp_path / f"mnist_cnn__{implementation}__{backend}__synthetic__profiler_cost.json")
    assert record["kind"] == "profiler_cost" and record["status"] == "failed" and record["started"]
    assert record["error"]["message"] == "the machine went away"
    assert main(["profiler-cost", "--show", str(tmp_path)]) == 0
    assert "failed (the machine went away)" in capsys.readouterr().out
