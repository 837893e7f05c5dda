"""An environment's cells, each in its own child process (one Keras backend per process): ``python -m twinbench
train --env`` and ``python -m twinbench throughput --env``.

A cell that fails, crashes or is killed is recorded as failed and the others go on; ``resume`` skips cells
that already have a successful record, so an interrupted pass is finished, not restarted.

How many processes (``train --env --cell-processes``, local launcher only):

- ``each`` (the default): every cell in its own child process, as above;
- ``one``: the environment's cells one after another in one child process (``run_cells_in_one_process``), which pays
  the framework's import once instead of once per cell. Each cell still gets a fresh model built from its seed, its
  own record and its own failure: a cell that raises is recorded as failed and the next one goes on; a cell that ends
  the process (a crash, a kill) gets no record there, so it and the cells after it run again, each in its own process.
  Every record of such a process says so in ``record["shared_process"]`` (``SHARED_PROCESS_ORDER``)::

      {"id": "<id shared by the process's records>", "pid": 4242, "position": 2, "cells": ["<file id>", ...],
       "order": "one after another"}

  so a later cell's first step (its framework already started by an earlier cell) is never taken for a cold start;
- ``this``: the same in this process (what the ``one`` child runs).

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
from twinbench.records import load_records, new_run_id

DEFAULT_MODELS = ("cifar_cnn", "mnist_cnn")
# The options that say how the cells are started, not what they run: never passed on to a cell.
LAUNCHER_OPTIONS = ("launcher", "cluster", "timeout_min", "cpus_per_cell", "gpus_per_cell", "slurm_partition")
# train --cell-processes: every cell in its own child process; all in one child process, one after another; all here.
CELL_PROCESSES = ("each", "one", "this")
SHARED_PROCESS_ORDER = "one after another"
# Set by run_cells_in_one_process for its child: the id its records' ``shared_process`` carries.
SHARED_PROCESS_ENV = "TWINBENCH_SHARED_PROCESS"


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


def shared_process(cells: list[Cell], position: int) -> dict:
    """``record["shared_process"]`` of the cell at ``position`` (0-based) of ``cells``, which run one after another in
    this process; its id is the one the parent set (``SHARED_PROCESS_ENV``), or a new one."""
    return {"id": os.environ.get(SHARED_PROCESS_ENV) or new_run_id(), "pid": os.getpid(), "position": position + 1,
            "cells": [cell.file_id for cell in cells], "order": SHARED_PROCESS_ORDER}


def run_cells_in_one_process(command: str, cells: list[Cell], *, out_dir, worker_argv: list[str], run_rest,
                             python=sys.executable) -> int:
    """Run ``cells`` one after another in one child process, ``python -m twinbench COMMAND *worker_argv`` (the
    ``--env`` run with ``--cell-processes this``); the cells it did not record (it crashed or was killed during one
    of them) go to ``run_rest(cells)``, which runs each in its own process and returns its failures. Returns the
    number of cells that failed."""
    process_id = new_run_id()
    print(f"[{command}] {', '.join(cell.file_id for cell in cells)}: one after another in one process", flush=True)
    code = subprocess.call([python, "-m", "twinbench", command, *worker_argv],
                           env={**os.environ, SHARED_PROCESS_ENV: process_id})
    recorded = {Cell.of(record): record for record in (load_records(out_dir)[0] if Path(out_dir).is_dir() else [])
                if record.get("kind", "train") == command
                and (record.get("shared_process") or {}).get("id") == process_id}
    failures = sum(record.get("status") != "ok" for record in recorded.values())
    left = [cell for cell in cells if cell not in recorded]
    if left:
        print(f"[{command}] the shared process ended (exit code {code}) without a record of "
              f"{', '.join(cell.file_id for cell in left)}: each of them now in its own process", flush=True)
        failures += run_rest(left)
    elif code not in (0, 1):  # 1: some cell failed, recorded as such
        print(f"[{command}] the shared process ended with exit code {code} after it recorded every cell", flush=True)
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
