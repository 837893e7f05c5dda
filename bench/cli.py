"""``python -m bench``: list models and cells, train cells, benchmark their throughput, compare the results.

Errors a user can cause (a mistyped name, a bad number, a missing dataset) end in one line on stderr,
``twinbench: error: ...``, naming the valid choices, and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bench.cell import (
    ENVIRONMENTS,
    Cell,
    add_cell_arguments,
    add_env_argument,
    environment_cells,
    implementation_label,
)
from bench.faults import is_out_of_memory
from bench.matrix import DEFAULT_MODELS
from bench.records import RESULTS

EXIT_USAGE = 2  # bad input
EXIT_FAILED = 1  # the run itself failed (recorded as a failed cell)


class CliError(Exception):
    """A user error; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that names the valid choices."""

    def error(self, message):
        raise CliError(message)


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def input_shape(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be HxWxC, e.g. 32x32x3, got {text!r}")
    return parts


def _add_training_args(parser):
    parser.add_argument("--dataset", default="digits", help="digits (default), synthetic, cifar10, mnist")
    parser.add_argument("--epochs", type=non_negative_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--data-dir", default=None, help="directory with the dataset files (or TWINBENCH_DATA_DIR)")
    parser.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    parser.add_argument("--num-classes", type=positive_int, default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list the registered models")

    cells = sub.add_parser("cells", help="list the cells each environment runs: ENVIRONMENT IMPLEMENTATION BACKEND "
                                         "LABEL, one a line")
    cells.add_argument("--env", action="append", choices=list(ENVIRONMENTS),
                       help="only this environment's cells (repeatable; default: all)")
    cells.add_argument("--model", default=None, help="only the cells this model has a builder for")

    # `run` (one cell) and `matrix` (an environment's cells) are the names of twinbench 0.x: kept for one release.
    train = sub.add_parser("train", aliases=["run", "matrix"],
                           help="train one cell (--impl) or an environment's cells (--env), each in its own process")
    which = train.add_mutually_exclusive_group(required=True)
    add_cell_arguments(train, impl_group=which, model_default="")
    add_env_argument(which)
    train.add_argument("--models", default=",".join(DEFAULT_MODELS), help="with --env: comma-separated model names")
    train.add_argument("--out", default=RESULTS["train"], help="directory for the records")
    train.add_argument("--resume", action="store_true",
                       help="with --env: skip cells that already have a successful record")
    train.add_argument("--progress", action="store_true", help="per-epoch progress bars")
    train.add_argument("--oom-retry", action="store_true",
                       help="on out-of-memory, retry with half the batch size (marked in the record)")
    _add_training_args(train)
    _add_measurement_args(train)
    train.add_argument("--timing-window", type=non_negative_int, default=10,
                       help="steps per steady-state timing window, synchronised at its edges only (0: none)")
    train.add_argument("--synthetic-train", type=positive_int, default=None, help="samples of --dataset synthetic")
    train.add_argument("--synthetic-test", type=positive_int, default=None)
    _add_weights_arg(train)
    train.set_defaults(parser=train)

    convert = sub.add_parser("convert-weights", help="torchvision checkpoint (.pth) -> neutral .npz (torch env)")
    convert.add_argument("checkpoint", help="a torchvision state_dict saved with torch.save")
    convert.add_argument("out", help="the .npz to write; --weights takes it in every environment")
    convert.add_argument("--model", required=True)

    compare = sub.add_parser("compare", help="print the comparison tables of results directories")
    compare.add_argument("results", nargs="*", default=[RESULTS["train"]],
                         help="directories of records; several runs of one cell are pooled")

    _add_bench_parser(sub)
    _add_profiler_cost_parser(sub)

    effect = sub.add_parser("definition-effect",
                            help="stock keras.applications vs matched Keras vs native twin: run an environment's "
                                 "cells (--env), or print the table of --out")
    add_env_argument(effect, default=None)
    effect.add_argument("--families", default="resnet50,vgg19,mobilenet_v2", help="comma-separated")
    effect.add_argument("--out", default=RESULTS["definition_effect"],
                        help="directory of the records; the table pools it and its subdirectories (e.g. rounds)")
    effect.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    effect.add_argument("--input-shape", type=input_shape, default=(32, 32, 3), help="HxWxC (default 32x32x3)")
    effect.add_argument("--batch-size", type=positive_int, default=16)
    effect.add_argument("--steps", type=positive_int, default=5, help="steps per timed window")
    effect.add_argument("--warmup", type=positive_int, default=3)
    effect.add_argument("--repeats", type=positive_int, default=6, help="timed windows per cell")
    effect.add_argument("--threads", type=positive_int, default=None)
    effect.set_defaults(parser=effect)

    report = sub.add_parser("report", help="write report.md and its figures for results directories (works on a "
                                           "partial matrix; several runs of one cell are pooled)")
    report.add_argument("results", nargs="*", default=[RESULTS["train"]], help="directories of records")
    report.add_argument("--out", default=None,
                        help="where report.md and figures/ go (default: the directory, or the one that holds them all)")
    report.add_argument("--no-figures", action="store_true", help="the Markdown report only")

    show = sub.add_parser("show", help="print a model's teaching page: three styles, layer table, twin check")
    show.add_argument("model")
    show.add_argument("--offline", action="store_true",
                      help="use only the committed data (docs/models/_data), compute nothing in this environment")

    docs = sub.add_parser("docs", help="regenerate docs/models/ (pages and index) from the source and the data")
    docs.add_argument("--collect", action="store_true",
                      help="instead, compute this environment's layer tables and twin checks into docs/models/_data")
    docs.add_argument("--models", default=None, help="comma-separated model names (default: all registered)")
    return parser


def _add_weights_arg(parser):
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="start from these weights, not the random initial ones: a torchvision checkpoint "
                             "(.pth, torch environment) or a neutral .npz (any; see convert-weights). With "
                             "another --num-classes than the checkpoint's, the classifier starts anew")


def _add_measurement_args(parser):
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads per framework thread pool (default: each framework's own choice)")
    parser.add_argument("--no-profiler", dest="profile", action="store_false",
                        help="no profiler sampling thread (windows and markers are still recorded)")
    parser.add_argument("--profile-interval", type=positive_float, default=0.15, help="seconds between samples")


def _add_bench_parser(sub):
    # `bench` is the name of twinbench 0.x: kept for one release.
    bench = sub.add_parser("throughput", aliases=["bench"],
                           help="throughput benchmark on synthetic data: one cell, or an environment's cells")
    which = bench.add_mutually_exclusive_group(required=True)
    add_cell_arguments(bench, impl_group=which, model_default="cifar_cnn")
    add_env_argument(which)
    bench.add_argument("--batch-size", type=positive_int, default=64)
    bench.add_argument("--steps", type=positive_int, default=50, help="steps per timed window (one per repeat)")
    bench.add_argument("--warmup", type=positive_int, default=10, help="steps before timing, the first included")
    bench.add_argument("--repeats", type=positive_int, default=10, help="timed windows with the profiler on")
    bench.add_argument("--overhead-repeats", type=non_negative_int, default=None,
                       help="extra windows with the profiler off, to measure its cost (default: --repeats)")
    bench.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    bench.add_argument("--num-classes", type=positive_int, default=None)
    bench.add_argument("--seed", type=non_negative_int, default=0)
    bench.add_argument("--lr", type=positive_float, default=1e-3)
    bench.add_argument("--threads", type=positive_int, default=None,
                       help="CPU threads per framework thread pool (default: each framework's own choice)")
    bench.add_argument("--profile-interval", type=positive_float, default=0.15, help="seconds between samples")
    bench.add_argument("--out", default=RESULTS["throughput"], help="directory for the records")
    bench.set_defaults(parser=bench)


def child_args(args, *, leave_out=()) -> list[str]:
    """The options of ``args`` as a command line for a child process that runs one of the command's cells.

    Read from the command's own parser (``args.parser``), so an option added there reaches the children.
    """
    argv = []
    for action in args.parser._actions:
        if not action.option_strings or action.dest in (*leave_out, "help"):
            continue
        value, flag = getattr(args, action.dest), max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            argv += [flag] if value != action.default else []
        elif value is not None:
            argv += [flag, _option_text(value)]
    return argv


def _option_text(value) -> str:
    """An option's value as it is typed: ``32x32x3`` for a shape, ``0.15,0.015`` for intervals."""
    if isinstance(value, tuple):
        return ("x" if all(isinstance(v, int) for v in value) else ",").join(map(str, value))
    return str(value)


def interval_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive seconds, e.g. 0.15,0.015, got {text!r}")
    return values


def _add_profiler_cost_parser(sub):
    from bench.profiler_cost import DEFAULT_INTERVALS_S

    cost = sub.add_parser("profiler-cost",
                          help="the shared profiler's own cost: bracketed on/off windows at several sampling "
                               "intervals (one cell in this process), or print the results of directories")
    which = cost.add_mutually_exclusive_group(required=True)
    add_cell_arguments(cost, impl_group=which, model_default="cifar_cnn")
    which.add_argument("--show", nargs="+", metavar="DIR", help="print the profiler-cost records in these directories")
    cost.add_argument("--batch-size", type=positive_int, default=64)
    cost.add_argument("--steps", type=positive_int, default=10, help="steps per window")
    cost.add_argument("--cycles", type=positive_int, default=20,
                      help="cycles of one sampled window per interval, each between two unsampled ones")
    cost.add_argument("--intervals", type=interval_list, default=DEFAULT_INTERVALS_S,
                      help="sampling intervals in seconds, comma-separated (default: "
                           f"{','.join(map(str, DEFAULT_INTERVALS_S))}); the first is the production one")
    cost.add_argument("--warmup", type=positive_int, default=10)
    cost.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    cost.add_argument("--num-classes", type=positive_int, default=None)
    cost.add_argument("--seed", type=non_negative_int, default=0)
    cost.add_argument("--threads", type=positive_int, default=None,
                      help="CPU threads per framework thread pool (default: each framework's own choice)")
    cost.add_argument("--out", default=RESULTS["profiler_cost"], help="directory for the record")


def cmd_profiler_cost(args) -> int:
    from pathlib import Path

    from bench.profiler_cost import CostConfig, cost_text, execute_cost
    from bench.records import failed_record, load_records, write_record

    if args.show:
        for directory in args.show:
            if not Path(directory).is_dir():
                raise CliError(f"results directory {directory!r} does not exist")
        records = [r for r in load_records(*args.show)[0] if r.get("kind") == "profiler_cost"]
        if not records:
            raise CliError(f"no profiler-cost records in {', '.join(map(repr, args.show))}; "
                           "write them with python -m bench profiler-cost --impl ...")
        print(profiler_cost_section(records))
        return 0
    try:
        backend = _validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    config = CostConfig(model=args.model, implementation=args.impl, backend=backend, batch_size=args.batch_size,
                        steps=args.steps, cycles=args.cycles, intervals_s=args.intervals,
                        production_interval_s=args.intervals[0], warmup=args.warmup, seed=args.seed,
                        input_shape=args.input_shape, num_classes=args.num_classes, threads=args.threads)
    try:
        _limit_threads(args.threads)
        record = execute_cost(config)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: record it, in one line on the terminal
        record = failed_record("profiler_cost", config, err)
        path = write_record(record, args.out)
        print(f"twinbench: run failed: {type(err).__name__}: {record['error']['message']} (recorded in {path})",
              file=sys.stderr)
        return EXIT_FAILED
    path = write_record(record, args.out)
    print("\n".join(cost_text(record_label(record), record["analysis"])))
    print(f"record {path}")
    return 0


def profiler_cost_section(records) -> str:
    """The profiler-cost records in words, each analysis recomputed from the record's windows."""
    from bench.profiler_cost import cost_text, pooled_text, reanalyse

    lines = []
    for record in records:
        if record.get("status") != "ok":
            lines.append(f"profiler cost, {record_label(record)}: failed ({record['error']['message']})")
        else:
            lines += cost_text(record_label(record), reanalyse(record))
    label = lambda cell: record_label({"cell": cell})  # noqa: E731
    return "\n".join(lines + pooled_text([r for r in records if r.get("status") == "ok"], label=label))


def record_label(record) -> str:
    cell = Cell.of(record)
    return f"{cell.model} {cell.label}"


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {"list": cmd_list, "cells": cmd_cells, "train": cmd_train, "run": cmd_train, "matrix": cmd_train,
                    "compare": cmd_compare, "report": cmd_report, "show": cmd_show, "docs": cmd_docs,
                    "throughput": cmd_throughput, "bench": cmd_throughput,
                    "convert-weights": cmd_convert_weights, "definition-effect": cmd_definition_effect,
                    "profiler-cost": cmd_profiler_cost}
        return commands[args.command](args)
    except CliError as err:
        print(f"twinbench: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("twinbench: interrupted; records already written are intact", file=sys.stderr)
        return 130


def _user_errors():
    """Exception types that mean 'bad input', reported as one line."""
    from backends import BackendError
    from backends.checkpoints import CheckpointError
    from models import UnknownChoiceError
    from models.weights import WeightMismatchError

    errors = [UnknownChoiceError, BackendError, WeightMismatchError, CheckpointError]
    try:
        from data import DatasetError

        errors.append(DatasetError)
    except ImportError:
        pass
    return tuple(errors)


def cmd_list(args) -> int:
    from models import get_model_spec, list_models

    for name in list_models():
        spec = get_model_spec(name)
        print(f"{name:24s} {', '.join(spec.builders):24s} {spec.summary}")
    return 0


def cmd_cells(args) -> int:
    """The cells of each environment, for scripts: ``ENVIRONMENT IMPLEMENTATION BACKEND LABEL`` a line."""
    try:
        for env in (env for env in ENVIRONMENTS if not args.env or env in args.env):
            pairs = ([cell.pair for cell in environment_cells(env, args.model)] if args.model
                     else ENVIRONMENTS[env])
            for implementation, backend in pairs:
                print(env, implementation, backend, implementation_label(implementation, backend))
    except _user_errors() as err:
        raise CliError(str(err)) from None
    return 0


def _validate_cell(model, implementation, backend, dataset, input_shape_=None):
    """Check names, numbers and the environment before any framework is imported; returns the backend."""
    import os

    import data
    from backends import BackendError, missing_packages, resolve_backend
    from models import check_choice, check_input_shape, get_model_spec

    spec = get_model_spec(model)
    spec.check_implementation(implementation)
    backend = resolve_backend(implementation, backend)
    check_choice("dataset", dataset, data.DATASETS)
    check_input_shape(spec, input_shape_ if input_shape_ is not None else spec.input_shape)
    env_backend = os.environ.get("KERAS_BACKEND")
    if env_backend and env_backend != backend:
        raise BackendError(
            f"KERAS_BACKEND={env_backend} in the environment disagrees with backend {backend!r} "
            f"({implementation} runs on {backend}): unset KERAS_BACKEND or make them agree."
        )
    missing = missing_packages(backend)
    if missing:
        raise BackendError(
            f"The {backend} backend needs the package(s) {', '.join(missing)}, which this environment lacks: "
            f"pip install -e '.[{backend}]', or use its nox environment (nox -s 'train({backend})')."
        )
    return backend


def _validate_weights(path, model, backend) -> None:
    """A ``--weights`` file that exists, has a known format and can be read in this environment."""
    if path is None:
        return
    from pathlib import Path

    from backends.checkpoints import CheckpointError, checkpoint_format

    kind = checkpoint_format(path)
    if not Path(path).is_file():
        raise CheckpointError(f"Checkpoint {path!r} does not exist.")
    if kind == "torch" and backend != "torch":
        raise CheckpointError(
            f"A torchvision checkpoint is read with PyTorch (torch environment); for the {backend} backend "
            f"convert it there first: python -m bench convert-weights {path} OUT.npz --model {model}"
        )


def check_writable(directory) -> None:
    """Fail before any work is done if results cannot be written to ``directory``."""
    import tempfile
    from pathlib import Path

    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise CliError(f"results directory {str(directory)!r} is not writable ({err.strerror or err})") from None


def cmd_train(args) -> int:
    """One cell in this process (``--impl``), or an environment's cells each in its own (``--env``)."""
    if args.env is not None:
        return _train_env(args)
    if not args.model:
        raise CliError("the following arguments are required with --impl: --model")
    return _train_cell(args)


def _train_cell(args) -> int:
    from bench.records import failed_record, write_record
    from bench.run import RunConfig, execute

    # 1. Bad input: checked before any framework is imported; one line, exit code 2.
    try:
        backend = _validate_cell(args.model, args.impl, args.backend, args.dataset, args.input_shape)
        _validate_weights(args.weights, args.model, backend)
    except (*_user_errors(), ValueError) as err:
        raise CliError(str(err)) from None
    check_writable(args.out)
    config = RunConfig(model=args.model, implementation=args.impl, backend=backend, dataset=args.dataset,
                       epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                       data_dir=args.data_dir, input_shape=args.input_shape, num_classes=args.num_classes,
                       progress=args.progress, timing_window=args.timing_window, profile=args.profile,
                       profile_interval_s=args.profile_interval, threads=args.threads,
                       synthetic_train=args.synthetic_train, synthetic_test=args.synthetic_test,
                       weights=args.weights)
    _limit_threads(args.threads)
    # 2. The run: problems with the user's files are still bad input; anything else is a failed cell,
    #    recorded with its reason so that the matrix shows it. Out of memory may retry at half the batch.
    oom_attempts = []
    while True:
        try:
            record = execute(config)
            break
        except _user_errors() as err:
            raise CliError(str(err)) from None
        except Exception as err:
            out_of_memory = is_out_of_memory(err)
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if out_of_memory and args.oom_retry and config.batch_size > 1:
                oom_attempts.append({"batch_size": config.batch_size, "error": message})
                print(f"twinbench: out of memory at batch size {config.batch_size}; retrying with "
                      f"{config.batch_size // 2}", file=sys.stderr)
                config = dataclasses.replace(config, batch_size=config.batch_size // 2)
                _free_memory()
                continue
            record = failed_record("train", config, err, out_of_memory=out_of_memory, batch_size=config.batch_size)
            if oom_attempts:
                record["oom_retries"] = oom_attempts
            path = write_record(record, args.out)
            kind = "out of memory" if out_of_memory else "run failed"
            print(f"twinbench: {kind}: {type(err).__name__}: {message} at batch size {config.batch_size} "
                  f"(recorded in {path})", file=sys.stderr)
            return EXIT_FAILED
    if oom_attempts:  # clearly marked: this cell did not run at the requested batch size
        record["oom_retries"] = oom_attempts
        record["retried_after_oom"] = {"requested_batch_size": oom_attempts[0]["batch_size"],
                                       "batch_size": config.batch_size}
    path = write_record(record, args.out)
    results = record["results"]
    print(f"{config.cell.file_id}: params {record['model']['params']:,}, accuracy {results['accuracy_before']:.3f} -> "
          f"{results['accuracy_after']:.3f}, final loss {results['final_loss']}, record {path}")
    step = record["timing"]["steady_step_s"]
    if step:
        print(f"{config.cell.file_id}: steady-state step {1e3 * step['median']:.2f} ms (IQR {1e3 * step['q1']:.2f}-"
              f"{1e3 * step['q3']:.2f}, {step['n']} windows), first step {1e3 * record['timing']['first_step_s']:.0f} ms")
    return 0


def _free_memory():
    """Give memory back between out-of-memory retries (framework caches included)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train_env(args) -> int:
    from bench.matrix import run_matrix

    try:
        models = [args.model] if args.model else [m for m in args.models.split(",") if m]
        cells = {model: environment_cells(args.env, model, dataset=args.dataset) for model in models}
        for model in models:
            for cell in cells[model]:
                _validate_cell(model, cell.implementation, cell.backend, args.dataset, args.input_shape)
                _validate_weights(args.weights, model, cell.backend)
        check_writable(args.out)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    run_args = child_args(args, leave_out=("env", "models", "model", "impl", "backend", "dataset", "out", "resume"))
    failures = 0
    for model in models:
        if not cells[model]:
            print(f"[train] {model}: no implementation in the {args.env} environment, skipped", flush=True)
            continue
        failures += run_matrix(cells=cells[model], out_dir=args.out, run_args=run_args, resume=args.resume)
    return EXIT_FAILED if failures else 0


def cmd_compare(args) -> int:
    from pathlib import Path

    from bench.records import load_records
    from bench.table import agreement_summary, results_table

    directories = [args.results] if isinstance(args.results, str) else args.results
    for directory in directories:
        if not Path(directory).is_dir():
            raise CliError(f"results directory {directory!r} does not exist; run the matrix first (nox -s compare)")
    records, skipped = load_records(*directories)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not records:
        raise CliError(f"no twinbench records in {', '.join(map(repr, directories))}")
    trained = [r for r in records if r.get("kind", "train") == "train"]
    if trained:
        print(results_table(trained))
        print()
        for line in agreement_summary(trained):
            print(line)
    throughput = [r for r in records if r.get("kind") == "throughput"]
    if throughput:
        print(throughput_section(throughput))
    if trained:
        print(training_timing_section(trained))
    costs = [r for r in records if r.get("kind") == "profiler_cost"]
    if costs:
        print("\nThe profiler's own cost (bench profiler-cost):")
        print(profiler_cost_section(costs))
    return 0


def throughput_section(records) -> str:
    """``compare``'s text for throughput records: the table, the decomposition, the profiler's cost."""
    from bench.decompose import decomposition, decomposition_table, throughput_rows
    from bench.table import throughput_table

    lines = ["Throughput (bench throughput): seconds per step over repeats of N steps, synchronised at the edges only",
             throughput_table(records), "", "Overhead decomposition (time ratios, 95% bootstrap CI):",
             decomposition_table(decomposition(records)), ""]
    for row in throughput_rows(records):
        overhead = row["profiler_overhead"]
        if overhead:
            busy = row["sampler_busy_fraction"]
            busy_text = "" if busy is None else (f" The sampler thread was busy {100 * busy:.2f}% of the time "
                                                 "(its own CPU time: an upper bound on what it takes from training).")
            lines.append(f"profiler cost, {row['label']} (batch {row['batch_size']}): {_overhead_text(overhead)}."
                         f"{busy_text}")
    return "\n".join(lines)


def _overhead_text(overhead: dict) -> str:
    """The profiler's cost in words: both estimates and whether it is shown to be under the limit."""
    limit = f"{overhead['limit_pct']:.0f}%"
    text = (f"unpaired {overhead['overhead_pct']:+.2f}% of step time (95% CI {overhead['ci_pct'][0]:+.2f}% to "
            f"{overhead['ci_pct'][1]:+.2f}%, {overhead['n_a']} windows on / {overhead['n_b']} off)")
    paired = overhead.get("paired")
    if paired:
        text += (f"; paired {paired['overhead_pct']:+.2f}% (95% CI {paired['ci_pct'][0]:+.2f}% to "
                 f"{paired['ci_pct'][1]:+.2f}%, {paired['n']} adjacent pairs)")
    if overhead["shown_under_limit"]:
        verdict = f"under {limit}: the whole CI is below it"
    elif overhead["under_limit"]:
        verdict = f"median under {limit}, but the CI reaches above it: not shown to be under"
    else:
        verdict = f"median NOT under {limit}"
    return f"{text}: {verdict} ({overhead['decided_by']} estimate)"


def training_timing_section(records) -> str:
    """``compare``'s timing text for training records: per-cell figures and the decomposition by epoch time."""
    from bench.decompose import decomposition, decomposition_table
    from bench.table import timing_table

    table = timing_table(records)
    if not table:
        return ""
    return "\n".join(["", "Timing (bench train): median [IQR] over epochs after the first / over windows", table, "",
                      "Overhead decomposition by epoch time (95% bootstrap CI):",
                      decomposition_table(decomposition(records))])


def _limit_threads(threads):
    """``--threads``: cap the frameworks' thread pools before any of them is imported."""
    if threads is not None:
        from backends import limit_threads

        limit_threads(threads)


def cmd_throughput(args) -> int:
    from bench.throughput import ThroughputConfig, execute_throughput, run_env_cells
    from models import get_model_spec

    try:
        if args.env is not None:
            cells = environment_cells(args.env, args.model, dataset="synthetic")
            if not cells:
                raise CliError(f"Model {args.model!r} has no implementation in the {args.env} environment "
                               f"(it has: {', '.join(get_model_spec(args.model).builders)}).")
            for cell in cells:
                _validate_cell(args.model, cell.implementation, cell.backend, "synthetic", args.input_shape)
        else:
            backend = _validate_cell(args.model, args.impl, args.backend, "synthetic", args.input_shape)
    except _user_errors() as err:
        raise CliError(str(err)) from None

    if args.env is not None:
        bench_args = child_args(args, leave_out=("env", "model", "impl", "backend", "out"))
        failures = run_env_cells(cells=cells, out_dir=args.out, bench_args=bench_args)
        return EXIT_FAILED if failures else 0

    from bench.records import failed_record, write_record

    config = ThroughputConfig(model=args.model, implementation=args.impl, backend=backend, batch_size=args.batch_size,
                              steps=args.steps, warmup=args.warmup, repeats=args.repeats,
                              overhead_repeats=args.overhead_repeats, seed=args.seed, learning_rate=args.lr,
                              input_shape=args.input_shape, num_classes=args.num_classes, threads=args.threads,
                              profile_interval_s=args.profile_interval)
    try:
        _limit_threads(args.threads)
        record = execute_throughput(config)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    except ValueError as err:
        raise CliError(str(err)) from None
    except Exception as err:  # the run failed: record it
        record = failed_record("throughput", config, err)
        path = write_record(record, args.out)
        print(f"twinbench: run failed: {type(err).__name__}: {record['error']['message']} (recorded in {path})",
              file=sys.stderr)
        return EXIT_FAILED
    path = write_record(record, args.out)
    timing, overhead = record["timing"], record["profiler_overhead"]
    step, rate = timing["steady_step_s"], timing["throughput_images_per_s"]
    print(f"{config.cell.file_id} batch {config.batch_size}: first step {1e3 * timing['first_step_s']:.0f} ms; "
          f"steady step {1e3 * step['median']:.2f} ms (IQR {1e3 * step['q1']:.2f}-{1e3 * step['q3']:.2f}, "
          f"95% CI {1e3 * step['ci_low']:.2f}-{1e3 * step['ci_high']:.2f}, {step['n']} repeats x {config.steps} steps); "
          f"{rate['median']:.0f} images/s")
    if overhead:
        print(f"{config.cell.file_id}: profiler cost {_overhead_text(overhead)}; record {path}")
    else:
        print(f"{config.cell.file_id}: record {path}")
    return 0


def cmd_convert_weights(args) -> int:
    """torchvision checkpoint -> neutral .npz, so the tensorflow and jax environments can load it."""
    from backends import select_keras_backend
    from backends.checkpoints import convert_checkpoint

    try:
        from models import get_model_spec

        get_model_spec(args.model)
        _validate_weights(args.checkpoint, args.model, "torch")
        select_keras_backend("torch")  # the Keras definition gives the layout (names, Flatten order)
        path, info = convert_checkpoint(args.checkpoint, args.out, args.model)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    print(f"wrote {path} ({args.model}, {info['num_classes']} classes, from {info['format']} {args.checkpoint})")
    return 0


def cmd_definition_effect(args) -> int:
    """Run one environment's cells (``--env``) or print the definition-effect table of ``--out``."""
    from bench.definition_effect import (
        ENV_CELLS,
        FAMILIES,
        STOCK,
        definition_effect_table,
        load_throughput_records,
    )
    from models import check_choice

    families = [f for f in args.families.split(",") if f]
    try:
        for family in families:
            check_choice("model family", family, FAMILIES)
        if args.env is not None:
            check_choice("environment", args.env, ENV_CELLS)
            for family in families:
                for role, implementation, backend in ENV_CELLS[args.env]:
                    _validate_cell(family if role == "matched" else STOCK[family], implementation, backend,
                                   "synthetic", args.input_shape)
            check_writable(args.out)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    if args.env is None:
        try:
            records = load_throughput_records([args.out])
        except FileNotFoundError as err:
            raise CliError(f"{err}; run the cells first (nox -s definition_effect)") from None
        print(definition_effect_table(records, markdown=args.markdown))
        return 0
    from bench.definition_effect import run_cells

    bench_args = [*child_args(args, leave_out=("env", "families", "out", "markdown")), "--overhead-repeats", "0"]
    failures = run_cells(args.env, families=families, out_dir=args.out, bench_args=bench_args)
    return EXIT_FAILED if failures else 0


def cmd_report(args) -> int:
    import os
    from pathlib import Path

    from bench.report import build_report

    directories = [args.results] if isinstance(args.results, str) else args.results
    for directory in directories:
        if not Path(directory).is_dir():
            raise CliError(f"results directory {directory!r} does not exist; run the matrix first (nox -s compare)")
    try:  # several directories: the one that holds them all
        out = args.out or os.path.commonpath(directories)
    except ValueError:  # relative and absolute paths mixed
        out = os.path.commonpath([str(Path(d).resolve()) for d in directories])
    check_writable(out)  # report.md and figures/ go next to the records
    path = build_report(*directories, out_dir=out, figures=not args.no_figures)
    print(f"wrote {path}")
    return 0


def cmd_show(args) -> int:
    from bench.teaching import DocsError, show
    from models import get_model_spec

    try:
        get_model_spec(args.model)
        print(show(args.model, live=not args.offline), end="")
    except (*_user_errors(), DocsError) as err:
        raise CliError(str(err)) from None
    return 0


def cmd_docs(args) -> int:
    from bench.teaching import DocsError, current_env, write_env_data, write_pages
    from models import get_model_spec

    try:
        models = [m for m in (args.models or "").split(",") if m] or None
        for model in models or []:
            get_model_spec(model)
        if args.collect:
            env = current_env()
            if env is None:
                raise CliError("--collect needs a framework environment (KERAS_BACKEND=torch|tensorflow|jax); "
                               "nox -s docs runs it in each")
            paths = write_env_data(env, models)
        else:
            paths = write_pages(models)
    except (*_user_errors(), DocsError) as err:
        raise CliError(str(err)) from None
    for path in paths:
        print(f"wrote {path}")
    return 0
