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

    resume = _bench("train", "--env", BACKEND, "--models", "cifar_cnn,mnist_cnn", "--out", str(tmp_path), *QUICK,
                    "--resume")
    output, _ = resume.communicate(timeout=600)
    assert resume.returncode == 0, output
    assert output.count("done already, skipped (--resume)") == len(cells)
    records = _records(tmp_path)
    assert len(records) == 2 * len(cells) and all(r["status"] == "ok" for r in records.values())
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in done} == stamps  # untouched


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
