"""The tables of docs/paper_table.md and docs/cluster.md are what their committed records say (tools/paper_table.py,
tools/replica_scaling.py); the tools import no framework."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import paper_table  # noqa: E402
import replica_scaling  # noqa: E402

PAPER_RECORDS = ROOT / "docs" / "measurements" / "paper-table-cpu-2026-12-02"
REPLICA_RECORDS = ROOT / "docs" / "measurements" / "replicas-cpu-2026-12-02" / "round-1"


def test_paper_table_covers_the_six_models_in_five_implementations_and_is_the_page():
    rows = paper_table.ratio_rows(paper_table.load_records(*sorted(PAPER_RECORDS.glob("round-*")))[0])
    assert {row["model"] for row in rows} == set(paper_table.MODELS)
    assert len(rows) == 6 * 5
    for row in rows:
        assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
        if row["implementation"] == "torch":
            assert row["ratio"] == 1.0
    assert paper_table.table(rows) in (ROOT / "docs" / "paper_table.md").read_text()


def test_replica_scaling_table_is_the_page():
    rows = replica_scaling.scaling_rows(REPLICA_RECORDS)
    assert {(row["model"], row["implementation"]) for row in rows} == {
        (model, impl) for model in ("cifar_cnn", "mnist_cnn")
        for impl in ("torch", "tf_keras", "keras[tensorflow]", "keras[jax]")}
    assert all("vs_one_core" in row and "vs_two_cores" in row for row in rows)
    assert replica_scaling.table(rows) in (ROOT / "docs" / "cluster.md").read_text()


def test_tools_refuse_directories_without_records(tmp_path, capsys):
    assert paper_table.main([str(tmp_path)]) == 2
    assert replica_scaling.main([str(tmp_path)]) == 2
    assert "no " in capsys.readouterr().err
