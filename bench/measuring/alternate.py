"""Cross-environment ratios from many short processes alternated A,B,B,A (``python -m twinbench alternate``).

Why: a ratio between cells of two environments (torch / tf_keras, keras[jax] / keras[tensorflow], ...) cannot be
interleaved inside one process (each environment is its own virtualenv, and Keras picks one backend per process),
and one process differs in speed from the next by 15-30% on a shared VM. So the environments take turns with short
processes, in blocks of one process each, every other block reversed (``twinbench.measuring.interleave.abba_order``:
torch, tensorflow, jax | jax, tensorflow, torch | ...). Two environments' processes of one block ran next to each
other: a slow drift of the machine moves both alike, so their ratio cancels it, and each block gives one
**independent paired sample** of every cross-environment ratio (``twinbench.results.decompose`` pairs them,
``twinbench.stats.paired_ratio_ci`` resamples the pairs). Inside one process an environment's two cells are
interleaved as ``throughput --env`` does by default (``twinbench.measuring.interleave``), so the in-environment ratios
come from paired windows as before, from several processes now.

Each process is ``python -m twinbench throughput`` in its environment's Python, with ``ALTERNATION_ENV`` set to its
slot; the throughput record keeps it as ``record["alternation"]``::

    {"sequence": "<id shared by the sequence>", "slot": 4, "block": 1, "environment": "tensorflow",
     "order": "ABBA", "environments": ["torch", "tensorflow", "jax"]}

Nothing measured is lost: every process writes its own records as it ends (atomically, ``twinbench.records``); a
process that fails is counted and the sequence goes on (its block then has no pair for that environment); a budget
stops the sequence between blocks, before a block that would not fit, so every block run is whole.

This module never imports a framework; the children do.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from twinbench.backends.environments import RUN_ENVIRONMENTS
from twinbench.cell import Cell, cell_argv
from twinbench.measuring.environment import ALTERNATION_ENV
from twinbench.measuring.interleave import ORDER, abba_order
from twinbench.records import new_run_id


@dataclass
class Sequence:
    """What ``run_alternated`` did: its id, the slots it ran (environment, exit code, seconds), the blocks it
    finished, and why it stopped (``blocks`` reached, or the ``budget``)."""

    sequence: str
    environments: list[str]
    slots: list[dict] = field(default_factory=list)
    blocks: int = 0
    stopped: str = "blocks"
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(slot["code"] != 0 for slot in self.slots)


def process_argv(python: str, environment: str, cells: list[Cell], *, out_dir, child_args=()) -> list[str]:
    """The command line of one environment's process: its two cells interleaved in it (``throughput --env``), or
    its one cell alone (keras[jax]: ``throughput --impl``). ``environment`` names the slot: a nox environment, or
    any name where one environment runs in several virtualenvs (the stacks of ``twinbench sweep`` and ``ab``)."""
    if len(cells) == 1:
        names = cell_argv(cells[0], "throughput")
    else:  # the environment's cells share every axis: name the environment and the first cell's axes
        # A slot named after a run environment runs that one (natives holds cells of two backends); a stack's slot
        # runs its cells' own environment.
        env = environment if environment in RUN_ENVIRONMENTS else cells[0].environment
        names = ["--env", env, *_axes_argv(cells[0]), "--interleave"]
    return [python, "-m", "twinbench", "throughput", *names, "--out", str(out_dir), *child_args]


def _axes_argv(cell: Cell) -> list[str]:
    """``cell_argv`` without the implementation and backend (``--env`` names them): ``--model M`` and its axes."""
    argv = cell_argv(cell, "throughput")
    keep, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--impl", "--backend"):
            skip = True
            continue
        keep.append(item)
    return keep


def run_alternated(cells: dict[str, list[Cell]], pythons: dict[str, str], *, out_dir, blocks: int,
                   budget_s: float | None = None, process_timeout_s: float | None = None, child_args=(),
                   env: dict | None = None,
                   call: Callable[..., int] = subprocess.call, clock: Callable[[], float] = time.monotonic,
                   log: Callable[[str], None] = print) -> Sequence:
    """Run ``blocks`` blocks of one process per environment in ABBA order, each writing its records to ``out_dir``.

    Args:
        cells: environment -> its cells (``twinbench.cell.environment_cells``); an environment without cells is left
            out. The names are the slots' (``record["alternation"]["environment"]``): a nox environment, or a stack's
            name where several virtualenvs of one environment take turns (``twinbench.studies.versions``). Interleaved cells run on the ``process="shared"`` axis, a lone cell in its own process.
        pythons: environment -> the Python of its virtualenv (every environment in ``cells`` needs one).
        blocks: the most blocks to run (at least 1).
        budget_s: stop before a block that would end past it (estimated from the longest block so far); the first
            block always runs.
        process_timeout_s: a process still running after this long is ended and counted as failed (a hung
            child must not hold the rest up); ``None``: no limit.
        child_args: options after each process's cell options (``--steps 10 --repeats 6 ...``).
        env: the children's environment (default: this one's); ``KERAS_BACKEND`` is set per environment.
        call, clock, log: ``subprocess.call``, ``time.monotonic`` and ``print`` (tests pass fakes).

    Returns:
        A ``Sequence``; failed processes are counted in it, never raised.
    """
    environments = [name for name, env_cells in cells.items() if env_cells]
    missing = [name for name in environments if name not in pythons]
    if missing:
        raise ValueError(f"no Python given for environment {', '.join(missing)}; "
                         f"give each as --python ENV=PATH. Received: {', '.join(pythons) or 'none'}.")
    if blocks < 1:
        raise ValueError(f"blocks must be at least 1. Received: blocks={blocks}.")
    sequence = Sequence(sequence=new_run_id(), environments=environments)
    started = clock()
    longest = 0.0
    order = abba_order(len(environments), blocks)
    for block in range(blocks):
        if budget_s is not None and block > 0 and clock() - started + longest > budget_s:
            sequence.stopped = "budget"
            break
        block_start = clock()
        for slot in range(block * len(environments), (block + 1) * len(environments)):
            name = environments[order[slot]]
            env_cells = cells[name]
            info = {"sequence": sequence.sequence, "slot": slot, "block": block, "environment": name,
                    "order": ORDER, "environments": environments}
            argv = process_argv(pythons[name], name, env_cells, out_dir=out_dir, child_args=child_args)
            child_env = {**(os.environ if env is None else env), ALTERNATION_ENV: json.dumps(info),
                         "KERAS_BACKEND": env_cells[0].backend}
            log(f"[alternate] block {block + 1}/{blocks}, slot {slot}: {name} "
                f"({', '.join(cell.label for cell in env_cells)})")
            slot_start = clock()
            try:
                code = call(argv, env=child_env, timeout=process_timeout_s)
            except subprocess.TimeoutExpired:  # subprocess.call has ended the child
                code = "timeout"
            sequence.slots.append({"slot": slot, "block": block, "environment": name, "code": code,
                                   "seconds": clock() - slot_start})
            if code != 0:
                why = f"ended after {process_timeout_s:g} s" if code == "timeout" else f"exit code {code}"
                log(f"[alternate] {name}, slot {slot}: FAILED ({why}); the others go on")
        longest = max(longest, clock() - block_start)
        sequence.blocks = block + 1
    sequence.seconds = clock() - started
    return sequence

