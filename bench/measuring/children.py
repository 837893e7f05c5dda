"""An environment's cells, each in its own child process (one Keras backend per process): ``python -m twinbench
train --env`` and ``python -m twinbench throughput --env``.

A cell that fails, crashes or is killed is recorded as failed and the others go on; ``resume`` skips cells
that already have a successful record, so an interrupted pass is finished, not restarted.

Two launchers start the children (``--launcher``):

- ``local``: one after another on this machine;
- ``submitit``: one submitit job per cell (https://github.com/facebookincubator/submitit): on a Slurm cluster an
  ``sbatch`` job with the cell's resources (``Resources``), run by this environment's Python and writing its record
  into the shared results directory; without Slurm (or with ``--cluster local``) submitit's local executor, which
  runs the jobs here, one after another so their timings do not overlap. ``docs/cluster.md`` has the commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from twinbench.cell import Cell, cell_argv
from twinbench.measuring.environment import LAUNCHER_ENV
from twinbench.records import load_records

DEFAULT_MODELS = ("cifar_cnn", "mnist_cnn")
# The options that say how the cells are started, not what they run: never passed on to a cell.
LAUNCHER_OPTIONS = ("launcher", "cluster", "timeout_min", "cpus_per_cell", "gpus_per_cell", "slurm_partition")


@dataclass(frozen=True)
class Resources:
    """How cells are started, and what one cell's job may use (``--launcher`` and its options)."""

    launcher: str = "local"  # local, submitit
    cluster: str | None = None  # submitit's executor: slurm, local; None: Slurm where sbatch exists
    timeout_min: int = 60
    cpus_per_cell: int | None = None
    gpus_per_cell: int = 0
    slurm_partition: str | None = None


def launcher_of(args) -> Resources:
    """The ``Resources`` of parsed ``--launcher`` options."""
    return Resources(**{name: getattr(args, name) for name in LAUNCHER_OPTIONS})


def completed(out_dir, cell: Cell, kind: str = "train") -> bool:
    """True if the cell already has a successful record of ``kind`` (any run of it) in ``out_dir``."""
    if not Path(out_dir).is_dir():
        return False
    return any(record.get("kind", "train") == kind and record.get("status") == "ok" and Cell.of(record) == cell
               for record in load_records(out_dir)[0])


def run_cell_job(argv: list[str], launcher: str) -> int:
    """One cell as a job: its command line in the environment's Python; returns the exit code (a submitit job's
    result; it runs on the cluster's node, so it is a module-level function that submitit can pickle)."""
    return subprocess.call(argv, env={**os.environ, LAUNCHER_ENV: launcher})


def run_cells(command: str, cells: list[Cell], *, out_dir, child_args=(), resume=False,
              python=sys.executable, launcher: Resources = Resources()) -> int:
    """Run ``python -m twinbench COMMAND`` (``train`` or ``throughput``) for each cell in its own process, with
    ``child_args`` after the cell's own options (``twinbench.cell.cell_argv``: its names and its axes); returns the
    number of cells that failed."""
    failures = 0
    jobs = []
    for cell in cells:
        if resume and completed(out_dir, cell, kind=command):
            print(f"[{command}] {cell.file_id}: done already, skipped (--resume)", flush=True)
            continue
        argv = [python, "-m", "twinbench", command, *cell_argv(cell, command), "--out", str(out_dir), *child_args]
        jobs.append((cell, argv))
    if launcher.launcher == "submitit":
        return _submit(command, jobs, out_dir=out_dir, resources=launcher)
    for cell, argv in jobs:
        print(f"[{command}] {cell.file_id}: running", flush=True)
        code = subprocess.call(argv)
        if code != 0:
            failures += 1
            print(f"[{command}] {cell.file_id}: FAILED (exit code {code}); the others go on", flush=True)
    return failures


def _executor(out_dir, resources: Resources, replicas: int):
    """A submitit executor for one cell's job: its logs under ``OUT/.submitit``; the cell's replicas as tasks' GPUs."""
    import submitit

    executor = submitit.AutoExecutor(folder=Path(out_dir) / ".submitit" / "%j", cluster=resources.cluster)
    parameters = {"timeout_min": resources.timeout_min, "nodes": 1, "tasks_per_node": 1}
    if resources.gpus_per_cell:
        parameters["gpus_per_node"] = resources.gpus_per_cell
    if resources.cpus_per_cell:
        parameters["cpus_per_task"] = resources.cpus_per_cell
    if resources.slurm_partition:
        parameters["slurm_partition"] = resources.slurm_partition
    executor.update_parameters(name=f"twinbench-{replicas}r", **parameters)
    return executor


def _submit(command: str, jobs, *, out_dir, resources: Resources) -> int:
    """One submitit job per cell; Slurm runs them side by side, the local executor one after another."""
    failures = 0
    queued = []
    for cell, argv in jobs:
        executor = _executor(out_dir, resources, cell.replicas)
        job = executor.submit(run_cell_job, argv, "submitit")
        print(f"[{command}] {cell.file_id}: submitted as job {job.job_id} ({executor.cluster})", flush=True)
        if executor.cluster == "slurm":
            queued.append((cell, job))
        else:
            failures += _wait(command, cell, job)
    for cell, job in queued:
        failures += _wait(command, cell, job)
    return failures


def _wait(command: str, cell: Cell, job) -> int:
    """Wait for one job; 1 if its cell failed (a failed record exists where the cell got to write one)."""
    try:
        code = job.result()
    except Exception as err:  # the job itself failed: killed, out of time, node lost
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"[{command}] {cell.file_id}: job {job.job_id} FAILED ({first}); the others go on", flush=True)
        return 1
    if code != 0:
        print(f"[{command}] {cell.file_id}: FAILED (exit code {code}, job {job.job_id}); the others go on", flush=True)
        return 1
    print(f"[{command}] {cell.file_id}: done (job {job.job_id})", flush=True)
    return 0
