"""The definition-effect table from throughput records with known step times (no framework, no timing)."""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.cli import main
from twinbench.studies.definition_effect import ENV_CELLS, definition_effect_rows, definition_effect_table

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)


def _record(model, implementation, backend, step_s, *, forward_flops=100, seed=0):
    steps = np.random.default_rng(seed).normal(step_s, step_s * 0.01, size=8)
    return {"status": "ok", "kind": "throughput",
            "cell": {"model": model, "implementation": implementation, "backend": backend, "dataset": "synthetic"},
            "config": {"batch_size": 16}, "model": {"input_shape": [32, 32, 3]},
            "timing": {"repeats": [{"step_s": float(s), "profiler": True} for s in steps]},
            "efficiency": {"forward_flops_per_image": forward_flops, "achieved_gflops": {"median": 1.0}, "mfu": None}}


@pytest.fixture
def records():
    return [
        _record("resnet50", "torch", "torch", 0.10),
        _record("resnet50", "keras", "torch", 0.12, seed=1),  # framework effect 1.2
        _record("resnet50_kerasapps", "keras", "torch", 0.24, forward_flops=94, seed=2),  # definition effect 2.0
        _record("resnet50", "keras", "jax", 0.10, seed=3),
        _record("resnet50_kerasapps", "keras", "jax", 0.10, seed=4),  # no definition effect on jax
    ]


def test_effects_are_the_ratios_with_intervals(records):
    rows = {row["backend"]: row for row in definition_effect_rows(records)}
    torch_row, jax_row = rows["torch"], rows["jax"]
    assert torch_row["definition_effect"]["ratio"] == pytest.approx(2.0, rel=0.03)
    assert torch_row["definition_effect"]["differs"]
    assert torch_row["framework_effect"]["ratio"] == pytest.approx(1.2, rel=0.03)
    assert torch_row["native"] == "torch"
    assert jax_row["definition_effect"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert "framework_effect" not in jax_row  # JAX has no native twin


def test_table_marks_differences_and_flop_ratio(records):
    text = definition_effect_table(records, markdown=True)
    assert "| resnet50 | 32x32x3 | 16 | torch |" in text
    assert "0.94" in text  # stock/matched FLOPs
    assert "*" in text  # a CI that excludes 1


def test_every_environment_times_stock_and_matched():
    for cells in ENV_CELLS.values():
        assert {role for role, _, _ in cells} == {"matched", "stock"}


def test_cli_table_of_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["definition-effect", "--out", str(tmp_path / "nothing")]) == 2
    assert "nox -s definition_effect" in capsys.readouterr().err


def test_rounds_in_subdirectories_are_pooled_and_their_runs_resampled(tmp_path, records, capsys):
    from twinbench.records import SCHEMA, SCHEMA_VERSION, write_json_atomic
    from twinbench.studies.definition_effect import load_throughput_records

    for round_dir in ("round-1", "round-2"):
        for index, record in enumerate(records):
            write_json_atomic(tmp_path / round_dir / f"{index}.json", {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                                                                       **record})
    pooled = load_throughput_records([tmp_path])
    assert len(pooled) == 2 * len(records)
    torch_row = {row["backend"]: row for row in definition_effect_rows(pooled)}["torch"]
    assert torch_row["definition_effect"]["n_a"] == 16  # 8 windows in each round
    assert torch_row["definition_effect"]["runs_resampled"] == [True, True]
    assert main(["definition-effect", "--out", str(tmp_path)]) == 0
    assert "resnet50" in capsys.readouterr().out
