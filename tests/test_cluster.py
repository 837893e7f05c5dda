"""The matrix on a cluster: ``--launcher submitit`` runs one submitit job per cell, here with submitit's local executor
(the same jobs Slurm would run, started on this machine), and ``--resume`` skips the cells that have a record.

The launcher is framework-neutral; its test runs once, in the lightest environment (jax: one cell per model).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import BACKEND, ROOT
from twinbench.records import TIMELINE_SUFFIX, read_record

# The large tier: a matrix of submitit jobs, each a process that starts a framework, run twice (--resume).
pytestmark = [pytest.mark.skipif(BACKEND != "jax", reason="the launcher's test runs in the jax environment"),
              pytest.mark.large]
QUICK = ["--dataset", "synthetic", "--synthetic-train", "64", "--synthetic-test", "32", "--epochs", "1",
         "--batch-size", "32", "--threads", "1", "--replicas", "2"]


def _matrix(out, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "twinbench", "train", "--env", BACKEND, "--model", "cifar_cnn",
                           "--out", str(out), *QUICK, "--launcher", "submitit", "--cluster", "local", *extra],
                          env=env, capture_output=True, text=True, timeout=600)


def test_matrix_through_submitit_runs_a_job_per_cell_and_resumes(tmp_path):
    pytest.importorskip("submitit")
    done = _matrix(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cifar_cnn__keras__jax__synthetic__replicas-2: submitted as job" in done.stdout and "(local)" in done.stdout
    records = [read_record(p) for p in tmp_path.glob("*.json") if not p.name.endswith(TIMELINE_SUFFIX)]
    assert [(r["status"], r["launcher"]["matrix"]) for r in records] == [("ok", "submitit")]
    (record,) = records  # a data-parallel cell: the record names its engine, world size and launcher
    assert record["cell"]["replicas"] == 2 and record["launcher"]["world_size"] == 2
    assert record["settings"]["replicas"]["engine"] == "keras.distribution.DataParallel"
    assert list((tmp_path / ".submitit").rglob("*_log.out"))  # submitit's own job logs, beside the records
    again = _matrix(tmp_path, "--resume")
    assert again.returncode == 0 and "done already, skipped (--resume)" in again.stdout
    assert "submitted" not in again.stdout
