"""The tables of docs/paper_table.md and docs/cluster.md are what their committed records say (``twinbench compare
--view paper-table`` and ``--view replica-scaling``, twinbench.results.measured_tables); the views import no
framework (tests/test_structure.py checks every results module)."""

from __future__ import annotations

import pytest

from conftest import ROOT
from twinbench.cli import main
from twinbench.records import load_records
from twinbench.results import measured_tables

pytestmark = pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)

PAPER_RECORDS = ROOT / "docs" / "measurements" / "paper-table-cpu-2026-12-02"
REPLICA_RECORDS = ROOT / "docs" / "measurements" / "replicas-cpu-2026-12-02" / "round-1"


def test_paper_table_covers_the_six_models_in_five_implementations_and_is_the_page():
    rows = measured_tables.paper_rows(load_records(*sorted(PAPER_RECORDS.glob("round-*")))[0])
    assert {row["model"] for row in rows} == set(measured_tables.PAPER_MODELS)
    assert len(rows) == 6 * 5
    for row in rows:
        assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
        if row["implementation"] == "torch":
            assert row["ratio"] == 1.0
    assert measured_tables.paper_table(rows) in (ROOT / "docs" / "paper_table.md").read_text()


def test_replica_scaling_table_is_the_page():
    rows = measured_tables.scaling_rows(load_records(REPLICA_RECORDS)[0])
    assert {(row["model"], row["implementation"]) for row in rows} == {
        (model, impl) for model in ("cifar_cnn", "mnist_cnn")
        for impl in ("torch", "tf_keras", "keras[tensorflow]", "keras[jax]")}
    assert all("vs_one_core" in row and "vs_two_cores" in row for row in rows)
    assert measured_tables.scaling_table(rows) in (ROOT / "docs" / "cluster.md").read_text()


def test_compare_prints_the_view(capsys):
    assert main(["compare", str(REPLICA_RECORDS), "--view", "replica-scaling"]) == 0
    assert capsys.readouterr().out.strip() in (ROOT / "docs" / "cluster.md").read_text()


@pytest.mark.parametrize("view", list(measured_tables.VIEWS))
def test_views_refuse_directories_without_their_records(view, capsys):
    # The replica records hold no paper model, the paper records no 2-replica run.
    other = REPLICA_RECORDS if view == "paper-table" else PAPER_RECORDS
    assert main(["compare", str(other), "--view", view]) == 2
    assert "no throughput records" in capsys.readouterr().err
