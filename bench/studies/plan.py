"""What a study is, as data, and the plan it makes: every run, in order.

A **study** answers one question by running cells many times: which cells (selected from the one environment table,
``twinbench.backends.environments``), which models at which sizes, which variants (modes, CPU layouts, allocator
settings...), which command each run makes, and how many rounds. The studies themselves are declared in
``twinbench.studies.declared``; ``twinbench.studies.runner`` executes a plan.

The order is part of the declaration: within a part, every round passes over every cell, so a slow drift of the
machine reaches every cell alike, and the pass runs backwards in every other round (A B, B A: what drifts linearly
within a pair of rounds cancels). Every run is its own process (``python -m twinbench ...`` of the cell's
environment, or a command line the study names, e.g. the plain loop of ``tools/crosscheck/``).

Imports no framework.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from twinbench.backends.environments import ENVIRONMENTS, implementation_label

# How each kind of step starts, after the environment's python: a twinbench subcommand or a script of the repository
# (run from its root). ``cell``: the options naming the run's cell; ``out``: whether it takes ``--out DIR``.
COMMANDS = {
    "train": {"argv": ("-m", "twinbench", "train"), "cell": ("--impl", "--backend"), "out": True},
    "throughput": {"argv": ("-m", "twinbench", "throughput"), "cell": ("--impl", "--backend"), "out": True},
    "trace": {"argv": ("-m", "twinbench", "trace"), "cell": ("--impl", "--backend"), "out": True},
    "profiler-cost": {"argv": ("-m", "twinbench", "profiler-cost"), "cell": ("--impl", "--backend"), "out": True},
    "definition-effect": {"argv": ("-m", "twinbench", "definition-effect"), "cell": (), "out": True},
    # The independent plain loop: outside the harness on purpose (docs/crosscheck.md).
    "crosscheck": {"argv": ("tools/crosscheck/crosscheck.py",), "cell": ("--impl",), "out": True},
    "pytest": {"argv": ("-m", "pytest"), "cell": (), "out": False},
    # Environments' processes alternated A,B,B,A within a budget (twinbench.measuring.alternate): one run that starts
    # the others; each ``--python=ENV`` of its options gets the study's python of ENV when it runs (``PYTHON_OF``).
    "alternate": {"argv": ("-m", "twinbench", "alternate"), "cell": (), "out": True, "env_option": False},
}
PYTHON_OF = "--python="  # ``--python=ENV`` in a step's options: ``--python=ENV=PATH`` with the study's python of ENV
# Every run's environment variables, beside KERAS_BACKEND (the cell's backend) and the variant's own: quiet
# TensorFlow logs, no preallocation of a GPU's memory by JAX or TensorFlow, output unbuffered (logs in order).
RUN_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "TF_FORCE_GPU_ALLOW_GROWTH": "true", "PYTHONUNBUFFERED": "1"}
# The smallest size of every study (``--smallest``): one round, the first model, and these options made as small as
# they go. An option set to 0 (e.g. ``--overhead-repeats 0``: no such windows) stays 0.
SMALLEST = {"--steps": "2", "--repeats": "2", "--warmup": "1", "--compute-repeats": "2", "--overhead-repeats": "2",
            "--budget-s": "1",
            "--cycles": "1", "--epochs": "1", "--synthetic-train": "128", "--synthetic-test": "64"}
CELLS = tuple(implementation_label(*pair) for pairs in ENVIRONMENTS.values() for pair in pairs)


class StudyError(ValueError):
    """A study, part, parameter or environment that does not exist, or a plan that cannot run here."""


@dataclass(frozen=True)
class Variant:
    """One setting of the axes a part varies, applied to each of its cells: options, environment variables and
    where its records go (``{dir}`` in a step's ``out``). ``labels``/``models``: only these cells or models
    (empty: all); ``models`` may name a parameter (``"{jit_models}"``, comma-separated)."""

    name: str = ""
    args: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    dir: str = ""
    labels: tuple[str, ...] = ()
    models: tuple[str, ...] | str = ()


@dataclass(frozen=True)
class Step:
    """One command each (cell, model, variant) runs: a ``COMMANDS`` kind, its options (``{parameter}`` fields are
    filled in, then the string is split like a shell would), where its records go under the study's directory
    (``{round}``, ``{variant}``, ``{dir}``, ``{env}`` filled in) and, for a command that writes no records, the file
    its output goes to. ``smallest``: its options at the smallest size, where shrinking ``SMALLEST``'s is not it."""

    command: str
    args: str = ""
    out: str = "round-{round}"
    stdout: str | None = None
    smallest: str | None = None
    enabled_by: str | None = None  # a parameter that leaves this step out when it is 0


@dataclass(frozen=True)
class Part:
    """One pass of a study, ``rounds`` times: every step of every cell (or, ``over="environment"``, every
    environment: ``--env NAME``), model and variant, nested in the order ``nesting`` gives, outermost first.

    ``models``: each model's size options (``"*"``: those of any other model ``--models`` names; ``None``: the
    command takes no ``--model``); ``rounds``: ``None`` for the study's ``--rounds``, a number, or a parameter's
    name.
    """

    name: str
    steps: tuple[Step, ...]
    models: Mapping[str, str] | None = None
    cells: tuple[str, ...] = CELLS
    over: str = "cell"
    variants: tuple[Variant, ...] = (Variant(),)
    rounds: int | str | None = None
    nesting: tuple[str, ...] = ("model", "cell", "variant")


@dataclass(frozen=True)
class Study:
    """A question answered by runs: its parts, in order; its parameters (name -> default, or a function of the
    other parameters for a derived one), which ``--set NAME=VALUE`` changes; what to print afterwards (commands
    over the study's directory, globs expanded); and the nox session whose environments run it by default."""

    name: str
    summary: str
    rounds: int
    parts: tuple[Part, ...]
    params: Mapping[str, object] = field(default_factory=dict)
    afterwards: tuple[str, ...] = ()
    session: str = "throughput"
    python: str | None = None  # one interpreter for every environment instead of the session's (a lent GPU machine)
    doc: str = ""


@dataclass(frozen=True)
class Run:
    """One process of a plan."""

    key: str  # unique within the study: what resume and the log know it by
    part: str
    round: int
    env: str  # the environment whose python runs it
    label: str  # the cell's label, or the environment's name for an environment-wide run
    model: str | None
    variant: str
    command: str
    args: tuple[str, ...]  # after ``python``
    out: str | None  # the directory its records go to
    stdout: str | None
    env_vars: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the part, round, cell and the command (what ``study show`` prints)."""
        env = " ".join(f"{name}={value}" for name, value in self.env_vars.items() if name != "KERAS_BACKEND")
        out = f" > {self.stdout}" if self.stdout else ""
        return f"{self.part or '-'} r{self.round} {self.label:18s} {env + ' ' if env else ''}" \
               f"{shlex.join(self.args)}{out}"


def resolve_params(study: Study, overrides: Mapping[str, str], rounds: int | None = None) -> dict[str, object]:
    """The study's parameters with ``overrides`` applied, then the derived ones (functions of the others and of
    ``rounds``, the study's round count) computed."""
    unknown = sorted(set(overrides) - set(study.params))
    if unknown:
        raise StudyError(f"Unknown parameter {unknown[0]!r} of study {study.name!r}. "
                         f"Valid choices: {', '.join(study.params) or '(none)'}.")
    plain = {name: overrides.get(name, value) for name, value in study.params.items() if not callable(value)}
    plain["rounds"] = rounds or study.rounds
    derived = {name: overrides[name] if name in overrides else value(plain)
               for name, value in study.params.items() if callable(value)}
    return {**plain, **derived}


def _fill(template: str, fields: Mapping[str, object]) -> str:
    return template.format(**fields)


def _smallest(args: list[str]) -> list[str]:
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg in SMALLEST and out[i + 1] != "0":
            out[i + 1] = SMALLEST[arg]
    return out


def _applies(variant: Variant, label: str, model: str | None, params: Mapping[str, object]) -> bool:
    models = variant.models
    if isinstance(models, str):
        models = tuple(m for m in _fill(models, params).split(",") if m)
    return (not variant.labels or label in variant.labels) and (not models or model in models)


def part_rounds(part: Part, rounds: int, params: Mapping[str, object]) -> int:
    if part.rounds is None:
        return rounds
    return int(params[part.rounds]) if isinstance(part.rounds, str) else part.rounds


def _environment_of(label: str, over: str = "cell") -> tuple[str, str | None, str | None]:
    """``(environment, implementation, backend)`` of a cell label, or (``over="environment"``) of an environment."""
    if over == "environment":
        if label not in ENVIRONMENTS:
            raise StudyError(f"Unknown environment {label!r}. Valid choices: {', '.join(ENVIRONMENTS)}.")
        return label, None, None
    for env, pairs in ENVIRONMENTS.items():
        for implementation, backend in pairs:
            if implementation_label(implementation, backend) == label:
                return env, implementation, backend
    raise StudyError(f"Unknown cell {label!r}. Valid choices: {', '.join(CELLS)}.")


def make_plan(study: Study, directory: str = "DIR", *, rounds: int | None = None, smallest: bool = False,
              envs: tuple[str, ...] = (), cells: tuple[str, ...] = (), parts: tuple[str, ...] = (),
              models: tuple[str, ...] = (),
              params: Mapping[str, str] | None = None, extra: tuple[str, ...] = (),
              registered: Callable[[str, str], bool] | None = None) -> list[Run]:
    """Every run of ``study`` into ``directory``, in the order they run.

    Args:
        rounds: the rounds of the parts that take the study's (default: ``study.rounds``).
        smallest: one round, each part's first model, ``SMALLEST`` sizes: a check that every run starts and ends.
        envs: only the cells of these environments (default: all).
        cells: only these cells, by label (an environment-wide part: the environments that run one of them).
        parts: only these parts (default: all).
        models: these models instead of the parts' own (each must have sizes in the part; others get none).
        params: ``--set`` overrides of the study's parameters.
        extra: options appended to every twinbench command.
        registered: ``(model, label) -> bool``, whether the model has a builder for that cell; runs without one
            are left out (default: every model runs everywhere).
    """
    for label in cells:
        _environment_of(label)
    for env in envs:
        if env not in ENVIRONMENTS:
            raise StudyError(f"Unknown environment {env!r}. Valid choices: {', '.join(ENVIRONMENTS)}.")
    known = [part.name for part in study.parts]
    for name in parts:
        if name not in known:
            raise StudyError(f"Unknown part {name!r} of study {study.name!r}. Valid choices: {', '.join(known)}.")
    values = resolve_params(study, params or {}, 1 if smallest else rounds)
    plan: list[Run] = []
    for part in study.parts:
        if parts and part.name not in parts:
            continue
        n_rounds = 1 if smallest else part_rounds(part, rounds or study.rounds, values)
        chosen = _part_models(part, models, smallest)
        for round_number in range(1, n_rounds + 1):
            one_pass = list(_pass(directory, part, round_number, chosen, values, envs, cells, smallest, extra,
                                  registered))
            # A B in odd rounds, B A in even ones: a drift that is linear over two rounds reaches every cell alike.
            plan.extend(one_pass if round_number % 2 else one_pass[::-1])
    keys = [run.key for run in plan]
    if len(set(keys)) != len(keys):
        raise StudyError(f"study {study.name!r} plans two runs under one key: give its steps distinct 'out's")
    return plan


def _part_models(part: Part, models: tuple[str, ...], smallest: bool) -> list[str | None]:
    """The models a part runs: ``models`` where given (each needs sizes of its own or the part's ``"*"``), else
    the part's own; at the smallest size only the first."""
    if part.models is None:
        return [None]
    for model in models:
        if model not in part.models and "*" not in part.models:
            raise StudyError(f"Model {model!r} has no sizes in part {part.name!r} of this study. "
                             f"Valid choices: {', '.join(m for m in part.models if m != '*')}.")
    chosen = list(models) or [m for m in part.models if m != "*"]
    return chosen[:1] if smallest else chosen


def _pass(directory, part, round_number, models, values, envs, cells, smallest, extra, registered):
    """One round of ``part``: its runs in the nesting order it declares."""
    chosen_envs = {_environment_of(label)[0] for label in cells}
    labels = [label for label in part.cells
              if (not envs or _environment_of(label, part.over)[0] in envs)
              and (not cells or (label in chosen_envs if part.over == "environment" else label in cells))]
    axes = {"model": models, "cell": labels, "variant": list(part.variants)}
    a, b, c = (axes[name] for name in part.nesting)
    for x in a:
        for y in b:
            for z in c:
                chosen = dict(zip(part.nesting, (x, y, z), strict=True))
                model, label, variant = chosen["model"], chosen["cell"], chosen["variant"]
                if not _applies(variant, label, model, values):
                    continue
                if model is not None and registered is not None and not registered(model, label):
                    continue
                for index, step in enumerate(part.steps):
                    if step.enabled_by and str(values[step.enabled_by]) == "0":
                        continue
                    yield _run(directory, part, step, index, round_number, model, label, variant, values, smallest, extra)


def _run(directory, part, step, index, round_number, model, label, variant, values, smallest, extra) -> Run:
    env, implementation, backend = _environment_of(label, part.over)
    fields = {**values, "round": round_number, "variant": variant.name, "dir": _fill(variant.dir, values), "env": env}
    kind = COMMANDS[step.command]
    args = list(kind["argv"])
    if part.over == "environment":
        args += ["--env", env] if step.command != "pytest" and kind.get("env_option", True) else []
    else:
        args += [opt for name, value in (("--impl", implementation), ("--backend", backend))
                 if name in kind["cell"] for opt in (name, value)]
    if model is not None:
        args += ["--model", model, *shlex.split(_fill(part.models.get(model, part.models.get("*", "")), fields))]
    step_args = step.smallest if smallest and step.smallest is not None else step.args
    args += shlex.split(_fill(step_args, fields)) + shlex.split(_fill(variant.args, fields))
    if smallest:
        args = _smallest(args)
    relative = _fill(step.out, fields) if kind["out"] else None
    out = str(PurePath(directory, relative)) if relative is not None else None
    if out is not None:
        args += ["--out", out]
    if extra and kind["argv"][:2] == ("-m", "twinbench"):
        args += list(extra)
    stdout = str(PurePath(directory, _fill(step.stdout, fields))) if step.stdout else None
    env_vars = {"KERAS_BACKEND": backend or env, **{k: _fill(v, fields) for k, v in variant.env.items()}}
    key = " | ".join(str(x) for x in (part.name, round_number, label, model, variant.name, step.command, index,
                                                 relative or step.stdout))
    return Run(key=key, part=part.name, round=round_number, env=env, label=label, model=model,
               variant=variant.name, command=step.command, args=tuple(args), out=out, stdout=stdout,
               env_vars=env_vars)


