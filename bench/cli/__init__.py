"""``twinbench`` (or ``python -m twinbench``): list models and cells, train cells, benchmark their throughput, compare the results.

Errors a user can cause (a mistyped name, a bad number, a missing dataset) end in one line on stderr,
``twinbench: error: ...``, naming the valid choices, and exit code 2 — never a traceback. This package only
parses, checks and delegates: the work is done by ``twinbench.measuring``, ``twinbench.results``, ``twinbench.twins`` and
``twinbench.studies``.
"""

from __future__ import annotations

import argparse
import sys

from twinbench.backends.allocator import ALLOCATORS, SYSTEM
from twinbench.backends.environments import ENVIRONMENTS, NATIVES, RUN_ENVIRONMENTS
from twinbench.cli.check_command import add_check_parser, cmd_check
from twinbench.cli.dispatch_commands import add_dispatch_parsers, cmd_breakdown, cmd_calls
from twinbench.cli.equivalence_command import add_equivalence_parser, cmd_equivalence
from twinbench.cli.export_command import add_export_parser, cmd_export
from twinbench.cli.history_command import add_history_parser, cmd_history
from twinbench.cli.options import (
    EXIT_FAILED,  # noqa: F401  (part of the CLI's face: tests and scripts read the exit codes here)
    EXIT_USAGE,
    CliError,
    Parser,
    add_axis_arguments,
    add_cell_arguments,
    add_env_argument,
    add_launcher_args,
    add_measurement_args,
    add_save_weights_arg,
    add_synthetic_steps_args,
    add_training_args,
    add_weights_arg,
    batch_size_list,
    env_python,
    input_shape,
    interval_list,
    non_negative_int,
    positive_float,
    positive_int,
)
from twinbench.cli.run_commands import (
    cmd_alternate,
    cmd_convert_weights,
    cmd_definition_effect,
    cmd_generate,
    cmd_latency,
    cmd_profiler_cost,
    cmd_throughput,
    cmd_trace,
)
from twinbench.cli.show_commands import cmd_cells, cmd_compare, cmd_docs, cmd_list, cmd_report, cmd_show
from twinbench.cli.study_command import add_study_parser, cmd_study
from twinbench.cli.train_command import cmd_train
from twinbench.cli.versions_command import add_versions_parsers, cmd_ab, cmd_sweep
from twinbench.measuring.children import CELL_PROCESSES, DEFAULT_MODELS
from twinbench.models import UnknownChoiceError, external_models, load_model_file
from twinbench.records import RESULTS
from twinbench.results.measured_tables import VIEWS
from twinbench.studies.profiler_cost import DEFAULT_INTERVALS_S


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="twinbench", description="List models and cells, train cells, benchmark their throughput, "
                                                  "compare the results; carry weights across frameworks and export "
                                                  "models (also: python -m twinbench).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("list", help="list the registered models")

    cells = sub.add_parser("cells", help="list the cells each environment runs: ENVIRONMENT IMPLEMENTATION BACKEND "
                                         "LABEL, one a line")
    cells.add_argument("--env", action="append", choices=list(ENVIRONMENTS),
                       help="only this environment's cells (repeatable; default: all)")
    cells.add_argument("--model", default=None, help="only the cells this model has a builder for")

    train = sub.add_parser("train",
                           help="train one cell (--impl) or an environment's cells (--env): each in its own process, "
                                "or one after another in one (--cell-processes one)")
    which = train.add_mutually_exclusive_group(required=True)
    add_cell_arguments(train, impl_group=which, model_default="")
    add_env_argument(which)
    train.add_argument("--models", default=",".join(DEFAULT_MODELS), help="with --env: comma-separated model names")
    train.add_argument("--out", default=RESULTS["train"], help="directory for the records")
    train.add_argument("--resume", action="store_true",
                       help="with --env: skip cells that already have a successful record")
    train.add_argument("--cell-processes", choices=CELL_PROCESSES, default="each",
                       help="with --env: each cell in its own child process (each); the environment's cells one "
                            "after another in one child process, a fresh model, seed and record each, a cell that "
                            "ends that process retried with the rest each in its own (one); or in this process (this)")
    train.add_argument("--progress", action="store_true", help="per-epoch progress bars")
    train.add_argument("--oom-retry", action="store_true",
                       help="on out-of-memory, retry with half the batch size (marked in the record)")
    add_training_args(train)
    add_axis_arguments(train, "train")
    add_launcher_args(train)
    add_measurement_args(train)
    train.add_argument("--timing-window", type=non_negative_int, default=10,
                       help="steps per steady-state timing window, synchronised at its edges only (0: none)")
    train.add_argument("--synthetic-train", type=positive_int, default=None, help="samples of --dataset synthetic")
    train.add_argument("--synthetic-test", type=positive_int, default=None)
    add_weights_arg(train)
    add_save_weights_arg(train)
    train.set_defaults(parser=train)

    convert = sub.add_parser("convert-weights", help="weights from one format to another: neutral .npz, torchvision "
                                                     "state_dict (.pth, torch env), Keras .weights.h5")
    convert.add_argument("checkpoint", help="the weights to read: .npz, .pth/.pt or .weights.h5")
    convert.add_argument("out", help="the file to write, its format from its name; --weights takes each of them")
    convert.add_argument("--model", required=True)
    convert.add_argument("--num-classes", type=positive_int, default=None,
                         help="the class count of a .weights.h5 to read (default: the model's)")
    convert.add_argument("--input-shape", type=input_shape, default=None,
                         help="HxWxC the weights were made for, where it changes their shapes (default: the model's)")

    compare = sub.add_parser("compare", help="print the comparison tables of results directories")
    compare.add_argument("results", nargs="*", default=[RESULTS["train"]],
                         help="directories of records; several runs of one cell are pooled")
    compare.add_argument("--view", choices=list(VIEWS), default=None,
                         help="one table instead of all: the PyTorch paper's (docs/paper_table.md) or data-parallel "
                              "scaling (docs/cluster.md)")

    _add_bench_parser(sub)
    _add_latency_parser(sub)
    _add_generate_parser(sub)
    _add_alternate_parser(sub)
    add_check_parser(sub)
    add_export_parser(sub)
    add_equivalence_parser(sub)
    add_history_parser(sub)
    _add_profiler_cost_parser(sub)
    _add_trace_parser(sub)
    add_dispatch_parsers(sub)
    add_study_parser(sub)
    add_versions_parsers(sub)

    effect = sub.add_parser("definition-effect",
                            help="stock keras.applications vs matched Keras vs native twin: run an environment's "
                                 "cells (--env), or print the table of --out")
    add_env_argument(effect, default=None)
    effect.add_argument("--families", default="resnet50,vgg19,mobilenet_v2",
                        help="comma-separated; also vit_tiny, gpt_tiny, vit_b_16, gpt2 (keras-hub variants)")
    effect.add_argument("--out", default=RESULTS["definition_effect"],
                        help="directory of the records; the table pools it and its subdirectories (e.g. rounds)")
    effect.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    effect.add_argument("--input-shape", type=input_shape, default=(32, 32, 3),
                        help="HxWxC (default 32x32x3); the GPT-2 families: their context length, e.g. 64")
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


def _add_bench_parser(sub):
    bench = sub.add_parser("throughput",
                           help="throughput benchmark on synthetic data: one cell, or an environment's cells")
    which = bench.add_mutually_exclusive_group(required=True)
    add_cell_arguments(bench, impl_group=which, model_default="cifar_cnn")
    add_env_argument(which)
    add_synthetic_steps_args(bench, steps=50, steps_help="steps per timed window (one per repeat)", warmup=10)
    bench.add_argument("--repeats", type=positive_int, default=10, help="timed windows with the profiler on")
    bench.add_argument("--overhead-repeats", type=non_negative_int, default=None,
                       help="extra windows with the profiler off, to measure its cost (default: --repeats)")
    bench.add_argument("--compute-repeats", type=non_negative_int, default=None,
                       help="windows of the train step alone on batches already on the device, interleaved with the "
                            "whole windows (default: --repeats, none with --replicas; 0: none)")
    bench.add_argument("--profile-interval", type=positive_float, default=0.15, help="seconds between samples")
    add_axis_arguments(bench, "throughput")
    add_launcher_args(bench)
    bench.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=None,
                       help="with --env torch or tensorflow: run its two cells in this one process, window by window "
                            "in an ABBA order (default: wherever it can; --no-interleave: each cell in its own process)")
    bench.add_argument("--resume", action="store_true",
                       help="with --env: skip cells that already have a successful record")
    bench.add_argument("--out", default=RESULTS["throughput"], help="directory for the records")
    bench.set_defaults(parser=bench)


def _add_latency_parser(sub):
    latency = sub.add_parser("latency", help="inference latency at a sweep of batch sizes on synthetic data, in a call "
                                             "style (--style): one cell, or an environment's cells")
    which = latency.add_mutually_exclusive_group(required=True)
    add_cell_arguments(latency, impl_group=which, model_default="cifar_cnn")
    add_env_argument(which)
    latency.add_argument("--batch-sizes", type=batch_size_list, default=batch_size_list("1,4,16,64"),
                         help="comma-separated batch sizes, each timed in turn (default 1,4,16,64)")
    latency.add_argument("--calls", type=positive_int, default=20, help="timed calls per window")
    latency.add_argument("--repeats", type=positive_int, default=5, help="timed windows per batch size")
    latency.add_argument("--warmup", type=positive_int, default=5,
                         help="calls before timing at each batch size, the first (tracing) one included")
    latency.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    latency.add_argument("--num-classes", type=positive_int, default=None)
    latency.add_argument("--seed", type=non_negative_int, default=0)
    latency.add_argument("--threads", type=positive_int, default=None,
                         help="CPU threads per framework thread pool (default: each framework's own choice)")
    add_axis_arguments(latency, "latency")
    add_launcher_args(latency)
    latency.add_argument("--resume", action="store_true",
                         help="with --env: skip cells that already have a successful record")
    latency.add_argument("--out", default=RESULTS["latency"], help="directory for the records")
    latency.set_defaults(parser=latency)


def _add_generate_parser(sub):
    generate = sub.add_parser("generate", help="GPT-2 greedy decoding with a key/value cache, each token timed: time to "
                                               "first token, per-token latency, tokens/s; one cell, or an "
                                               "environment's cells")
    which = generate.add_mutually_exclusive_group(required=True)
    add_cell_arguments(generate, impl_group=which, model_default="gpt_tiny")
    add_env_argument(which)
    generate.add_argument("--prompt-length", type=non_negative_int, default=8, help="tokens of each (random) prompt")
    generate.add_argument("--new-tokens", type=non_negative_int, default=32, help="tokens generated after each prompt")
    generate.add_argument("--batch-size", type=non_negative_int, default=1, help="prompts decoded together")
    generate.add_argument("--repeats", type=positive_int, default=5, help="timed generate calls")
    generate.add_argument("--warmup", type=positive_int, default=2,
                          help="untimed generate calls before them, the first (tracing, compiling) one included")
    generate.add_argument("--seed", type=non_negative_int, default=0)
    generate.add_argument("--threads", type=positive_int, default=None,
                          help="CPU threads per framework thread pool (default: each framework's own choice)")
    add_axis_arguments(generate, "generate")
    add_launcher_args(generate)
    generate.add_argument("--resume", action="store_true",
                          help="with --env: skip cells that already have a successful record")
    generate.add_argument("--out", default=RESULTS["generate"], help="directory for the records")
    generate.set_defaults(parser=generate)


def _add_alternate_parser(sub):
    alternate = sub.add_parser(
        "alternate", help="timing verdicts for every decomposition ratio: each environment's cells interleaved in "
                          "short throughput processes, the environments' processes alternated A,B,B,A within a "
                          "budget; then the ratios, their resolution and the machine's quietness")
    alternate.add_argument("--python", action="append", default=[], metavar="ENV=PATH", type=env_python,
                           help=f"the Python of an environment's virtualenv ({', '.join(RUN_ENVIRONMENTS)}); repeat it "
                                f"for each environment to alternate ({NATIVES}: the two native twins interleaved in one "
                                "process, nox -s natives --install-only)")
    alternate.add_argument("--model", default="cifar_cnn")
    alternate.add_argument("--batch-size", type=positive_int, default=32)
    alternate.add_argument("--steps", type=positive_int, default=20, help="steps per timed window")
    alternate.add_argument("--warmup", type=positive_int, default=3, help="steps before timing, the first included")
    alternate.add_argument("--repeats", type=positive_int, default=8, help="timed windows per cell and process")
    alternate.add_argument("--threads", type=positive_int, default=None,
                           help="CPU threads per framework thread pool (default: each framework's own choice)")
    alternate.add_argument("--allocator", choices=ALLOCATORS, default=SYSTEM,
                           help="the C allocator of every process (the cell's allocator axis; tuned: glibc keeps the "
                                "memory it took, backends/allocator.py)")
    alternate.add_argument("--blocks", type=positive_int, default=12,
                           help="the most blocks of one process per environment (ABBA order)")
    alternate.add_argument("--budget-s", type=positive_float, default=60.0,
                           help="no block is started that would end past this many seconds (the first always runs)")
    alternate.add_argument("--process-timeout-s", type=positive_float, default=600.0,
                           help="end a process still running after this long and count it as failed (default 600)")
    alternate.add_argument("--out", default=RESULTS["timing"], help="directory for the records")


def _add_trace_parser(sub):
    trace = sub.add_parser("trace", help="steady-state steps of one cell under its framework's own profiler: time per "
                                         "step of conv/matmul, layout, optimizer, other ops and the remainder")
    add_cell_arguments(trace, model_default="cifar_cnn")
    add_synthetic_steps_args(trace, steps=10, steps_help="traced steady-state steps", warmup=5)
    add_axis_arguments(trace, "trace")
    trace.add_argument("--out", default=RESULTS["trace"], help="directory for the record")
    trace.set_defaults(parser=trace)


def _add_profiler_cost_parser(sub):
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


def _load_model_files(args) -> None:
    """Load the model files of ``TWINBENCH_MODELS`` and of ``--model FILE.py:NAME`` (and in ``--models``), which
    register their models, and go on with NAME; a file that cannot be imported is one line."""
    try:
        external_models()
    except UnknownChoiceError as err:
        raise CliError(str(err)) from None
    for dest in ("model", "models"):
        value = getattr(args, dest, None)
        if isinstance(value, str) and ".py:" in value:
            try:
                setattr(args, dest, ",".join(load_model_file(m) if ".py:" in m else m for m in value.split(",")))
            except UnknownChoiceError as err:
                raise CliError(str(err)) from None


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _load_model_files(args)
        commands = {"list": cmd_list, "cells": cmd_cells, "train": cmd_train,
                    "compare": cmd_compare, "report": cmd_report, "show": cmd_show, "docs": cmd_docs,
                    "throughput": cmd_throughput, "latency": cmd_latency, "generate": cmd_generate, "alternate": cmd_alternate,
                    "convert-weights": cmd_convert_weights, "definition-effect": cmd_definition_effect,
                    "profiler-cost": cmd_profiler_cost, "trace": cmd_trace, "check": cmd_check,
                    "equivalence": cmd_equivalence, "export": cmd_export, "calls": cmd_calls,
                    "breakdown": cmd_breakdown, "study": cmd_study,
                    "history": cmd_history, "sweep": cmd_sweep, "ab": cmd_ab}
        return commands[args.command](args)
    except CliError as err:
        print(f"twinbench: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("twinbench: interrupted; records already written are intact", file=sys.stderr)
        return 130
