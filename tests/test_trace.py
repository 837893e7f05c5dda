"""``bench trace``: the op classification, the exclusive-time and overlap arithmetic on made-up intervals whose
answers are known, the results' text, and one traced cell per environment (Keras on this process's backend)."""

import json

import pytest
from pytest import approx

from tests.conftest import BACKEND, requires_backend
from twinbench.backends.trace import OpInterval, exclusive_intervals
from twinbench.cli import main
from twinbench.ops import CATEGORIES, classify, op_table
from twinbench.records import load_records
from twinbench.results.ops import difference_line, ops_differences, ops_markdown, ops_section


@pytest.mark.parametrize(("name", "scope", "category"), [
    ("aten::mkldnn_convolution", "", "conv_matmul"),
    ("aten::convolution_backward", "", "conv_matmul"),
    ("aten::addmm", "", "conv_matmul"),
    ("aten::mm", "", "conv_matmul"),
    ("Conv2DBackpropFilter", "", "conv_matmul"),
    ("_FusedMatMul", "", "conv_matmul"),
    ("BatchMatMulV2", "", "conv_matmul"),
    ("conv_general_dilated.2", "", "conv_matmul"),
    ("dot.3", "", "conv_matmul"),
    ("ynn_fusion.9", "", "conv_matmul"),
    ("aten::copy_", "", "layout"),
    ("aten::permute", "", "layout"),
    ("aten::t", "", "layout"),
    ("Transpose", "", "layout"),
    ("transpose_copy_fusion.1", "", "layout"),
    ("aten::_foreach_add_", "", "optimizer"),
    ("ResourceApplyAdam", "", "optimizer"),
    ("aten::mul_", "Optimizer.step#Adam.step", "optimizer"),
    ("aten::mul_", "aten::_foreach_mul_", "optimizer"),
    ("Sqrt", "StatefulPartitionedCall/adam/Sqrt", "optimizer"),
    ("Mul", "sequential/dense/mul", "other"),
    ("aten::add", "", "other"),
    ("convert_element_type.3", "", "other"),  # not a convolution
    ("aten::max_pool2d_with_indices", "", "other"),
    ("aten::tanh", "", "other"),  # ends in t, but is no transpose
])
def test_classification_of_made_up_names(name, scope, category):
    assert classify(name, scope=scope) == category


def test_exclusive_intervals_cut_nested_ops_out_of_their_parents():
    events = [("conv2d", 0.0, 10.0, ""), ("mkldnn_convolution", 1.0, 8.0, ""), ("empty", 2.0, 3.0, ""),
              ("add", 12.0, 13.0, "")]
    pieces = exclusive_intervals(events, thread="t")
    self_time = {}
    for piece in pieces:
        self_time[piece.name] = self_time.get(piece.name, 0.0) + piece.end_s - piece.start_s
    assert self_time == approx({"conv2d": 3.0, "mkldnn_convolution": 6.0, "empty": 1.0, "add": 1.0})
    assert sum(self_time.values()) == approx(11.0)  # the union of the intervals: nothing counted twice


def test_op_table_splits_overlapping_time_and_adds_up_to_the_wall_time():
    ops = [OpInterval("aten::mm", 0.0, 0.004, "a"),  # alone for 2 ms, then shared with the copy for 2 ms
           OpInterval("aten::copy_", 0.002, 0.006, "b"),  # 2 ms shared, 2 ms alone
           OpInterval("aten::_foreach_add_", 0.008, 0.009, "a"),
           OpInterval("aten::relu", 0.009, 0.009, "a")]  # empty: ignored
    table = op_table(ops, wall_s=0.020, steps=2, profiler="made up")
    ms = table["ms_per_step"]
    assert ms["conv_matmul"] == approx(1.5) and ms["layout"] == approx(1.5)  # (2 + 2/2) ms over 2 steps
    assert ms["optimizer"] == approx(0.5) and ms["other"] == 0.0
    assert table["covered_ms_per_step"] == approx(3.5) and table["busy_ms_per_step"] == approx(4.5)
    assert ms["remainder"] == approx(10.0 - 3.5)
    assert sum(ms.values()) == approx(table["wall_ms_per_step"])
    assert table["threads"] == 2
    assert [op["name"] for op in table["top_ops"]] == ["aten::mm", "aten::copy_", "aten::_foreach_add_"]
    assert table["top_ops"][0] == {"name": "aten::mm", "category": "conv_matmul", "ms_per_step": approx(1.5)}


def _trace_record(implementation, backend, ms, wall):
    ms = {**ms, "remainder": wall - sum(ms.values())}
    return {"kind": "trace", "status": "ok", "started": "2026-12-02T00:00:00+00:00", "run_id": implementation,
            "cell": {"model": "cifar_cnn", "implementation": implementation, "backend": backend,
                     "dataset": "synthetic"},
            "config": {"batch_size": 8},
            "ops": {"profiler": "made up", "steps": 2, "threads": 1, "wall_ms_per_step": wall, "ms_per_step": ms,
                    "top_ops": [{"name": "conv", "category": "conv_matmul", "ms_per_step": ms["conv_matmul"]}]}}


def test_results_show_each_decomposition_ratio_as_per_category_differences():
    keras = _trace_record("keras", "torch", {"conv_matmul": 5.0, "layout": 3.0, "optimizer": 1.0, "other": 2.0}, 16.0)
    torch = _trace_record("torch", "torch", {"conv_matmul": 5.0, "layout": 0.5, "optimizer": 1.0, "other": 2.0}, 10.0)
    line = difference_line(keras["ops"], torch["ops"])
    assert line == ("of the extra +6.00 ms/step: +0.00 conv/matmul, +2.50 layout, +0.00 optimizer, +0.00 other ops, "
                    "+3.50 remainder")
    rows = ops_differences([keras, torch])
    assert [(r["numerator"], r["denominator"]) for r in rows] == [("keras[torch]", "torch")]
    section = ops_section([keras, torch])
    assert "cifar_cnn keras[torch]: 16.00 ms/step" in section and line in section
    markdown = "\n".join(ops_markdown([keras, torch]))
    assert "## Op-level breakdown" in markdown and "| cifar_cnn torch | 10.00 | 5.00 | 0.50 |" in markdown
    assert ops_section([]) == "" and ops_markdown([]) == []


@requires_backend
def test_trace_of_a_tiny_cnn_adds_up(tmp_path):
    """One cell per environment, Keras on this process's backend, 2 traced steps of mnist_cnn at batch 8."""
    code = main(["trace", "--model", "mnist_cnn", "--impl", "keras", "--backend", BACKEND, "--batch-size", "8",
                 "--warmup", "2", "--steps", "2", "--out", str(tmp_path)])
    assert code == 0
    records, skipped = load_records(tmp_path)
    assert not skipped and [r["kind"] for r in records] == ["trace"]
    record = records[0]
    assert (tmp_path / f"mnist_cnn__keras__{BACKEND}__synthetic__trace.json").exists()
    ops = record["ops"]
    ms = ops["ms_per_step"]
    assert all(ms[category] >= 0 for category in CATEGORIES)
    assert sum(ms.values()) == approx(ops["wall_ms_per_step"])
    assert ops["wall_ms_per_step"] == approx(1e3 * record["timing"]["traced_step_s"])
    assert ops["covered_ms_per_step"] <= ops["busy_ms_per_step"] + 1e-9
    assert ms["conv_matmul"] > 0
    if BACKEND == "jax":  # XLA fuses Adam's update into unnamed fusions: the note says so
        assert ms["optimizer"] == 0 and "optimizer" in ops["note"]
    else:
        assert ms["optimizer"] > 0
    assert 0 < len(ops["top_ops"]) <= 15
    assert {op["category"] for op in ops["top_ops"]} <= {*CATEGORIES, "mixed"}
    json.dumps(record)


def test_a_pinned_trace_is_its_own_cell():
    """``bench trace --cpus 0`` (pinning happens before any framework is imported, so not in this test's process):
    the layout is the cell's ``cpus`` axis, in the label and the file name, as in ``bench throughput``."""
    from twinbench.cell import Cell
    from twinbench.measuring.trace import TraceConfig

    free = TraceConfig(Cell("mnist_cnn", "torch", "torch", "synthetic"))
    pinned = TraceConfig(Cell("mnist_cnn", "torch", "torch", "synthetic", cpus="0"))
    assert free.cell.cpus == "free" and "cpus" not in free.cell.file_id
    assert pinned.cell.label == "torch cpus=0" and "cpus-0" in pinned.cell.file_id
