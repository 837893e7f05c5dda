"""The command line's vocabulary: exit codes, the one-line error, argument types, the option groups that several
commands share (the cell's axes among them, generated from their declarations in ``twinbench.cell``), and the command
line of a child process, built from the options of its parent."""

from __future__ import annotations

import argparse

from twinbench.backends.environments import BACKENDS, ENVIRONMENTS, RUN_ENVIRONMENTS
from twinbench.cell import CELL_AXES, command_axes
from twinbench.models import IMPLEMENTATIONS

EXIT_USAGE = 2  # bad input
EXIT_FAILED = 1  # the run itself failed (recorded as a failed cell)


class CliError(Exception):
    """A user error; printed as one line."""


class Parser(argparse.ArgumentParser):
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


def input_shape(text: str) -> tuple[int, ...]:
    """``HxWxC`` for image models; other tasks' shapes (``twinbench.data.tasks``) have their own length, e.g. ``6040x3706``
    (users x items) for recommendation; the model checks the length."""
    try:
        parts = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        parts = ()
    if not 1 <= len(parts) <= 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be HxWxC, e.g. 32x32x3 (other tasks: their shape), got {text!r}")
    return parts


def interval_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive seconds, e.g. 0.15,0.015, got {text!r}")
    return values


class CommaList(tuple):
    """A tuple typed as comma-separated values (``--batch-sizes 1,4,16``), and written back so (``_option_text``)."""


def batch_size_list(text: str) -> CommaList:
    """``1,4,16,64``: positive batch sizes, sorted, each once."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, e.g. 1,4,16,64, got {text!r}")
    return CommaList(sorted(set(values)))


def add_training_args(parser):
    parser.add_argument("--dataset", default=None,
                        help="digits, synthetic, cifar10, mnist for image models (default digits); "
                             "reverse, parallel_text (seq2seq); reverse_lm (language models); implicit, movielens "
                             "(recommendation); default: the model's own (twinbench.data.tasks)")
    parser.add_argument("--epochs", type=non_negative_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--data-dir", default=None, help="directory with the dataset files (or TWINBENCH_DATA_DIR)")
    parser.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    parser.add_argument("--num-classes", type=positive_int, default=None)


def env_python(text: str) -> tuple[str, str]:
    """``ENV=PATH`` (``--python torch=.nox/train-torch/bin/python``) as ``(env, path)``; an unknown environment or a
    missing ``=`` is an argparse error."""
    env, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected ENV=PATH, e.g. torch=.nox/train-torch/bin/python. Received: {text!r}")
    if env not in RUN_ENVIRONMENTS:
        raise argparse.ArgumentTypeError(f"unknown environment {env!r}; choose from {', '.join(RUN_ENVIRONMENTS)}")
    return env, path


def add_synthetic_steps_args(parser, *, steps: int, steps_help: str, warmup: int):
    """The options of a run of steps on synthetic data (``throughput``, ``trace``): batch, steps, warm-up, shape,
    classes, seed, learning rate, threads."""
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=steps, help=steps_help)
    parser.add_argument("--warmup", type=positive_int, default=warmup, help="steps before timing, the first included")
    parser.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    parser.add_argument("--num-classes", type=positive_int, default=None)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads per framework thread pool (default: each framework's own choice)")


def add_weights_arg(parser):
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="start from these weights, not the random initial ones: a torchvision checkpoint "
                             "(.pth, torch environment) or a neutral .npz (any; see convert-weights). With "
                             "another --num-classes than the checkpoint's, the classifier starts anew")


def add_save_weights_arg(parser):
    parser.add_argument("--save-weights", default=None, metavar="PATH",
                        help="write the trained weights to PATH, a neutral .npz (BatchNorm statistics included) "
                             "that --weights reads in every implementation and convert-weights turns into a "
                             "torchvision state_dict or a Keras .weights.h5; one cell (--impl) only")


def add_measurement_args(parser):
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads per framework thread pool (default: each framework's own choice)")
    parser.add_argument("--no-profiler", dest="profile", action="store_false",
                        help="no profiler sampling thread (windows and markers are still recorded)")
    parser.add_argument("--profile-interval", type=positive_float, default=0.15, help="seconds between samples")


def add_cell_arguments(parser, *, impl_group=None, model_default: str | None = None) -> None:
    """``--model``, ``--impl`` and ``--backend``: the options that name one cell (the dataset: the command's).

    ``impl_group``: a mutually exclusive group for ``--impl`` (beside ``--env``); without one it is required.
    """
    if model_default is None:
        parser.add_argument("--model", required=True)
    else:
        parser.add_argument("--model", default=model_default)
    (impl_group or parser).add_argument("--impl", required=impl_group is None,
                                        help=f"{', '.join(IMPLEMENTATIONS)}: run this one cell in this process")
    parser.add_argument("--backend", default=None, help=f"{', '.join(BACKENDS)} (for --impl keras)")


def add_env_argument(parser, **kwargs) -> None:
    """``--env``: run an environment's cells, each in its own process."""
    parser.add_argument("--env", help=f"{', '.join(ENVIRONMENTS)}: run its cells, each in its own process",
                        **kwargs)


def add_axis_arguments(parser, command: str) -> None:
    """The options of the cell's axes that ``command`` takes, each generated from its declaration
    (``twinbench.cell.CELL_AXES``), in a help section of their own: a flag for a yes/no axis (no by default), else
    its choices (or its parser), default and help."""
    group = parser.add_argument_group("axes of the cell", "each a part of the cell's identity: records, labels and "
                                                          "file names mention an axis only off its default")
    for declared in command_axes(command).values():
        if isinstance(declared.default, bool):
            group.add_argument(declared.flag, action="store_true", help=declared.help)
        else:
            group.add_argument(declared.flag, choices=declared.choices, type=declared.parse, metavar=declared.metavar,
                               default=declared.default, help=f"{declared.help} (default {declared.default})")


def axis_values(args, command: str) -> dict:
    """The values of the parsed axis options of ``command`` (``add_axis_arguments``), by axis."""
    return {name: getattr(args, name) for name in command_axes(command)}


def child_args(args, *, leave_out=()) -> list[str]:
    """The options of ``args`` as a command line for a child process that runs one of the command's cells.

    Read from the command's own parser (``args.parser``), so an option added there reaches the children. The cell's
    axes are left out: the child's cell names them (``twinbench.cell.cell_argv``).
    """
    argv = []
    for action in args.parser._actions:
        if not action.option_strings or action.dest in (*leave_out, *CELL_AXES, "help"):
            continue
        value, flag = getattr(args, action.dest), max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            argv += [flag] if value != action.default else []
        elif value is not None:
            argv += [flag, _option_text(value)]
    return argv


def _option_text(value) -> str:
    """An option's value as it is typed: ``32x32x3`` for a shape, ``0.15,0.015`` for intervals."""
    if isinstance(value, CommaList):
        return ",".join(map(str, value))
    if isinstance(value, tuple):
        return ("x" if all(isinstance(v, int) for v in value) else ",").join(map(str, value))
    return str(value)


def add_launcher_args(parser):
    """``--launcher`` and the resources of one cell's job: how ``--env`` starts its cells (``docs/cluster.md``)."""
    parser.add_argument("--launcher", choices=("local", "submitit"), default="local",
                        help="with --env: each cell a child process here (local), or a submitit job per cell")
    parser.add_argument("--cluster", choices=("slurm", "local"), default=None,
                        help="submitit's executor (default: Slurm where sbatch exists, else local)")
    parser.add_argument("--timeout-min", type=positive_int, default=60, help="submitit: minutes per cell job")
    parser.add_argument("--cpus-per-cell", type=positive_int, default=None, help="submitit: CPUs per cell job")
    parser.add_argument("--gpus-per-cell", type=non_negative_int, default=0,
                        help="submitit: GPUs per cell job (a data-parallel cell needs --replicas of them)")
    parser.add_argument("--slurm-partition", default=None, help="submitit on Slurm: the partition")
