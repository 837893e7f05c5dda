"""``python -m twinbench throughput --env torch|tensorflow`` (``--interleave``, the default there): an environment's cells
in one process, window by window.

Why: processes on one machine differ in speed by more than the windows inside one process (a process lands on
other cores, caches and memory; its thread pools start differently), so a ratio between cells measured in separate
processes needs many processes before its CI is narrow. The two cells of an environment that holds two
(``twinbench.backends.environments.ENVIRONMENTS``: torch with keras[torch]; tf_keras with keras[tensorflow], as Keras' own integration
tests run keras and tf_keras in one process) can instead share one process and take turns:

1. Every cell is prepared (one ``Runner`` each, ``twinbench.measuring.throughput.prepare_synthetic``: same seed, same
   synthetic data, same canonical weights) and warmed up (``warmup`` steps, the first, compiling one included).
2. ``repeats`` windows per cell in an ABBA order (A B, B A, A B, ...: ``abba_order``), so a slow drift of the
   machine hits both cells alike. A window is one call of the cell's real training path (``runner.train_steps``: the
   PyTorch loop, or one ``fit`` epoch) of ``steps + 1`` steps, timed by a ``StepClock`` from the end of its first step
   to the end of its last: the first step of each call is outside the window, as starting a loop or a ``fit`` is a
   cost per call, not per step. The shared profiler samples during every window (as in a separate-process record's
   ``steady_step_s``); there are no profiler-off windows (its cost is measured in separate processes).
3. One throughput record per cell (``twinbench.measuring.throughput.throughput_record``), its cell on the
   ``process="shared"`` axis (``twinbench.cell.AXES``) so that it never pools with separate-process records, and
   ``record["interleaved"] = {"with": [the other cells' labels], "process": <id shared by the records of this process>,
   "order": "ABBA", "window_index": [the place of each of its repeats in the process' sequence of windows]}``.
   ``twinbench.results.decompose`` pairs the windows of one process for the ratio's CI.

What two runners in one process share, and how it is kept from mattering:

- Seeds: each ``runner.setup`` seeds the process-wide generators (``keras.utils.set_random_seed`` seeds Python,
  NumPy, TensorFlow and, on the torch backend, torch; ``tf_keras.utils.set_random_seed`` Python, NumPy and
  ``tf.random``; the torch twin ``torch.manual_seed`` and NumPy). Every runner is set up and its model built from the
  same seed before any training, and the weights come from one canonical initialisation, so both start where they
  would alone. Later draws (dropout, shuffles) interleave in the shared generators: the values differ from a run
  alone, the work does not.
- Keras' global configuration: ``keras.config.image_data_format`` and the dtype policy are set only while a model is
  built and restored after (``twinbench.backends.keras_runner.image_data_format``,
  ``twinbench.backends.keras_fit.mixed_policy``); keras 3 and tf_keras keep separate global state
  (``keras.src.backend.common.global_state`` against tf_keras' own backend module), and share
  TensorFlow's runtime: its eager context, its two thread pools and ``tf.config`` (TF32), which both runners set the
  same way from the one mode.
- Thread pools: ``--threads`` is applied once, before any framework is imported (``twinbench.backends.limit_threads``); both
  cells then use the same pools, which is the point: they compete for nothing the other is not using at that time.

**The two native twins in one process** (``--env natives``: the natives environment, ``nox -s natives``, installs
PyTorch, TensorFlow and tf.keras side by side). The torch twin and the tf_keras twin take turns as above, on the
``process="natives"`` axis (``process_axis``), so that torch / tf_keras comes from paired windows of one process as
well as from alternated processes (``twinbench.results.decompose.choose_sources`` picks the sharper of the two).
What changes with two frameworks in one process:

- ``triton`` is kept out of the process (``twinbench.backends.allow_native_frameworks_side_by_side``): its LLVM and
  TensorFlow's crash the process side by side; it serves only ``torch.compile``, refused here anyway.
- Keras 3 is imported once, on the torch backend (``KERAS_BACKEND=torch``): both twins draw their canonical weights
  from the Keras definition with NumPy, which is the same on every backend.
- Thread pools: PyTorch's (intra-op, inter-op) and TensorFlow's (intra-op, inter-op) both exist; ``--threads N``
  caps all four before either framework starts (``twinbench.backends.limit_threads``: ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS``); without it each framework sizes its
  own pools to the CPUs. Only one twin runs at a time, so the other's pools wait. Each record states its own
  framework's pools (``threads.pools``), and the thread census counts every thread of the process.

Refused (one line, ``InterleaveError``): data-parallel replicas (each replica set needs its own processes or
devices), ``--jit on`` in the torch environment (``torch.compile``'s caches and recompile limits are process-wide),
and an environment or mode with fewer than two cells (keras[jax] runs alone in its environment, in its own process).

This module never imports a framework itself; it goes through ``backends``.
"""

from __future__ import annotations

import dataclasses
import time

from twinbench.backends import allow_native_frameworks_side_by_side
from twinbench.backends.base import StepClock
from twinbench.backends.environments import NATIVES
from twinbench.cell import Cell
from twinbench.measuring import contention
from twinbench.measuring.profiler import Profiler
from twinbench.measuring.threads import ThreadCensus, minor_page_faults
from twinbench.measuring.throughput import ThroughputConfig, prepare_synthetic, throughput_record
from twinbench.measuring.timing import host_load
from twinbench.records import new_run_id
from twinbench.records import now_iso as _now_iso

ORDER = "ABBA"
SHARED = "shared"  # the ``process`` axis of an interleaved cell (twinbench.cell.AXES)
# ... and of a native twin interleaved with the other one in the natives environment (both frameworks in one process)
NATIVES_PROCESS = NATIVES


class InterleaveError(ValueError):
    """A run that cannot be interleaved (the message names why, and what to run instead)."""


def abba_order(cells: int, repeats: int) -> list[int]:
    """The cell of each window: blocks of one window per cell, every other block reversed.

    >>> abba_order(2, 3)
    [0, 1, 1, 0, 0, 1]
    >>> abba_order(2, 2)
    [0, 1, 1, 0]
    """
    order = []
    for block in range(repeats):
        cycle = list(range(cells))
        order += cycle if block % 2 == 0 else cycle[::-1]
    return order


def check_interleave(cells: list[Cell]) -> None:
    """Raise ``InterleaveError`` if ``cells`` (one environment's, ``twinbench.cell.environment_cells``) cannot share a
    process."""
    if len(cells) < 2:
        what = ", ".join(cell.label for cell in cells) or "no cell"
        raise InterleaveError(f"--interleave needs two cells in one environment; this one runs {what} in this mode: "
                              "run it with --no-interleave.")
    first = cells[0]
    if first.replicas > 1:
        raise InterleaveError(f"--interleave runs one process on one device; --replicas {first.replicas} needs its own "
                              "processes: run it with --no-interleave.")
    if first.backend == "torch" and first.jit == "on":
        raise InterleaveError("--interleave cannot run --jit on in the torch environment: torch.compile's caches and "
                              "recompile limits are process-wide: run it with --no-interleave.")


def process_axis(cells: list[Cell]) -> str:
    """The ``process`` axis of cells interleaved together: ``shared`` (one environment's two cells, one framework) or
    ``natives`` (the two native twins, two frameworks: the natives environment)."""
    return NATIVES_PROCESS if len({cell.backend for cell in cells}) > 1 else SHARED


def interleaved_configs(config: ThroughputConfig, cells: list[Cell]) -> list[ThroughputConfig]:
    """One ``ThroughputConfig`` per cell: ``config``'s settings, the cell on the shared-process axis
    (``process_axis``), and no profiler-off windows and no compute windows (``twinbench.measuring.throughput``: they
    run whole windows only)."""
    process = process_axis(cells)
    return [dataclasses.replace(config, cell=dataclasses.replace(cell, process=process), overhead_repeats=0,
                                compute_repeats=0) for cell in cells]


def execute_interleaved(configs: list[ThroughputConfig]) -> list[dict]:
    """Run the cells of ``configs`` (``interleaved_configs``) in this process, window by window in an ABBA order,
    and return one record per cell (status ``ok``); exceptions propagate to the caller."""
    check_interleave([config.cell for config in configs])
    first = configs[0]
    if first.warmup < 1 or first.steps < 1 or first.repeats < 1:
        raise ValueError("warmup, steps and repeats must be at least 1.")
    frameworks = len({config.cell.backend for config in configs})
    side_by_side = allow_native_frameworks_side_by_side() if frameworks > 1 else []
    started = _now_iso()
    load_before = host_load()
    process = new_run_id()
    census = ThreadCensus().start()
    prepared = []
    for config in configs:
        cell = config.cell
        runner, model, dataset, train_config = prepare_synthetic(
            cell.model, cell.implementation, cell.backend, batch_size=config.batch_size, seed=config.seed,
            input_shape=config.input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate,
            synthetic_train=config.synthetic_train, mode=cell.mode, replication=cell.replication)
        prepared.append((runner, model, dataset, train_config))

    warm = []  # (first_step_s, warmup_s) per cell
    for config, (runner, model, dataset, train_config) in zip(configs, prepared, strict=True):
        edges = sorted({0, 1, config.warmup})
        clock = StepClock(edges, sync=lambda r=runner, m=model: r.sync(m))
        runner.train_steps(model, dataset, train_config, steps=config.warmup, clock=clock, feed=config.cell.feed)
        first_step_s = clock.interval(0, 1)
        warm.append((first_step_s, clock.interval(0, config.warmup) if config.warmup > 1 else first_step_s))

    repeats = [[] for _ in configs]
    profilers = [[] for _ in configs]
    for index, which in enumerate(abba_order(len(configs), first.repeats)):
        config = configs[which]
        runner, model, dataset, train_config = prepared[which]
        window = _Window(steps=config.steps, interval_s=config.profile_interval_s, name=f"repeat-{len(repeats[which])}")
        clock = StepClock([0, 1, 1 + config.steps], sync=lambda r=runner, m=model: r.sync(m), on_edge=window)
        runner.train_steps(model, dataset, train_config, steps=1 + config.steps, clock=clock, feed=config.cell.feed)
        seconds = clock.interval(1, 1 + config.steps)
        repeats[which].append({"repeat": len(repeats[which]), "profiler": True, "steps": config.steps,
                               "seconds": seconds, "step_s": seconds / config.steps,
                               "images_per_s": config.steps * config.batch_size / seconds,
                               "page_faults_per_step": window.page_faults_per_step, "window_index": index,
                               "contention": window.contention})
        profilers[which].append(window.entry)

    records = []
    for which, (config, (runner, model, dataset, _)) in enumerate(zip(configs, prepared, strict=True)):
        record = throughput_record(config, runner=runner, model=model, dataset=dataset, started=started,
                                   load_before=load_before, first_step_s=warm[which][0], warmup_s=warm[which][1],
                                   repeats=repeats[which], profilers=profilers[which], census=census)
        record["interleaved"] = {"with": [other.cell.label for other in configs if other is not config],
                                 "label": config.cell.label,
                                 "process": process, "order": ORDER,
                                 "window_index": [r["window_index"] for r in repeats[which]]}
        if side_by_side:  # two frameworks in one process: what was done so that they can share it
            record["interleaved"]["side_by_side"] = side_by_side
        records.append(record)
    finished = _now_iso()
    for record in records:  # one process: every record spans all of it
        record["finished"] = finished
        if side_by_side:  # both frameworks' pools are the process's: each record states them all
            record["interleaved"]["pools"] = {other["interleaved"]["label"]: (other.get("threads") or {}).get("pools")
                                              for other in records}
    for record in records:
        record["interleaved"].pop("label", None)
    return records


class _Window:
    """The clock's ``on_edge`` for one window: a profiler from the end of its first step to the end of its last."""

    def __init__(self, *, steps: int, interval_s: float, name: str):
        self.last = 1 + steps
        self.interval_s = interval_s
        self.name = name
        self.steps = steps
        self.entry = None  # (name, profiler, start time) once started
        self._profiler = None
        self._faults: dict[int, int | None] = {}  # edge -> the process's minor page faults so far
        self._counts: dict[int, contention.Snapshot | None] = {}  # edge -> the kernel's counters

    @property
    def page_faults_per_step(self) -> float | None:
        start, end = self._faults.get(1), self._faults.get(self.last)
        return None if start is None or end is None else (end - start) / self.steps

    @property
    def contention(self) -> dict | None:
        """How busy the machine was during the window (``twinbench.measuring.contention.window``)."""
        return contention.window(self._counts.get(1), self._counts.get(self.last))

    def __call__(self, edge: int) -> None:
        self._counts[edge] = contention.snapshot()
        self._faults[edge] = minor_page_faults()
        if edge == 1:
            self._profiler = Profiler(interval_s=self.interval_s, enabled=True)
            self.entry = (self.name, self._profiler, time.perf_counter())
            self._profiler.start()
            self._profiler.mark("window_begin", window=self.name, edge=edge)
        elif edge == self.last and self._profiler is not None:
            self._profiler.stop()
            self._profiler = None
