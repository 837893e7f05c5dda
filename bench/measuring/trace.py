"""``python -m twinbench trace``: where a training step's time goes, op by op, under the framework's own profiler.

One process, one cell: ``warmup`` steps (the first, compiling one included), then ``steps`` steady-state steps of
the real training path (``Runner.train_steps``, as ``twinbench throughput`` runs it) with the framework's profiler on
(``twinbench.backends.trace``). A ``StepClock`` syncs at the edges of the traced window and starts and stops the profiler
there, outside the window's timestamps. The record (kind ``trace``) holds ``ops``: the neutral table of
``twinbench.ops`` (ms per step of conv/matmul, layout, optimizer, other ops and the remainder).

The profiler slows the steps it traces (every op is recorded), so the wall time per step here is not the
throughput benchmark's: the table says where time goes, ``twinbench throughput`` says how much there is.

This module never imports a framework itself; it goes through ``backends``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twinbench import data as datasets
from twinbench.backends.base import StepClock
from twinbench.backends.modes import DEFAULT_MODE, SINGLE, Mode, Replication
from twinbench.backends.trace import op_tracer
from twinbench.cell import AXES, Cell
from twinbench.measuring.environment import collect_environment
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.models import get_model_spec
from twinbench.ops import op_table
from twinbench.records import new_record, now_iso


@dataclass(frozen=True)
class TraceConfig:
    """Everything that defines one trace run; recorded verbatim."""

    model: str
    implementation: str
    backend: str
    batch_size: int = 64
    steps: int = 10  # traced steady-state steps
    warmup: int = 5  # steps before the traced ones, the first (compiling) step included
    seed: int = 0
    learning_rate: float = 1e-3
    input_shape: tuple[int, ...] | None = None  # default: the model's own
    num_classes: int | None = None
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults
    mode: Mode = DEFAULT_MODE  # compilation, precision, layout
    replication: Replication = SINGLE  # always one replica: a trace is one process
    cpus: str = AXES["cpus"]  # the CPUs the process is pinned to (--cpus; the cell axis); "free": not pinned
    allocator: str = AXES["allocator"]  # the C allocator's settings (twinbench.backends.allocator), applied before the run

    dataset = "synthetic"

    @property
    def cell(self) -> Cell:
        return Cell(self.model, self.implementation, self.backend, self.dataset, **dataclasses.asdict(self.mode),
                    **dataclasses.asdict(self.replication), cpus=self.cpus,
                    allocator=self.allocator)


class _TracedWindow:
    """The clock's ``on_edge``: starts the tracer where the traced window begins, stops it where it ends."""

    def __init__(self, tracer, *, begin: int, end: int):
        self.tracer, self.begin, self.end = tracer, begin, end
        self.ops = None

    def __call__(self, edge: int) -> None:
        if edge == self.begin:
            self.tracer.start()
        elif edge == self.end:
            self.ops = self.tracer.stop()


def execute_trace(config: TraceConfig) -> dict:
    """Run the traced steps and return the record (status ``ok``); exceptions propagate to the caller."""
    if config.warmup < 1 or config.steps < 1:
        raise ValueError("warmup and steps must be at least 1.")
    started = now_iso()
    spec = get_model_spec(config.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    runner, model, dataset, train_config = prepare_synthetic(
        config.model, config.implementation, config.backend, batch_size=config.batch_size, seed=config.seed,
        input_shape=input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate,
        mode=config.mode, replication=config.replication)
    tracer = op_tracer(runner)
    begin, end = config.warmup, config.warmup + config.steps
    window = _TracedWindow(tracer, begin=begin, end=end)
    clock = StepClock([0, 1, begin, end], sync=lambda: runner.sync(model), on_edge=window)
    runner.train_steps(model, dataset, train_config, steps=end, clock=clock)
    wall_s = clock.interval(begin, end)

    record = new_record("trace", config, started=started)
    record.update(
        status="ok",
        finished=now_iso(),
        model={"name": config.model, "params": runner.count_params(model), "input_shape": list(input_shape),
               "num_classes": dataset.num_classes},
        dataset={"name": "synthetic", "train": datasets.tasks.num_samples(dataset.x_train),
                 "batch_size": config.batch_size},
        timing={"first_step_s": clock.interval(0, 1), "warmup_steps": config.warmup, "traced_steps": config.steps,
                "traced_step_s": wall_s / config.steps},
        ops=op_table(window.ops, wall_s=wall_s, steps=config.steps, profiler=tracer.profiler_name, note=tracer.note),
        settings=runner.describe(model),
        environment=collect_environment(),
    )
    return record
