"""A cell: the identity of one run.

A cell is model x implementation x backend x dataset, plus the axes that further runs will vary (compilation,
precision, data layout, device count). Each axis has a default that means what twinbench does today, so a
record that does not name an axis ran with its default. Everything that names, orders, files or selects
cells asks this module: the label ("keras[torch]"), the file id, the sort order, the axes' declarations.
Which environment runs which (implementation, backend), and their order, is ``twinbench.backends.environments``;
the execution mode and the replicas are ``twinbench.backends.modes``.

An axis is one declaration: a field of ``Cell`` made by ``axis()`` (``twinbench.backends.modes.Axis``) with its
default, choices, help, the implementations that have it and the commands that take it. ``AXES`` (name -> default)
is read from the declarations; so are the command-line options and their checks (``twinbench.cli.options``), the
command line of a child process that runs a cell (``cell_argv``) and the ``config`` of a record (``CellConfig``).
The axes of the mode and the replicas are declared on ``Mode`` and ``Replication``, the types the runners receive,
and taken over here with ``same_axis``.

Adding an axis
--------------
One field of ``Cell``, e.g. a ``--fuse`` that only the PyTorch twin has, on the throughput command::

    fuse: str = axis("off", choices=("off", "on"), implementations=("torch",), commands=("throughput",),
                     help="fuse the optimizer step (torch only)")

Then ``twinbench throughput --fuse on`` parses and checks it, records and labels name it (``torch fuse=on``), an
``--env`` run hands it to its children, and ``throughput_config.cell.fuse`` reaches the code that applies it (the
runner, or ``apply=`` for a setting made before any framework starts, as ``cpus`` and ``allocator`` do).

This module imports no framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar

from twinbench.backends import FREE, cpu_list, pin_cpus
from twinbench.backends.allocator import ALLOCATORS, SYSTEM, apply_allocator, check_allocator
from twinbench.backends.base import COMPILE_MODES, FEEDS, STYLES
from twinbench.backends.environments import NATIVES, RUN_ENVIRONMENTS, implementation_label, order
from twinbench.backends.export import FORMATS
from twinbench.backends.modes import Axis, Mode, Replication, axes_of, axis, same_axis
from twinbench.backends.stacks import resolve_stack, stack_label
from twinbench.backends.what_if import CHOICES as WHAT_IF_CHOICES
from twinbench.backends.what_if import NONE as NO_WHAT_IF
from twinbench.backends.what_if import check_what_if_applies
from twinbench.models import check_choice, get_model_spec
from twinbench.models.choices import UnknownChoiceError

PHASES = ("train", "infer")  # what a breakdown profiles: training steps, inference calls


def _named_cpus(cpus: str) -> str:
    """``--cpus`` as the cell names it: ``"0,1"`` (sorted, checked against this machine's) or ``"free"``."""
    return ",".join(map(str, cpu_list(cpus))) or FREE


def _file_text(value) -> str:
    """An axis value as a file name may hold it: as it is where it is short and plain (``on``, ``0,1``,
    ``keras==3.10.0``), else its plain characters cut short and a hash of the whole (a stack's path)."""
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9._,=+-]{1,60}", text):
        return text
    return re.sub(r"[^A-Za-z0-9._,=+-]+", "_", text).strip("_")[-40:] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Cell:
    """One run's identity. ``Cell.of(record)`` reads it back from a record."""

    model: str
    implementation: str
    backend: str
    dataset: str = "digits"
    # How the model runs and on how many devices: declared with the runners' Mode and Replication.
    jit: str = same_axis(Mode, "jit")
    precision: str = same_axis(Mode, "precision")
    data_format: str = same_axis(Mode, "data_format")
    memory_format: str = same_axis(Mode, "memory_format")
    replicas: int = same_axis(Replication, "replicas")
    sync_batchnorm: bool = same_axis(Replication, "sync_batchnorm")
    # How the measured process is fed and set up.
    feed: str = axis("native", choices=FEEDS, commands=("throughput",),
                     help="native: the implementation's own input path (DataLoader, fit over a PyDataset/Sequence); "
                          "arrays: plain arrays (pre-sliced tensors; fit(x, y))")
    cpus: str = axis(FREE, metavar="LIST", resolve=_named_cpus, apply=pin_cpus,
                     help="run on these CPUs only, e.g. 0 or 0,1 (pinned before any framework starts; pinned and free "
                          "runs are different cells); free: the CPUs the process was given")
    process: str = axis("own", commands=(), recorded=("throughput",),
                        help="own: the cell ran alone in its process; shared: interleaved with its environment's "
                             "other cell; natives: the native twin interleaved with the other native twin in the "
                             "natives environment (twinbench.measuring.interleave)")
    allocator: str = axis(SYSTEM, choices=ALLOCATORS, resolve=check_allocator, apply=apply_allocator,
                          help="the C allocator's settings, applied before any framework starts: system (as the "
                               "process was started) or tuned (glibc keeps the memory it took: no page faults from "
                               "giving it back each step; backends/allocator.py)")
    # How an inference call is written (twinbench latency): the Keras call, or Keras' and tf.keras' predict methods.
    style: str = axis("call", choices=STYLES, implementations=("keras", "tf_keras"), commands=("latency", "breakdown"),
                      help="call: model(x, training=False) (torch: model.eval() and model(x) under "
                           "torch.inference_mode()); predict_on_batch, predict: Keras' and tf.keras' own")
    artifact: str = axis("none", choices=("none", *FORMATS), commands=("latency",),
                         help="none: the model as built; else the model exported in this format and run in the "
                              "format's own runtime (torch: torch.export, onnx: onnxruntime, tf_saved_model, jax: "
                              "jax.export; backends/export.py)")
    # What a breakdown profiles (twinbench breakdown): training steps or inference calls (in the cell's style).
    phase: str = axis("train", choices=PHASES, commands=("breakdown",),
                      help="train: steady-state training steps; infer: inference calls in the cell's --style, as "
                           "twinbench latency makes them (batch 1 is the latency cells' size)")
    # One Keras internal short-circuited for the run (backends/what_if.py): a what-if study's cell, never a default.
    what_if: str = axis(NO_WHAT_IF, choices=WHAT_IF_CHOICES, implementations=("keras",), commands=("breakdown",),
                        help="short-circuit one Keras internal for this run, outputs unchanged (backends/what_if.py): "
                             "none, " + ", ".join(WHAT_IF_CHOICES[1:]))
    # Which versions of the frameworks ran it: "" the project's pins, else a stack spec (backends/stacks.py).
    stack: str = axis("", metavar="SPEC", resolve=resolve_stack, show=stack_label,
                      help="the software stack where it is not the project's pins: NAME==VERSION or NAME@PATH (a "
                           "checkout or a wheel) joined by '+', e.g. keras==3.10.0; checked against what this "
                           "environment has installed (twinbench sweep and ab make its environment)")
    # Which torch.compile mode --jit on asks for (the PyTorch twin's forward pass in latency, its decode steps in
    # generate; backends/base.py's check_compile_mode).
    compile_mode: str = axis("default", choices=COMPILE_MODES, implementations=("torch",),
                             commands=("latency", "generate"),
                             help="torch.compile's mode under --jit on: default, max-autotune (autotuned kernels), "
                                  "reduce-overhead (CUDA graphs: GPU only)")

    @property
    def pair(self) -> tuple[str, str]:
        """``(implementation, backend)``: the cell without its model, dataset and axes."""
        return self.implementation, self.backend

    @property
    def mode(self) -> Mode:
        """The cell's execution mode (its axes but the device count)."""
        return Mode(**{name: getattr(self, name) for name in axes_of(Mode)})

    @property
    def replication(self) -> Replication:
        """On how many replicas the cell runs."""
        return Replication(**{name: getattr(self, name) for name in axes_of(Replication)})

    @property
    def environment(self) -> str:
        """The nox environment that runs this cell (named after its backend)."""
        return self.backend

    @property
    def axes(self) -> dict:
        """The axes this cell sets to other values than their defaults."""
        return {name: getattr(self, name) for name, default in AXES.items() if getattr(self, name) != default}

    @property
    def label(self) -> str:
        """``keras[torch]``, with any axis off its default: ``keras[torch] jit=on``."""
        axes = " ".join(CELL_AXES[name].text(value) for name, value in self.axes.items())
        return " ".join(filter(None, [implementation_label(self.implementation, self.backend), axes]))

    @property
    def file_id(self) -> str:
        """The file stem of the cell's records, e.g. ``cifar_cnn__keras__jax__digits`` (axes appended)."""
        parts = [self.model, self.implementation, self.backend, self.dataset]
        parts += [f"{name}-{_file_text(value)}" for name, value in self.axes.items()]
        return "__".join(parts)

    @property
    def sort_key(self) -> tuple:
        """By model, dataset, then torch, keras[torch], tf_keras, keras[tensorflow], keras[jax], then axes."""
        return (self.model, self.dataset, order(self.implementation, self.backend),
                tuple((name, str(value)) for name, value in self.axes.items()))

    def as_dict(self) -> dict:
        """The ``cell`` of a record: the four names, and the axes off their defaults."""
        return {"model": self.model, "implementation": self.implementation, "backend": self.backend,
                "dataset": self.dataset, **self.axes}

    def check_values(self) -> None:
        """Raise ``UnknownChoiceError`` (one line) for a value an axis does not take (``jit='xla'``, ``replicas=0``)."""
        for name, declared in CELL_AXES.items():
            if declared.choices is not None:
                check_choice(name.replace("_", "-"), getattr(self, name), declared.choices)
        self.replication  # noqa: B018  (its own checks: a positive count, --sync-batchnorm on several)

    def check_applies(self) -> None:
        """Raise ``UnknownChoiceError`` (one line) if an axis is off its default where the implementation has no such
        knob (``Axis.implementations``), the what-if patches another backend's code, or the replicas have no
        data-parallel engine to run on."""
        for name, value in self.axes.items():
            implementations = CELL_AXES[name].implementations
            if self.implementation not in implementations:
                raise UnknownChoiceError(f"{CELL_AXES[name].flag} applies to {' and '.join(implementations)} only, "
                                         f"not to {self.implementation}. Received: {name}={value!r}. Valid for "
                                         f"{self.implementation}: {CELL_AXES[name].default}.")
        check_what_if_applies(self.what_if, self.backend)
        self.replication.check(self.implementation, self.backend)

    @classmethod
    def of(cls, record_or_cell: dict) -> Cell:
        """The cell of a record (or of a record's ``cell`` dict); absent axes take their defaults."""
        cell = record_or_cell.get("cell", record_or_cell)
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in cell.items() if key in names})


# The cell's axes as declared, by name, in the order records, labels and file ids name them; and their defaults.
CELL_AXES: dict[str, Axis] = axes_of(Cell)
AXES = {name: declared.default for name, declared in CELL_AXES.items()}


def command_axes(command: str) -> dict[str, Axis]:
    """The axes ``command`` (``train``, ``throughput``, ``trace``) takes as options."""
    return {name: declared for name, declared in CELL_AXES.items() if command in declared.commands}


def cell_argv(cell: Cell, command: str) -> list[str]:
    """The options that name ``cell`` to ``python -m twinbench COMMAND`` in a child process: ``--model M --impl I
    --backend B`` (``--dataset D`` for ``train``; the others run on synthetic data) and every axis off its default."""
    argv = ["--model", cell.model, "--impl", cell.implementation, "--backend", cell.backend]
    argv += ["--dataset", cell.dataset] if command == "train" else []
    return argv + axes_argv(cell, command)


def axes_argv(cell: Cell, command: str) -> list[str]:
    """The options of ``cell``'s axes off their defaults, for ``python -m twinbench COMMAND`` (part of ``cell_argv``;
    an ``--env`` run's child names its cells by environment and takes these)."""
    argv = []
    options = command_axes(command)
    for name, value in cell.axes.items():
        if CELL_AXES[name].record_only:
            continue  # set by the run itself (process)
        if name not in options:
            raise ValueError(f"{command} has no option {CELL_AXES[name].flag}. Received: {name}={value!r}.")
        argv += [options[name].flag] if isinstance(value, bool) else [options[name].flag, str(value)]
    return argv


def environment_cells(env: str, model: str, *, dataset: str = "digits", **axes) -> list[Cell]:
    """The cells environment ``env`` runs for ``model`` with ``axes`` (e.g. ``jit="on"``): those it has a builder for
    (keras.applications variants have no torch twin), that have every axis set (``memory_format`` only the PyTorch
    twin) and a data-parallel engine where ``replicas`` asks for one. ``natives``
    (``twinbench.backends.environments.NATIVES``): the two native twins, both or none."""
    check_choice("environment", env, RUN_ENVIRONMENTS)
    spec = get_model_spec(model)
    pairs = RUN_ENVIRONMENTS[env]
    if not all(spec.builds_in(backend) for _, backend in pairs):  # keras-hub's models: the tensorflow environment only
        return []
    builders = spec.builders
    if env == NATIVES and not all(implementation in builders for implementation, _ in pairs):
        return []
    cells = []
    for implementation, backend in pairs:
        if implementation not in builders:
            continue
        cell = Cell(model, implementation, backend, dataset, **axes)
        cell.check_values()
        try:
            cell.check_applies()
        except UnknownChoiceError:
            continue
        cells.append(cell)
    return cells


@dataclass(frozen=True)
class CellConfig:
    """What the settings of every measuring run start with: the cell it runs. Each command's config (``RunConfig``,
    ``ThroughputConfig``, ``TraceConfig``, ``CostConfig``) adds its own fields (epochs, steps, repeats...).

    ``as_dict`` is the record's ``config``: the cell's names, the config's own fields and the axes its command records
    (those of the mode and the replicas as the ``mode`` and ``replication`` the runners receive).
    """

    cell: Cell
    command: ClassVar[str]  # the command that runs it, whose records' config carries its axes (Axis.records)
    dataset: ClassVar[str | None] = None  # the dataset every cell of the command runs on; None: the cell's own

    def __post_init__(self):
        if self.dataset is not None and self.cell.dataset != self.dataset:
            raise ValueError(f"{self.command} runs on {self.dataset} data. Received: dataset={self.cell.dataset!r}.")

    def as_dict(self) -> dict:
        """The record's ``config``: the run's settings, verbatim."""
        cell = self.cell
        names = {"model": cell.model, "implementation": cell.implementation, "backend": cell.backend}
        if self.dataset is None:  # a config names the dataset where the cell chooses one
            names["dataset"] = cell.dataset
        own = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "cell"}
        groups = {**dict.fromkeys(axes_of(Mode), "mode"), **dict.fromkeys(axes_of(Replication), "replication")}
        axes = {}
        for name, declared in CELL_AXES.items():
            if declared.records(self.command) and name in groups:
                axes[groups[name]] = dataclasses.asdict(getattr(cell, groups[name]))
            elif declared.records(self.command):
                axes[name] = getattr(cell, name)
        return {**names, **own, **axes}
