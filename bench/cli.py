"""``python -m bench``: list models, run one cell, run a matrix, compare results.

Errors a user can cause (a mistyped name, a bad number, a missing dataset) end in one line on stderr,
``twinbench: error: ...``, naming the valid choices, and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback

from bench.faults import is_out_of_memory
from bench.matrix import DEFAULT_MODELS, ENVIRONMENT_CELLS

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
    parser.add_argument("--epochs", type=non_negative_int, default=10)
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

    run = sub.add_parser("run", help="run one cell and write its JSON record")
    run.add_argument("--model", required=True)
    run.add_argument("--impl", required=True, help="torch, tf_keras or keras")
    run.add_argument("--backend", default=None, help="torch, tensorflow or jax (for --impl keras)")
    run.add_argument("--out", default="results/run", help="directory for the record")
    run.add_argument("--progress", action="store_true", help="per-epoch progress bars")
    run.add_argument("--oom-retry", action="store_true",
                     help="on out-of-memory, retry with half the batch size (marked in the record)")
    _add_training_args(run)

    matrix = sub.add_parser("matrix", help="run the cells of one environment, each in its own process")
    matrix.add_argument("--env", required=True, help=", ".join(ENVIRONMENT_CELLS))
    matrix.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    matrix.add_argument("--out", default="results/compare")
    matrix.add_argument("--resume", action="store_true", help="skip cells that already have a successful record")
    matrix.add_argument("--oom-retry", action="store_true", help="retry out-of-memory cells at half the batch size")
    _add_training_args(matrix)

    compare = sub.add_parser("compare", help="print the comparison table of a results directory")
    compare.add_argument("results", nargs="?", default="results/compare")

    report = sub.add_parser("report", help="write DIR/report.md and its figures (works on a partial matrix)")
    report.add_argument("results", nargs="?", default="results/compare")
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


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {"list": cmd_list, "run": cmd_run, "matrix": cmd_matrix, "compare": cmd_compare,
                    "report": cmd_report, "show": cmd_show, "docs": cmd_docs}
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
    from models import UnknownChoiceError
    from models.weights import WeightMismatchError

    errors = [UnknownChoiceError, BackendError, WeightMismatchError]
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
        print(f"{name:20s} {', '.join(spec.builders):24s} {spec.summary}")
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
            f"pip install -e '.[{backend}]', or use its nox environment (nox -s matrix({backend}))."
        )
    return backend


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


def cmd_run(args) -> int:
    from bench.run import RunConfig, base_record, execute, write_record

    # 1. Bad input: checked before any framework is imported; one line, exit code 2.
    try:
        backend = _validate_cell(args.model, args.impl, args.backend, args.dataset, args.input_shape)
    except (*_user_errors(), ValueError) as err:
        raise CliError(str(err)) from None
    check_writable(args.out)
    config = RunConfig(model=args.model, implementation=args.impl, backend=backend, dataset=args.dataset,
                       epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                       data_dir=args.data_dir, input_shape=args.input_shape, num_classes=args.num_classes,
                       progress=args.progress)
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
            record = base_record(config)
            record.update(status="failed", error={
                "type": type(err).__name__, "message": message, "out_of_memory": out_of_memory,
                "batch_size": config.batch_size, "traceback": traceback.format_exc()})
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
    print(f"{config.cell}: params {record['model']['params']:,}, accuracy {results['accuracy_before']:.3f} -> "
          f"{results['accuracy_after']:.3f}, final loss {results['final_loss']}, record {path}")
    return 0


def _free_memory():
    """Give memory back between out-of-memory retries (framework caches included)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def cmd_matrix(args) -> int:
    from bench.matrix import run_matrix
    from models import check_choice

    try:
        check_choice("environment", args.env, ENVIRONMENT_CELLS)
        models = [m for m in args.models.split(",") if m]
        cells = ENVIRONMENT_CELLS[args.env]
        for model in models:
            for implementation, backend in cells:
                _validate_cell(model, implementation, backend, args.dataset, args.input_shape)
        check_writable(args.out)
    except _user_errors() as err:
        raise CliError(str(err)) from None
    run_args = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                "--seed", str(args.seed)]
    if args.data_dir:
        run_args += ["--data-dir", args.data_dir]
    if args.input_shape:
        run_args += ["--input-shape", "x".join(map(str, args.input_shape))]
    if args.num_classes:
        run_args += ["--num-classes", str(args.num_classes)]
    if args.oom_retry:
        run_args += ["--oom-retry"]
    failures = run_matrix(cells=cells, models=models, dataset=args.dataset, out_dir=args.out,
                          run_args=run_args, resume=args.resume)
    return EXIT_FAILED if failures else 0


def cmd_compare(args) -> int:
    from pathlib import Path

    from bench.records import load_records
    from bench.table import agreement_summary, results_table

    if not Path(args.results).is_dir():
        raise CliError(f"results directory {args.results!r} does not exist; run the matrix first (nox -s compare)")
    records, skipped = load_records(args.results)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not records:
        raise CliError(f"no twinbench records in {args.results!r}")
    print(results_table(records))
    print()
    for line in agreement_summary(records):
        print(line)
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from bench.report import build_report

    if not Path(args.results).is_dir():
        raise CliError(f"results directory {args.results!r} does not exist; run the matrix first (nox -s compare)")
    check_writable(args.results)  # report.md and figures/ go next to the records
    path = build_report(args.results, figures=not args.no_figures)
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
