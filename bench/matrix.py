"""The matrix: many cells, each in its own process (one Keras backend per process).

A cell that fails, crashes or is killed is recorded as failed and the matrix goes on; ``resume`` skips
cells that already have a successful record, so an interrupted matrix is finished, not restarted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.records import RecordError, cell_id, read_record

# Which cells each nox environment can run: (implementation, backend).
ENVIRONMENT_CELLS = {
    "torch": [("torch", "torch"), ("keras", "torch")],
    "tensorflow": [("tf_keras", "tensorflow"), ("keras", "tensorflow")],
    "jax": [("keras", "jax")],
}

DEFAULT_MODELS = ("cifar_cnn", "mnist_cnn")


def completed(out_dir, model, implementation, backend, dataset) -> bool:
    """True if the cell already has a successful record in ``out_dir``."""
    path = Path(out_dir) / f"{cell_id(model, implementation, backend, dataset)}.json"
    try:
        return read_record(path).get("status") == "ok"
    except RecordError:
        return False


def run_matrix(*, cells, models, dataset, out_dir, run_args=(), resume=False, python=sys.executable) -> int:
    """Run every (model, cell) in a child ``python -m bench run``; returns the number of failed cells."""
    failures = 0
    for model in models:
        for implementation, backend in cells:
            name = cell_id(model, implementation, backend, dataset)
            if resume and completed(out_dir, model, implementation, backend, dataset):
                print(f"[matrix] {name}: done already, skipped (--resume)", flush=True)
                continue
            command = [python, "-m", "bench", "run", "--model", model, "--impl", implementation,
                       "--backend", backend, "--dataset", dataset, "--out", str(out_dir), *run_args]
            print(f"[matrix] {name}: running", flush=True)
            code = subprocess.call(command)
            if code != 0:
                failures += 1
                print(f"[matrix] {name}: FAILED (exit code {code}); the matrix goes on", flush=True)
    return failures
