"""Faults in a long matrix: one cell out of memory, a killed matrix, resume; nothing measured is lost.

Faults are provoked inside real child processes with ``TWINBENCH_INJECT_FAULT`` (bench/faults.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BACKEND, requires_backend
from twinbench.backends.environments import ENVIRONMENTS
from twinbench.measuring.faults import is_out_of_memory
from twinbench.records import TIMELINE_SUFFIX, read_record

ROOT = Path(__file__).resolve().parent.parent
pytestmark = requires_backend
# The matrix machinery is framework-neutral; its child-process tests run once, in the lightest environment.
matrix_env_only = pytest.mark.skipif(BACKEND != "jax", reason="matrix fault tests run in the jax environment")
# The large tier: a matrix (or a run) in child processes, each starting its framework, some started twice (20-75 s
# each on the busy 2-core machine). Recognising out-of-memory errors and atomic writes stay in the fast tier.
QUICK = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "256"]


def _bench(*argv, env=None, **kwargs):
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "twinbench", *argv], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _records(directory):
    """Run records by file name (the profiler's ``*.timeline.json.gz`` sidecars are not records)."""
    return {p.name: read_record(p) for p in sorted(Path(directory).glob("*.json"))
            if not p.name.endswith(TIMELINE_SUFFIX)}


def test_out_of_memory_errors_of_every_framework_are_recognised():
    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError's name
        pass

    class XlaRuntimeError(RuntimeError):
        pass

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not is_out_of_memory(ValueError("shapes (3,) and (4,) not aligned"))


@matrix_env_only
@pytest.mark.large
def test_out_of_memory_cell_is_recorded_and_the_matrix_goes_on(tmp_path):
    env = {"TWINBENCH_INJECT_FAULT": "oom@cifar_cnn"}
    proc = _bench("train", "--env", BACKEND, "--models", "cifar_cnn,mnist_cnn", "--out", str(tmp_path), *QUICK,
                  env=env)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output  # some cell failed, reported, not a crash
    records = _records(tmp_path)
    cells = ENVIRONMENTS[BACKEND]
    assert len(records) == 2 * len(cells)
    for name, record in records.items():
        if name.startswith("cifar_cnn"):
            assert record["status"] == "failed"
            assert record["error"]["out_of_memory"] is True and record["error"]["batch_size"] == 256
        else:
            assert record["status"] == "ok"
    assert "Traceback" not in output


@matrix_env_only
@pytest.mark.large
def test_out_of_memory_retry_with_smaller_batch_is_marked(tmp_path):
    env = {"TWINBENCH_INJECT_FAULT": "oom-above:64"}
    implementation, backend = ENVIRONMENTS[BACKEND][0]
    proc = _bench("train", "--model", "mnist_cnn", "--impl", implementation, "--backend", backend, "--oom-retry",
                  "--out", str(tmp_path), *QUICK, env=env)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    (record,) = _records(tmp_path).values()
    assert record["status"] == "ok"
    assert record["retried_after_oom"] == {"requested_batch_size": 256, "batch_size": 64}
    assert [a["batch_size"] for a in record["oom_retries"]] == [256, 128]


@matrix_env_only
@pytest.mark.large
def test_killed_matrix_keeps_its_records_and_resume_finishes_it(tmp_path):
    cells = ENVIRONMENTS[BACKEND]
    proc = _bench("train", "--env", BACKEND, "--models", "cifar_cnn,mnist_cnn", "--out", str(tmp_path), *QUICK,
                  env={"TWINBENCH_INJECT_FAULT": "hang@mnist_cnn"}, start_new_session=True)
    deadline = time.monotonic() + 600
    while len(_records(tmp_path)) < len(cells):  # first model done, second hangs
        assert proc.poll() is None and time.monotonic() < deadline, "matrix ended or took too long"
        time.sleep(0.5)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole matrix, child included, mid-run
    proc.communicate()
    done = _records(tmp_path)
    assert len(done) == len(cells) and all(r["status"] == "ok" for r in done.values())
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written file left behind
    stamps = {name: (tmp_path / name).stat().st_mtime_ns for name in done}

    # Resumed as the nox train session runs: the cells left run one after another in one process, and each skipped
    # cell is said once (by the parent, not again by the shared process).
    resume = _bench("train", "--env", BACKEND, "--models", "cifar_cnn,mnist_cnn", "--out", str(tmp_path), *QUICK,
                    "--resume", "--cell-processes", "one")
    output, _ = resume.communicate(timeout=600)
    assert resume.returncode == 0, output
    assert output.count("done already, skipped (--resume)") == len(cells)
    records = _records(tmp_path)
    assert len(records) == 2 * len(cells) and all(r["status"] == "ok" for r in records.values())
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in done} == stamps  # untouched


def test_cells_a_shared_process_did_not_record_run_again_each_in_its_own(tmp_path, monkeypatch, capsys):
    """``--cell-processes one``: the records of the shared process are told by its id; the cells it ended without
    recording (a crash) go to their own processes, and a record of another process does not count."""
    from twinbench.cell import Cell
    from twinbench.measuring import children
    from twinbench.records import SCHEMA, SCHEMA_VERSION, write_record

    cells = [Cell(model, "keras", "jax", "digits") for model in ("cifar_cnn", "mnist_cnn", "mlp")]

    def record(cell, process_id, status):
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "train", "cell": cell.as_dict(),
                "status": status, "shared_process": {"id": process_id}}

    write_record(record(cells[1], "an earlier process", "ok"), tmp_path)  # not this process's: mnist_cnn runs again

    def shared_process_crashing_at_the_second_cell(argv, env):
        assert argv[-2:] == ["--cell-processes", "this"]
        write_record(record(cells[0], env[children.SHARED_PROCESS_ENV], "failed"), tmp_path)
        return -11

    monkeypatch.setattr(children.subprocess, "call", shared_process_crashing_at_the_second_cell)
    rest = []
    failures = children.run_cells_in_one_process("train", cells, out_dir=tmp_path,
                                                 worker_argv=["--cell-processes", "this"],
                                                 run_rest=lambda left: rest.extend(left) or 1)
    assert rest == cells[1:]
    assert failures == 2  # the first cell's failed record, and one of the two run again
    assert "exit code -11" in capsys.readouterr().out


def test_cells_in_this_process_refused_where_they_cannot_share_it(tmp_path):
    from twinbench.cli import build_parser
    from twinbench.cli.options import CliError
    from twinbench.cli.train_command import cmd_train

    args = build_parser().parse_args(["train", "--env", BACKEND, "--launcher", "submitit", "--cell-processes", "this",
                                      "--out", str(tmp_path)])
    with pytest.raises(CliError, match="--launcher submitit starts one job per cell"):
        cmd_train(args)


@matrix_env_only
@pytest.mark.large
def test_cells_in_one_process_each_recorded_and_a_crash_retried_alone(tmp_path):
    proc = _bench("train", "--env", BACKEND, "--models", "cifar_cnn,mnist_cnn", "--out", str(tmp_path), *QUICK,
                  "--cell-processes", "one", env={"TWINBENCH_INJECT_FAULT": "crash@mnist_cnn"})
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    records = list(_records(tmp_path).values())
    cells = ENVIRONMENTS[BACKEND]
    assert len(records) == len(cells)  # the cifar_cnn cells; mnist_cnn crashed in the shared process and alone
    assert all(r["status"] == "ok" and r["cell"]["model"] == "cifar_cnn" for r in records)
    shared = [r["shared_process"] for r in records]
    assert len({s["id"] for s in shared}) == 1 and sorted(s["position"] for s in shared) == list(range(1, len(cells) + 1))
    assert len(shared[0]["cells"]) == 2 * len(cells)
    assert "each of them now in its own process" in output


def test_records_are_written_atomically(tmp_path, monkeypatch):
    from twinbench import records

    path = tmp_path / "cell.json"
    records.write_json_atomic(path, {"a": 1})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # interrupted after writing the temporary file, before it is moved into place

    monkeypatch.setattr(records.os, "fsync", interrupted)
    for payload, target in (({"a": 2}, path), ({"a": 3}, tmp_path / "cell.timeline.json.gz")):
        with pytest.raises(KeyboardInterrupt):
            records.write_json_atomic(target, payload)
    assert json.loads(path.read_text()) == {"a": 1}  # the old record is intact
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file is left
