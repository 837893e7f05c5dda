"""Training an environment's cells (``python -m bench train --env``), each in its own process (one Keras
backend per process).

A cell that fails, crashes or is killed is recorded as failed and the matrix goes on; ``resume`` skips
cells that already have a successful record, so an interrupted matrix is finished, not restarted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cell import Cell
from bench.records import load_records

DEFAULT_MODELS = ("cifar_cnn", "mnist_cnn")


def completed(out_dir, cell: Cell) -> bool:
    """True if the cell already has a successful training record (any run of it) in ``out_dir``."""
    if not Path(out_dir).is_dir():
        return False
    return any(record.get("kind", "train") == "train" and record.get("status") == "ok" and Cell.of(record) == cell
               for record in load_records(out_dir)[0])


def run_matrix(*, cells: list[Cell], out_dir, run_args=(), resume=False, python=sys.executable) -> int:
    """Run every cell in a child ``python -m bench train``; returns the number of failed cells."""
    failures = 0
    for cell in cells:
        if resume and completed(out_dir, cell):
            print(f"[train] {cell.file_id}: done already, skipped (--resume)", flush=True)
            continue
        command = [python, "-m", "bench", "train", "--model", cell.model, "--impl", cell.implementation,
                   "--backend", cell.backend, "--dataset", cell.dataset, "--out", str(out_dir), *run_args]
        print(f"[train] {cell.file_id}: running", flush=True)
        code = subprocess.call(command)
        if code != 0:
            failures += 1
            print(f"[train] {cell.file_id}: FAILED (exit code {code}); the others go on", flush=True)
    return failures
