"""The latency benchmark: the percentiles' intervals, the style axis, one record per implementation here, and the
comparison (table, ratios with the verdict rules, figure) from fake records. No timing is asserted: only structure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import IMPLEMENTATIONS_HERE, impl_id, requires_backend
from twinbench.backends.base import STYLES, check_style
from twinbench.backends.export import EXPORT_FORMATS
from twinbench.cell import CELL_AXES, Cell, cell_argv, command_axes, environment_cells
from twinbench.cli import main
from twinbench.measuring.latency import LatencyConfig, batch_figures, check_batch_sizes, execute_latency
from twinbench.models.choices import UnknownChoiceError
from twinbench.records import read_record, write_record
from twinbench.results.latency import latency_ratios, latency_rows, latency_section, latency_table
from twinbench.stats import median_ci_ranks, quantile_ci, quantile_ci_ranks

# -- the percentiles and their intervals ---------------------------------------------------------------------


def test_quantile_ranks_at_the_median_are_the_medians():
    for n in (6, 10, 20, 51, 200):
        lo, hi, coverage = quantile_ci_ranks(n, 0.5)
        assert (lo, hi) == median_ci_ranks(n)[:2] and coverage == pytest.approx(median_ci_ranks(n)[2])


def test_an_extreme_percentile_has_no_bound_it_cannot_have():
    lo, hi, coverage = quantile_ci_ranks(50, 0.99)  # p99's upper bound needs n >= 368 at 95%
    assert lo is not None and hi is None and coverage is None
    assert quantile_ci_ranks(368, 0.99)[1] == 368
    summary = quantile_ci(np.arange(50.0), 0.99)
    assert summary["ci_high"] is None and summary["ci_low"] <= summary["value"]


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_percentile_intervals_cover_the_true_percentile(q):
    """Coverage: draws from a skewed distribution with a known quantile; the interval holds it >= ~95% of the time."""
    rng = np.random.default_rng(0)
    n, trials = 400, 1000
    truth = -np.log(1 - q)  # Exponential(1)'s q quantile
    lo, hi, coverage = quantile_ci_ranks(n, q)
    samples = np.sort(rng.exponential(size=(trials, n)), axis=1)
    inside = (samples[:, lo - 1] <= truth) & (truth <= samples[:, hi - 1])
    assert coverage >= 0.95
    assert inside.mean() >= 0.93  # 1000 trials: 0.95 within about 1.4 standard errors of its sampling noise


# -- the style axis and the errors -----------------------------------------------------------------------------


def test_style_is_one_axis_of_the_latency_command_for_the_keras_implementations():
    declared = CELL_AXES["style"]
    assert declared.choices == STYLES and declared.default == "call"
    assert declared.implementations == ("keras", "tf_keras") and declared.commands == ("latency", "breakdown")
    assert "style" in command_axes("latency") and "style" not in command_axes("throughput")
    assert {"jit", "precision", "cpus"} <= set(command_axes("latency")) and "replicas" not in command_axes("latency")
    cell = Cell("cifar_cnn", "keras", "torch", "synthetic", style="predict")
    assert cell.label == "keras[torch] style=predict" and "style-predict" in cell.file_id
    assert cell_argv(cell, "latency")[-2:] == ["--style", "predict"]
    with pytest.raises(UnknownChoiceError, match="not to torch.*Valid for torch: call"):
        Cell("cifar_cnn", "torch", "torch", "synthetic", style="predict").check_applies()
    assert [c.implementation for c in environment_cells("torch", "cifar_cnn", dataset="synthetic", style="predict")] \
        == ["keras"]


def test_jit_on_compiles_only_the_styles_that_compile():
    check_style("torch", "call", "on")
    check_style("keras", "predict", "on")
    with pytest.raises(ValueError, match="Valid styles with --jit on: predict_on_batch, predict"):
        check_style("tf_keras", "call", "on")


@pytest.mark.parametrize("sizes", [(0, 4), (), (-1,)])
def test_batch_sizes_must_be_positive(sizes):
    with pytest.raises(ValueError, match="--batch-sizes must be positive integers"):
        check_batch_sizes(sizes)


def test_the_cli_refuses_a_batch_size_of_zero_in_one_line(capsys):
    assert main(["latency", "--impl", "torch", "--batch-sizes", "0,4"]) == 2
    assert capsys.readouterr().err.strip() == ("twinbench: error: argument --batch-sizes: must be comma-separated "
                                               "positive integers, e.g. 1,4,16,64, got '0,4'")


# -- one record per implementation here -------------------------------------------------------------------------


def _styles(implementation):
    return ("call",) if implementation == "torch" else STYLES


@requires_backend
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_a_latency_record_keeps_the_first_call_apart_and_has_percentiles_per_batch_size(pair, tmp_path):
    implementation, backend = pair
    for style in _styles(implementation):
        cell = Cell("mnist_cnn", implementation, backend, "synthetic", style=style)
        config = LatencyConfig(cell, batch_sizes=(1, 3), calls=3, repeats=2, warmup=2, input_shape=(12, 12, 1))
        record = execute_latency(config)
        assert record["kind"] == "latency" and record["status"] == "ok"
        assert record["config"]["style"] == style and record["timing"]["style"] == style
        batches = record["timing"]["batches"]
        assert [b["batch_size"] for b in batches] == [1, 3]
        for entry in batches:
            assert entry["first_call_s"] > 0 and entry["warmup_s"] >= entry["first_call_s"]
            assert len(entry["calls_s"]) == 6 and len(entry["windows"]) == 2  # the first call is not among them
            assert set(entry["percentiles_s"]) == {"p50", "p90", "p99"}
            assert entry["throughput_samples_per_s"]["n"] == 2
            assert entry["memory"]["host_peak_rss_bytes"] > 0
            assert all("contention" in w for w in entry["windows"])
        assert record["contention"]["windows"] == 4 or record["contention"].get("unavailable")
        path = write_record(record, tmp_path)
        assert path.name.endswith("__latency.json") and read_record(path)["timing"]["batches"][0]["calls_s"]


@requires_backend
def test_the_latency_command_writes_a_record_and_prints_a_line_per_batch_size(tmp_path, capsys):
    implementation, backend = IMPLEMENTATIONS_HERE[0]
    code = main(["latency", "--model", "mnist_cnn", "--impl", implementation, "--backend", backend,
                 "--batch-sizes", "2,1", "--calls", "2", "--repeats", "1", "--warmup", "1", "--input-shape",
                 "12x12x1", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "batch 1: first call" in out and "batch 2: first call" in out
    (path,) = tmp_path.glob("*__latency.json")
    assert json.loads(path.read_text())["config"]["batch_sizes"] == [1, 2]


# -- compare: table, ratios, figure from fake records ---------------------------------------------------------


def _fake(implementation, backend, *, seconds, run, style="call", busy=False, sizes=(1, 4)):
    cell = Cell("mnist_cnn", implementation, backend, "synthetic", style=style)
    rng = np.random.default_rng(run)
    batches = []
    for size in sizes:
        windows = [{"window": i, "calls": 10, "calls_s": list(seconds * size ** 0.5 * rng.uniform(0.98, 1.02, 10)),
                    "contention": {"busy": busy, "reasons": ["others"] if busy else [], "others_share": 0.6 if busy
                                   else 0.0, "wait_share": 0.0, "steal_share": 0.0}} for i in range(3)]
        for window in windows:
            window["seconds"] = sum(window["calls_s"])
        batches.append(batch_figures(size, first_call_s=1.0, warmup_s=1.1, windows=windows))
    return {"schema": "twinbench.run", "schema_version": 2, "kind": "latency", "status": "ok", "cell": cell.as_dict(),
            "run_id": f"{implementation}{backend}{style}{run}", "config": {"batch_sizes": list(sizes)},
            "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
            "model": {"input_shape": [28, 28, 1]}, "timing": {"style": style, "batches": batches}}


def _records(*, busy=False, runs=5):
    records = []
    for run in range(runs):
        records += [_fake("torch", "torch", seconds=0.001, run=run),
                    _fake("keras", "torch", seconds=0.002, run=run, busy=busy),
                    _fake("keras", "torch", seconds=0.003, run=run, style="predict")]
    return records


@pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)
def test_the_table_has_a_row_per_cell_and_batch_size_with_percentiles():
    rows = latency_rows(_records())
    assert {(r["label"], r["batch_size"]) for r in rows} == {
        (label, size) for label in ("torch", "keras[torch]", "keras[torch] style=predict") for size in (1, 4)}
    row = next(r for r in rows if r["label"] == "torch" and r["batch_size"] == 4)
    assert row["calls"] == 150 and row["runs"] == 5
    assert row["p50"]["ci_low"] <= row["p50"]["value"] <= row["p50"]["ci_high"]
    assert row["p50"]["value"] == pytest.approx(0.002, rel=0.03) and row["throughput"]["median"] == pytest.approx(
        2000, rel=0.03)
    table = latency_table(rows)
    assert "keras[torch] style=predict" in table and "p50 [CI]" in table


@pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)
def test_the_ratios_per_batch_size_follow_the_verdict_rules():
    rows = latency_ratios(_records())
    pairs = {(r["numerator"], r["denominator"], r["batch_size"]): r for r in rows}
    assert set(pairs) == {(n, "torch", s) for n in ("keras[torch]", "keras[torch] style=predict") for s in (1, 4)}
    called = pairs[("keras[torch]", "torch", 4)]
    assert called["ratio"] == pytest.approx(2.0, rel=0.03) and called["verdict_status"] == "called"
    assert pairs[("keras[torch] style=predict", "torch", 1)]["ratio"] == pytest.approx(3.0, rel=0.03)
    busy = {(r["numerator"], r["batch_size"]): r for r in latency_ratios(_records(busy=True))}
    assert busy[("keras[torch]", 1)]["verdict_status"] == "busy"
    assert busy[("keras[torch]", 1)]["verdict"].startswith("machine busy")
    few = latency_ratios(_records(runs=2))
    assert all(r["verdict_status"] == "unresolved" for r in few)


@pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)
def test_compare_and_report_show_the_latency_table_ratios_and_figure(tmp_path, capsys):
    for record in _records(runs=2):
        write_record(record, tmp_path)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "inference latency per call" in out and "keras[torch] / torch" in out
    assert "Ratios of the p50 per batch size" in latency_section(_records(runs=2))
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Inference latency" in report and "figures/latency__mnist_cnn.png" in report
    assert (tmp_path / "figures" / "latency__mnist_cnn.png").stat().st_size > 10_000


@requires_backend
@pytest.mark.large
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_an_exported_artifact_is_a_latency_cell_of_its_own(pair):
    implementation, backend = pair
    fmt = EXPORT_FORMATS[pair][0]  # each implementation's own format: torch.export, SavedModel, jax.export
    cell = Cell("mnist_cnn", implementation, backend, "synthetic", artifact=fmt)
    record = execute_latency(LatencyConfig(cell, batch_sizes=(1, 2), calls=2, repeats=1, warmup=1,
                                           input_shape=(12, 12, 1)))
    assert record["config"]["artifact"] == fmt and f"artifact={fmt}" in Cell.of(record).label
    assert [len(b["calls_s"]) for b in record["timing"]["batches"]] == [2, 2]


def test_an_artifact_takes_no_style_and_no_jit():
    with pytest.raises(ValueError, match="--artifact onnx runs in its format's own runtime"):
        check_style("keras", "predict", "default", "onnx")
