"""A cell: the identity of one run.

A cell is model x implementation x backend x dataset, plus the axes that further runs will vary (compilation,
precision, data layout, device count). Each axis has a default that means what twinbench does today, so a
record that does not name an axis ran with its default. Everything that names, orders, files or selects
cells asks this module: the label ("keras[torch]"), the file id, the sort order, the command-line options.
Which environment runs which (implementation, backend), and their order, is ``twinbench.backends.environments``;
the execution mode and the replicas are ``twinbench.backends.modes``.

This module imports no framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twinbench.backends.environments import BACKENDS, ENVIRONMENTS, implementation_label, order
from twinbench.backends.modes import DEFAULT_MODE, MODE_CHOICES, SINGLE, Mode, Replication
from twinbench.models import IMPLEMENTATIONS, check_choice, get_model_spec
from twinbench.models.choices import UnknownChoiceError

# The axes beyond the first four, with the default that means today's behaviour. A record, a label and a
# file id name an axis only where a cell leaves its default.
AXES = {
    **dataclasses.asdict(DEFAULT_MODE),
    **dataclasses.asdict(SINGLE),  # replicas: devices one step runs on
    "feed": "native",  # how a throughput run feeds its batches (twinbench.backends.base.FEEDS; --feed)
    "cpus": "free",  # CPUs the process is pinned to (--cpus 0, 0,1); free: whatever it was given
    "process": "own",  # own: the cell ran alone in its process; shared: interleaved with its environment's other cell
    "allocator": "system",  # the C allocator's settings (twinbench.backends.allocator; --allocator): system (as started), tuned
}


def add_mode_arguments(parser) -> None:
    """``--jit``, ``--precision``, ``--data-format``, ``--memory-format``: the cell's execution mode."""
    helps = {"jit": "compile: default (the framework's own), off, on (torch.compile / XLA / jax.jit)",
             "precision": "float32 (TF32 off), tf32 (GPU), mixed_bfloat16, mixed_float16",
             "data_format": "image layout of the Keras definition (keras only)",
             "memory_format": "tensor layout of the PyTorch twin (torch only)"}
    for name, choices in MODE_CHOICES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=choices, default=AXES[name],
                            help=f"{helps[name]} (default {AXES[name]})")


def mode_of(args) -> Mode:
    """The ``Mode`` of parsed ``add_mode_arguments`` options."""
    return Mode(**{name: getattr(args, name) for name in MODE_CHOICES})


def add_replication_arguments(parser) -> None:
    """``--replicas N`` and ``--sync-batchnorm``: data-parallel training (``docs/cluster.md``)."""
    parser.add_argument("--replicas", type=int, default=AXES["replicas"],
                        help="data-parallel replicas; --batch-size stays the global batch (torch: DDP through "
                             "torchrun; keras[jax]: keras.distribution.DataParallel; tf_keras, keras[tensorflow]: "
                             "MirroredStrategy; on a CPU: N host devices)")
    parser.add_argument("--sync-batchnorm", action="store_true",
                        help="BatchNorm statistics over the global batch (SyncBatchNorm, synchronized=True)")


def replication_of(args) -> Replication:
    """The ``Replication`` of parsed ``add_replication_arguments`` options."""
    return Replication(replicas=args.replicas, sync_batchnorm=args.sync_batchnorm)




@dataclass(frozen=True)
class Cell:
    """One run's identity. ``Cell.of(record)`` reads it back from a record."""

    model: str
    implementation: str
    backend: str
    dataset: str = "digits"
    jit: str = AXES["jit"]
    precision: str = AXES["precision"]
    data_format: str = AXES["data_format"]
    memory_format: str = AXES["memory_format"]
    replicas: int = AXES["replicas"]
    sync_batchnorm: bool = AXES["sync_batchnorm"]
    feed: str = AXES["feed"]
    cpus: str = AXES["cpus"]
    process: str = AXES["process"]
    allocator: str = AXES["allocator"]

    @property
    def pair(self) -> tuple[str, str]:
        """``(implementation, backend)``: the cell without its model, dataset and axes."""
        return self.implementation, self.backend

    @property
    def mode(self) -> Mode:
        """The cell's execution mode (its axes but the device count)."""
        return Mode(**{name: getattr(self, name) for name in MODE_CHOICES})

    @property
    def replication(self) -> Replication:
        """On how many replicas the cell runs."""
        return Replication(replicas=self.replicas, sync_batchnorm=self.sync_batchnorm)

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
        axes = " ".join(f"{name}={value}" for name, value in self.axes.items())
        return " ".join(filter(None, [implementation_label(self.implementation, self.backend), axes]))

    @property
    def file_id(self) -> str:
        """The file stem of the cell's records, e.g. ``cifar_cnn__keras__jax__digits`` (axes appended)."""
        parts = [self.model, self.implementation, self.backend, self.dataset]
        parts += [f"{name}-{value}" for name, value in self.axes.items()]
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

    @classmethod
    def of(cls, record_or_cell: dict) -> Cell:
        """The cell of a record (or of a record's ``cell`` dict); absent axes take their defaults."""
        cell = record_or_cell.get("cell", record_or_cell)
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in cell.items() if key in names})


def environment_cells(env: str, model: str, *, dataset: str = "digits", mode: Mode = DEFAULT_MODE,
                      replication: Replication = SINGLE) -> list[Cell]:
    """The cells environment ``env`` runs for ``model`` in ``mode``: those it has a builder for (keras.applications
    variants have no torch twin) and that have every axis ``mode`` sets (``--memory-format`` only the PyTorch twin)
    and a data-parallel engine where ``replication`` asks for one."""
    check_choice("environment", env, ENVIRONMENTS)
    spec = get_model_spec(model)
    if not spec.builds_in(env):  # keras-hub's models: the tensorflow environment only
        return []
    builders = spec.builders
    cells = []
    for implementation, backend in ENVIRONMENTS[env]:
        if implementation not in builders:
            continue
        try:
            mode.check(implementation)
            replication.check(implementation, backend)
        except UnknownChoiceError:
            continue
        cells.append(Cell(model, implementation, backend, dataset, **dataclasses.asdict(mode),
                          **dataclasses.asdict(replication)))
    return cells


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
