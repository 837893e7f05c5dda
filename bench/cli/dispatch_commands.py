"""``twinbench calls`` (what one layer call costs, per layer type) and ``twinbench breakdown`` (a step's Python time,
by cause): where Keras' time goes. Each checks its input, runs in this process, records a failure before it
reports it, and prints its table."""

from __future__ import annotations

import argparse

from twinbench.backends import resolve_backend, select_keras_backend
from twinbench.backends.layer_calls import LAYERS, PASSES, SIZES
from twinbench.cell import Cell
from twinbench.cli.checks import (
    USER_ERRORS,
    check_writable,
    limit_threads,
    resolve_axes,
    validate_cell,
)
from twinbench.cli.options import (
    CliError,
    add_axis_arguments,
    add_cell_arguments,
    add_synthetic_steps_args,
    axis_values,
    positive_float,
    positive_int,
)
from twinbench.cli.run_commands import record_failure, run_here
from twinbench.measuring.breakdown import BreakdownConfig, execute_breakdown
from twinbench.measuring.calls import MODEL, CallsConfig, execute_calls
from twinbench.models import IMPLEMENTATIONS, check_choice
from twinbench.records import RESULTS, write_record
from twinbench.results.breakdown import breakdown_section, calls_section


def _names(choices):
    """An argparse type: comma-separated names, each one of ``choices`` (a one-line error naming them)."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        wrong = [name for name in names if name not in choices]
        if not names or wrong:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(wrong) or repr(text)}. Valid choices: "
                                             f"{', '.join(choices)}.")
        return names
    return parse


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive batch sizes, e.g. 1,8,32, got {text!r}")
    return values


def add_dispatch_parsers(sub) -> None:
    calls = sub.add_parser("calls", help="µs per call of each layer type (forward, forward+backward) at a tiny size "
                                         "and the models' sizes, and the fixed and per-element cost fitted to them")
    calls.add_argument("--impl", required=True, help=f"{', '.join(IMPLEMENTATIONS)}")
    calls.add_argument("--backend", default=None, help="for --impl keras: torch, tensorflow or jax")
    calls.add_argument("--layers", type=_names(tuple(LAYERS)), default=tuple(LAYERS),
                       help=f"comma-separated (default all): {', '.join(LAYERS)}")
    calls.add_argument("--sizes", type=_names(SIZES), default=SIZES, help="tiny, model (default both)")
    calls.add_argument("--batches", type=_batches, default=(1, 8, 32), help="batches of the models' size (the sweep)")
    calls.add_argument("--passes", type=_names(PASSES), default=PASSES, help="forward, backward (default both)")
    calls.add_argument("--compiled", action="store_true",
                       help="also the compiled call where this implementation compiles (jax.jit, tf.function)")
    calls.add_argument("--repeats", type=positive_int, default=7, help="samples per point")
    calls.add_argument("--warmup", type=positive_int, default=3, help="calls before the samples")
    calls.add_argument("--sample-s", type=positive_float, default=0.005, help="a sample lasts at least this long")
    calls.add_argument("--threads", type=positive_int, default=None, help="CPU threads per framework thread pool")
    calls.add_argument("--out", default=RESULTS["calls"], help="directory for the record")
    calls.set_defaults(parser=calls)

    breakdown = sub.add_parser("breakdown", help="steady-state steps of one cell under cProfile: ms per step by "
                                                 "cause (layer-call machinery, op dispatch, ...), calls per step")
    add_cell_arguments(breakdown, model_default="cifar_cnn")
    add_synthetic_steps_args(breakdown, steps=5, steps_help="steps per window", warmup=5)
    breakdown.add_argument("--repeats", type=positive_int, default=6,
                           help="pairs of windows, one unprofiled and one profiled")
    add_axis_arguments(breakdown, "breakdown")
    breakdown.add_argument("--out", default=RESULTS["breakdown"], help="directory for the record")
    breakdown.set_defaults(parser=breakdown)


def cmd_calls(args) -> int:
    """Time one call of each layer in this process; prints the table."""
    try:
        check_choice("implementation", args.impl, IMPLEMENTATIONS)
        backend = resolve_backend(args.impl, args.backend)
        limit_threads(args.threads)
        select_keras_backend(backend)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    check_writable(args.out)
    config = CallsConfig(Cell(MODEL, args.impl, backend, "synthetic"), layers=args.layers, sizes=args.sizes,
                         batches=args.batches, passes=args.passes, compiled=args.compiled, repeats=args.repeats,
                         warmup=args.warmup, sample_s=args.sample_s, threads=args.threads)
    try:
        record = execute_calls(config)
    except Exception as err:  # the run failed: record it
        return record_failure("calls", config, err, out=args.out)
    path = write_record(record, args.out)
    print(calls_section([record]).strip())
    print(f"record {path}")
    return 0


def cmd_breakdown(args) -> int:
    """One cell's steady-state steps under cProfile, in this process; prints the causes."""
    try:
        cell = Cell(args.model, args.impl, resolve_backend(args.impl, args.backend), "synthetic",
                    **axis_values(args, "breakdown"))
        cell.check_values()
        cell.check_applies()
        validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape, cell.mode)
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    cell = resolve_axes(cell)
    check_writable(args.out)
    config = BreakdownConfig(cell, batch_size=args.batch_size, steps=args.steps, repeats=args.repeats,
                             warmup=args.warmup, seed=args.seed, learning_rate=args.lr, input_shape=args.input_shape,
                             num_classes=args.num_classes, threads=args.threads)
    return run_here("breakdown", config, execute_breakdown, out=args.out, threads=args.threads,
                    show=lambda record: [breakdown_section([record]).strip()])
