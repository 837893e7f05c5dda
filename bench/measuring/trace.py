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

from dataclasses import dataclass

from twinbench import data as datasets
from twinbench.backends.base import StepClock
from twinbench.backends.trace import op_tracer
from twinbench.cell import CellConfig
from twinbench.measuring.environment import collect_environment
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.models import get_model_spec
from twinbench.ops import op_table
from twinbench.records import new_record, now_iso


@dataclass(frozen=True)
class TraceConfig(CellConfig):
    """Everything that defines one trace run: the cell (its mode, CPUs and allocator; always one replica: a trace is
    one process) and the steps traced; recorded verbatim (``CellConfig.as_dict``)."""

    command = "trace"
    dataset = "synthetic"

    batch_size: int = 64
    steps: int = 10  # traced steady-state steps
    warmup: int = 5  # steps before the traced ones, the first (compiling) step included
    seed: int = 0
    learning_rate: float = 1e-3
    input_shape: tuple[int, ...] | None = None  # default: the model's own
    num_classes: int | None = None
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults


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
    cell = config.cell
    started = now_iso()
    spec = get_model_spec(cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    runner, model, dataset, train_config = prepare_synthetic(
        cell.model, cell.implementation, cell.backend, batch_size=config.batch_size, seed=config.seed,
        input_shape=input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate,
        mode=cell.mode, replication=cell.replication)
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
        model={"name": cell.model, "params": runner.count_params(model), "input_shape": list(input_shape),
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
