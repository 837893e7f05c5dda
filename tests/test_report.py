"""The report builds from whatever a results directory holds: missing cells, failed cells, foreign files.

Framework-free (matplotlib only); the records are small hand-made ones in the record format, so the
test knows what each figure and table must say.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from twinbench.cell import Cell
from twinbench.records import SCHEMA, SCHEMA_VERSION, read_timeline_file, write_json_atomic, write_timeline
from twinbench.results import report, views

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(model, implementation, backend, *, epoch_s=(3.0, 1.0, 1.1, 0.9), status="ok", steps=45):
    record = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "train",
        "cell": {"model": model, "implementation": implementation, "backend": backend, "dataset": "digits"},
        "config": {"batch_size": 32, "epochs": len(epoch_s)},
        "started": "2026-01-01T00:00:00+00:00",
        "status": status,
    }
    if status != "ok":
        record["error"] = {"type": "RuntimeError", "message": "out of memory"}
        return record
    epochs, t = [], 100.0
    for i, seconds in enumerate(epoch_s):
        epochs.append({"epoch": i, "loss": 1.0 / (i + 1), "test_accuracy": 0.5 + 0.1 * i, "train_time_s": seconds,
                       "eval_time_s": 0.2, "steps": steps, "started_at": t, "ended_at": t + seconds + 0.2})
        t += seconds + 0.3
    record.update(
        finished="2026-01-01T00:01:00+00:00",
        model={"name": model, "params": 1000, "input_shape": [8, 8, 1], "num_classes": 10},
        dataset={"name": "digits", "train": 1437, "test": 360},
        results={"accuracy_before": 0.1, "accuracy_after": epochs[-1]["test_accuracy"], "final_loss": epochs[-1]["loss"],
                 "epochs": epochs},
        device={"device": "cpu"}, memory={},
        environment={"machine": {"cpu_model": "Test CPU", "cpu_count_logical": 2}, "gpu": None,
                     "versions": {"python": "3.11.7", "keras": "3.15.1"}, "git": {"commit": "abc123", "dirty": False}},
    )
    return record


def _write(directory, record):
    return write_json_atomic(directory / f"{Cell.of(record).file_id}.json", record)


@pytest.fixture
def partial_results(tmp_path):
    """cifar_cnn: torch, keras[torch] and keras[jax] ok, tf_keras failed, keras[tensorflow] missing; plus junk."""
    for implementation, backend, times in [("torch", "torch", (3.0, 1.0, 1.1, 0.9)),
                                           ("keras", "torch", (4.0, 2.0, 2.1, 1.9)),
                                           ("keras", "jax", (9.0, 1.0, 1.05, 0.95))]:
        _write(tmp_path, _record("cifar_cnn", implementation, backend, epoch_s=times))
    _write(tmp_path, _record("cifar_cnn", "tf_keras", "tensorflow", status="failed"))
    (tmp_path / "other_tool.json").write_text(json.dumps({"schema": "someone.else", "rows": []}))
    (tmp_path / "future.json").write_text(json.dumps({"schema": SCHEMA, "schema_version": 99}))
    (tmp_path / "broken.json").write_text("{not json")
    return tmp_path


def test_report_from_a_partial_matrix(partial_results):
    path = report.build_report(partial_results)
    text = path.read_text()
    assert path == partial_results / "report.md"
    # the cell grid: ok, failed with its reason, missing
    assert "| cifar_cnn on digits | ok | ok | failed: out of memory | missing | ok |" in text
    # foreign files are listed with the reason they were skipped
    for name, why in [("other_tool.json", "not a twinbench run record"), ("future.json", "schema version 99"),
                      ("broken.json", "not readable JSON")]:
        assert any(name in line and why in line for line in text.splitlines()), (name, why)
    # every figure of the group exists, is a PNG and is linked from the report
    for kind in ("speed", "decomposition", "timeline", "curves"):
        png = partial_results / "figures" / f"{kind}__cifar_cnn__digits.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, kind
        assert f"(figures/{png.name})" in text
    # no memory was measured in these records: no empty figure, a sentence instead
    assert not (partial_results / "figures" / "memory__cifar_cnn__digits.png").exists()
    assert "No memory figures in these records" in text


def test_decomposition_keeps_the_ratio_but_gives_no_verdict_from_one_run_per_cell(partial_results):
    groups = report.group_records(report.load_records(partial_results)[0])
    rows = {(r["numerator"], r["denominator"]): r for r in report.decomposition_rows(groups)}
    slower = rows[("keras[torch]", "torch")]
    assert slower["ratio"] == pytest.approx(2.0, rel=0.01)  # medians 2.0 s vs 1.0 s per epoch
    # Epochs of one process are not independent samples: the interval excludes 1, but there is no verdict.
    assert slower["differs"] and slower["verdict"].startswith("unresolved (")
    assert "1 independent samples" in slower["verdict"] and "more minutes of machine time" in slower["verdict"]
    same = rows[("keras[jax]", "keras[torch]")]  # 1.0 s vs 2.0 s: twice as fast
    assert same["ratio"] == pytest.approx(0.5, rel=0.01) and same["verdict_status"] == "unresolved"
    missing = rows[("torch", "tf_keras")]
    assert "ratio" not in missing and "tf_keras failed" in missing["missing"]
    assert "| not recorded / not recorded | unresolved (" in report.build_report(partial_results, figures=False).read_text()


def _runs(tmp_path, *, busy_epochs=0):
    """Five runs (rounds) of torch and keras[torch], keras[torch] twice as slow; ``busy_epochs`` of each torch run
    counted busy (others took 60% of the CPUs)."""
    for run in range(5):
        for implementation, seconds in (("torch", 1.0), ("keras", 2.0)):
            times = [3.0] + [seconds * (1 + 0.001 * (run + i)) for i in range(4)]
            record = _record("cifar_cnn", implementation, "torch", epoch_s=times)
            for i, epoch in enumerate(record["results"]["epochs"]):
                share = 0.6 if implementation == "torch" and 0 < i <= busy_epochs else 0.0
                epoch["contention"] = {"others_share": share, "wait_share": 0.0, "steal_share": 0.0,
                                       "busy": share > 0, "reasons": ["others"] if share else []}
            (tmp_path / f"round-{run}").mkdir(exist_ok=True)
            _write(tmp_path / f"round-{run}", record)
    return report.build_report(tmp_path, figures=False).read_text()


def test_five_quiet_runs_per_cell_with_a_narrow_interval_get_their_verdict(tmp_path):
    text = _runs(tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("| cifar_cnn on digits | keras[torch] / torch"))
    assert "| quiet / quiet | 2.00x slower" in line


def test_a_busy_machine_gives_no_verdict_in_the_report(tmp_path):
    text = _runs(tmp_path, busy_epochs=2)  # 2 of each torch run's 4 sample epochs: 10 of 20
    line = next(line for line in text.splitlines() if line.startswith("| cifar_cnn on digits | keras[torch] / torch"))
    assert "| quiet / busy 10/20 | machine busy: others took 60% of the CPUs in 10 of 20 windows of torch; " in line
    assert "rerun on a quiet machine" in line and "2.00x slower" not in line


def test_overlapping_intervals_from_one_run_each_are_unresolved_not_no_difference(tmp_path):
    _write(tmp_path, _record("cifar_cnn", "torch", "torch", epoch_s=(3.0, 1.0, 1.3, 0.8, 1.2, 0.9)))
    _write(tmp_path, _record("cifar_cnn", "keras", "torch", epoch_s=(3.0, 0.9, 1.2, 1.0, 1.3, 0.8)))
    groups = report.group_records(report.load_records(tmp_path)[0])
    row = next(r for r in report.decomposition_rows(groups) if r["numerator"] == "keras[torch]")
    assert not row["differs"] and row["verdict"].startswith("unresolved (")  # one run each: not "no difference"


def test_step_time_prefers_the_measured_statistics_of_a_v2_record():
    record = _record("cifar_cnn", "torch", "torch")
    assert views.step_time(record)[0]["median"] == pytest.approx(1.0 / 45)
    measured = {"median": 0.01, "ci_low": 0.009, "ci_high": 0.011, "n": 12}
    record["timing"] = {"steady_step_s": measured, "window_steps": 10}
    summary, what = views.step_time(record)
    assert summary is measured and "window of 10 steps" in what


def test_timeline_reads_the_sidecar_and_falls_back_to_epoch_timestamps(tmp_path):
    record = _record("cifar_cnn", "torch", "torch")
    fallback = views.timeline(record, tmp_path)
    assert fallback.source == "epochs only" and not fallback.samples
    assert fallback.windows[0] == {"name": "train-epoch-0", "start_s": 0.0, "end_s": 3.0}
    samples = [{"t_s": t / 10, "source": "psutil", "cpu_percent": 90.0, "rss_bytes": 2**30} for t in range(30)]
    sidecar = write_timeline(tmp_path / "side.json", record, [
        {"offset_s": 0.0, "samples": samples, "markers": [],
         "windows": [{"name": "train-epoch-0", "start_s": 0.5, "end_s": 2.0}]},
        {"offset_s": 5.0, "samples": samples[:2], "markers": [], "windows": []}])
    record["timeline_file"] = sidecar.name  # side.timeline.json.gz
    line = views.timeline(record, tmp_path)
    assert line.source == "psutil" and not line.has_gpu
    assert len(line.samples) == 32 and line.samples[-1]["t_s"] == pytest.approx(5.1)
    # A plain sidecar from before timelines were compressed reads the same.
    (tmp_path / "old.timeline.json").write_text(json.dumps(read_timeline_file(sidecar), indent=2))
    assert views.timeline({**record, "timeline_file": "old.timeline.json"}, tmp_path) == line


def test_cli_report_errors_and_empty_directory(tmp_path):
    run = [sys.executable, "-m", "twinbench", "report"]
    missing = subprocess.run([*run, str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("twinbench: error: results directory")
    empty = subprocess.run([*run, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert empty.returncode == 0, empty.stderr
    assert "No readable twinbench records" in (tmp_path / "report.md").read_text()


def test_gpu_records_draw_utilisation_device_memory_and_allocator_peaks(tmp_path):
    """A GPU machine's records (NVML samples, allocator peaks) draw the GPU panels; nothing here needs a GPU."""
    for implementation, backend, busy in [("torch", "torch", 90.0), ("keras", "torch", 60.0)]:
        record = _record("cifar_cnn", implementation, backend)
        record["environment"]["gpu"] = {"name": "Test GPU 80GB"}
        record["device"] = {"device": "cuda"}
        record["memory"] = {"allocator": {"allocator": "torch.cuda", "peak_bytes": 3 * 2**30},
                            "device_memory_used_peak_bytes": 5 * 2**30, "host_peak_rss_bytes": 2**31}
        samples = [{"t_s": t / 10, "source": "nvml", "utilization_gpu": busy if 5 < t < 25 else 0.0,
                    "memory_used_bytes": 5 * 2**30, "cpu_percent": 100.0, "rss_bytes": 2**31} for t in range(30)]
        record["timeline"] = [{"offset_s": 0.0, "samples": samples, "markers": [],
                               "windows": [{"name": "train-epoch-0", "start_s": 0.5, "end_s": 2.5}]}]
        _write(tmp_path, record)
    text = report.build_report(tmp_path).read_text()
    assert "Test GPU 80GB" in text
    assert "| torch | 3,072 MiB | 5,120 MiB | 2,048 MiB |" in text
    groups = report.group_records(report.load_records(tmp_path)[0])
    line = views.timeline(groups[0].ok()["torch"], tmp_path)
    assert line.has_gpu and line.source == "nvml"
    for kind in ("timeline", "memory", "speed"):
        assert (tmp_path / "figures" / f"{kind}__cifar_cnn__digits.png").read_bytes()[:8] == PNG_MAGIC
