"""A cell: the identity of one run, and the one table of which environment runs which cell.

A cell is model x implementation x backend x dataset, plus the axes that further runs will vary (compilation,
precision, data layout, device count). Each axis has a default that means what twinbench does today, so a
record that does not name an axis ran with its default. Everything that names, orders, files or selects
cells asks this module: the label ("keras[torch]"), the file id, the sort order, the command-line options
and ``ENVIRONMENTS``. Adding an axis is one field of ``Cell`` (and its default in ``AXES``).

This module imports no framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twinbench.models import IMPLEMENTATIONS, check_choice, get_model_spec
from twinbench.models.choices import UnknownChoiceError

# The nox environments (one virtualenv each: the frameworks' pins conflict) and the cells each one runs, as
# (implementation, backend) in the order of every table. An environment is named after its Keras backend.
ENVIRONMENTS = {
    "torch": (("torch", "torch"), ("keras", "torch")),
    "tensorflow": (("tf_keras", "tensorflow"), ("keras", "tensorflow")),
    "jax": (("keras", "jax"),),
}
BACKENDS = tuple(ENVIRONMENTS)
# Every (implementation, backend) twinbench runs, in table order: torch, keras[torch], tf_keras, ...
ORDER = tuple(pair for pairs in ENVIRONMENTS.values() for pair in pairs)
# The backend each native twin shares its process (and its environment) with.
NATIVE_BACKEND = {implementation: backend for implementation, backend in ORDER if implementation != "keras"}

# The execution mode: the axes of a cell that say *how* a model runs, each with the default that means what twinbench
# did before modes existed (eager or the framework's own default, full float32 with TF32 off, channels-last Keras
# definitions, contiguous PyTorch tensors). ``backends`` applies a mode; a record names an axis only where it
# leaves its default.
@dataclass(frozen=True)
class Mode:
    """How a cell runs: compilation, precision and memory layout (``python -m twinbench train --help``).

    Attributes:
        jit: ``default`` (each framework's own: eager PyTorch, Keras ``jit_compile="auto"``, tf.keras' plain
            ``tf.function``), ``off`` or ``on`` (``torch.compile``; Keras ``jit_compile=True``: torch.compile, XLA
            or ``jax.jit`` by backend; tf.keras: XLA). The record says what it resolved to.
        precision: ``float32`` (TF32 off everywhere), ``tf32`` (on everywhere; GPUs only), ``mixed_bfloat16`` or
            ``mixed_float16`` (Keras dtype policies; ``torch.autocast``, with a ``GradScaler`` for float16).
        data_format: the Keras definition's image layout (``keras.config.set_image_data_format``).
        memory_format: the PyTorch twin's tensor layout (``torch.channels_last`` or contiguous NCHW).
    """

    jit: str = "default"
    precision: str = "float32"
    data_format: str = "channels_last"
    memory_format: str = "contiguous"

    def __post_init__(self):
        for name, choices in MODE_CHOICES.items():
            check_choice(name.replace("_", "-"), getattr(self, name), choices)

    def check(self, implementation: str) -> None:
        """Raise ``UnknownChoiceError`` if an axis is set that ``implementation`` has no such knob for."""
        for name, implementations in MODE_APPLIES_TO.items():
            if getattr(self, name) != getattr(DEFAULT_MODE, name) and implementation not in implementations:
                raise UnknownChoiceError(
                    f"--{name.replace('_', '-')} applies to {' and '.join(implementations)} only, not to "
                    f"{implementation}. Received: {name}={getattr(self, name)!r}.")


MODE_CHOICES = {
    "jit": ("default", "off", "on"),
    "precision": ("float32", "tf32", "mixed_bfloat16", "mixed_float16"),
    "data_format": ("channels_last", "channels_first"),
    "memory_format": ("contiguous", "channels_last"),
}
# The axes only some implementations have: the Keras definitions' image layout, the PyTorch tensors' memory format.
MODE_APPLIES_TO = {"data_format": ("keras",), "memory_format": ("torch",)}
DEFAULT_MODE = Mode()


# Data parallelism: the engine each (implementation, backend) trains on over several replicas, the engines its users
# already run (``twinbench.backends.distributed`` drives them), and the reason where an implementation has none.
DATA_PARALLEL = {
    ("torch", "torch"): "torch DDP",
    ("tf_keras", "tensorflow"): "tf.distribute.MirroredStrategy",
    ("keras", "tensorflow"): "tf.distribute.MirroredStrategy",
    ("keras", "jax"): "keras.distribution.DataParallel",
}
NO_DATA_PARALLEL = {
    ("keras", "torch"): "Keras 3.15 has no distribution API for the torch backend (keras/src/backend/__init__.py "
                        "sets distribution_lib = None for torch; its torch DataParallel, keras-team/keras #23052 in "
                        "the tracking issue #23418, came after 3.15) and Keras' fit cannot train a model wrapped in "
                        "torch DDP (keras.io's PyTorch guide trains it with a hand-written torch loop, which is the "
                        "torch twin's path, not Keras')",
}
# The engines that keep BatchNorm statistics per replica unless told to synchronise them, and how they do it
# (keras[jax]'s sharded arrays make every statistic a global one already).
SYNC_BATCHNORM = {("torch", "torch"): "torch.nn.SyncBatchNorm",
                  ("tf_keras", "tensorflow"): "BatchNormalization(synchronized=True)",
                  ("keras", "tensorflow"): "BatchNormalization(synchronized=True)"}


@dataclass(frozen=True)
class Replication:
    """On how many replicas one step runs (``--replicas``, ``--sync-batchnorm``).

    Attributes:
        replicas: devices (processes for torch DDP) that each take an equal, consecutive shard of every batch;
            ``--batch-size`` stays the global batch, so a step over N replicas is the step over one at that batch.
        sync_batchnorm: BatchNorm statistics over the global batch, where the engine keeps them per replica.
    """

    replicas: int = 1
    sync_batchnorm: bool = False

    def __post_init__(self):
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise UnknownChoiceError(f"--replicas must be a positive integer. Received: replicas={self.replicas!r}.")
        if self.sync_batchnorm and self.replicas == 1:
            raise UnknownChoiceError("--sync-batchnorm needs --replicas 2 or more (one replica sees the whole batch).")

    def check(self, implementation: str, backend: str) -> None:
        """Raise ``UnknownChoiceError`` if ``implementation`` on ``backend`` cannot run on these replicas."""
        pair = (implementation, backend)
        label = implementation_label(implementation, backend)
        if self.replicas > 1 and pair not in DATA_PARALLEL:
            raise UnknownChoiceError(f"--replicas {self.replicas} cannot run {label}: "
                                     f"{NO_DATA_PARALLEL.get(pair, 'no data-parallel engine')}. Implementations "
                                     f"that can: {', '.join(implementation_label(*p) for p in DATA_PARALLEL)}.")
        if self.sync_batchnorm and pair not in SYNC_BATCHNORM:
            raise UnknownChoiceError(f"--sync-batchnorm applies to {', '.join(implementation_label(*p) for p in SYNC_BATCHNORM)} "
                                     f"only, not to {label}: its sharded arrays compute BatchNorm statistics over the "
                                     "global batch already.")

    def shard(self, batch, rank: int):
        """Replica ``rank``'s consecutive share of a global batch (the split MirroredStrategy and a sharded JAX
        array make): ``len(batch)`` must be a multiple of ``replicas``."""
        size = len(batch) // self.replicas
        return batch[rank * size:(rank + 1) * size]


SINGLE = Replication()

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


def implementation_label(implementation: str, backend: str) -> str:
    """``keras[jax]`` for the Keras 3 definition, the plain name for a native twin."""
    return f"keras[{backend}]" if implementation == "keras" else implementation


def order(implementation: str, backend: str) -> int:
    """The place of an (implementation, backend) in every table; unknown pairs go last."""
    pair = (implementation, backend)
    return ORDER.index(pair) if pair in ORDER else len(ORDER)


LABELS = tuple(implementation_label(*pair) for pair in ORDER)


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
