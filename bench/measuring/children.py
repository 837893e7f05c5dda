"""An environment's cells, each in its own child process (one Keras backend per process): ``python -m bench
train --env`` and ``python -m bench throughput --env``.

A cell that fails, crashes or is killed is recorded as failed and the others go on; ``resume`` skips cells
that already have a successful record, so an interrupted pass is finished, not restarted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cell import Cell
from bench.records import load_records

DEFAULT_MODELS = ("cifar_cnn", "mnist_cnn")


def completed(out_dir, cell: Cell, kind: str = "train") -> bool:
    """True if the cell already has a successful record of ``kind`` (any run of it) in ``out_dir``."""
    if not Path(out_dir).is_dir():
        return False
    return any(record.get("kind", "train") == kind and record.get("status") == "ok" and Cell.of(record) == cell
               for record in load_records(out_dir)[0])


def run_cells(command: str, cells: list[Cell], *, out_dir, child_args=(), resume=False,
              python=sys.executable) -> int:
    """Run ``python -m bench COMMAND`` (``train`` or ``throughput``) for each cell in its own process, with
    ``child_args`` after the cell's own options; returns the number of cells that failed."""
    failures = 0
    for cell in cells:
        if resume and completed(out_dir, cell, kind=command):
            print(f"[{command}] {cell.file_id}: done already, skipped (--resume)", flush=True)
            continue
        dataset = ["--dataset", cell.dataset] if command == "train" else []  # throughput: synthetic data only
        argv = [python, "-m", "bench", command, "--model", cell.model, "--impl", cell.implementation,
                "--backend", cell.backend, *dataset, "--out", str(out_dir), *child_args]
        print(f"[{command}] {cell.file_id}: running", flush=True)
        code = subprocess.call(argv)
        if code != 0:
            failures += 1
            print(f"[{command}] {cell.file_id}: FAILED (exit code {code}); the others go on", flush=True)
    return failures
