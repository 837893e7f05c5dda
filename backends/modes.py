"""How a cell runs: its execution mode (``Mode``: compilation, precision, layouts) and on how many replicas
(``Replication``), each with the default that means what twinbench does without the option, and the tables of
which implementation has which knob. The runners apply them (``twinbench.backends``); the cell names them
(``twinbench.cell``). It imports no framework.

Each of their fields is an *axis* of a cell, declared once here with ``axis()``: its default, its choices, its
help, the implementations that have it. ``twinbench.cell.Cell`` takes these declarations over for its own fields;
the command line, its checks and the command lines of child processes are generated from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from twinbench.backends.environments import implementation_label
from twinbench.models import IMPLEMENTATIONS, check_choice
from twinbench.models.choices import UnknownChoiceError

# The commands that measure a cell: an axis is one of their options unless its declaration says otherwise.
MEASURING = ("train", "throughput", "trace", "latency", "breakdown", "generate")


@dataclass(frozen=True)
class Axis:
    """One axis of a cell, as declared (``axis()``); ``twinbench.cell.CELL_AXES`` holds the cell's.

    Attributes:
        default: the value that means what twinbench did before the axis existed; a record, a label and a
            file id name the axis only where a cell leaves it.
        help: what the option does, for ``--help`` (the default is appended).
        choices: the values it takes; None for a free-form one (``parse`` and ``resolve`` check those).
        parse: turns the option's text into the value (argparse's ``type``), e.g. ``int``.
        metavar: the option's placeholder in ``--help`` for a free-form value (``LIST``).
        implementations: the implementations that have this knob; any other runs only at the default.
        commands: the commands that take it as an option, and whose records' ``config`` carry it; a child
            process started for one of their cells gets it on its command line. Empty: a *record-only* axis,
            which the run sets (``process``: the interleaving), never a user.
        recorded: commands whose records' ``config`` carry it without taking the option (a trace runs on
            one replica, and says so).
        resolve: checks a value on this machine before any framework starts and returns it as the cell
            names it (``--cpus 1,0`` -> ``"0,1"``); raises a one-line ``ValueError`` or ``RuntimeError``.
        apply: sets the value in this process before any framework is imported (pins the CPUs, tunes the
            allocator).
        show: how a label names a value off the default (``stack``: ``keras=3.10.0``); default ``name=value``.
        name: the field's name (``data_format``), filled in by ``axes_of``; its option is ``flag``.
    """

    default: object
    help: str
    choices: tuple | None = None
    parse: Callable | None = None
    metavar: str | None = None
    implementations: tuple[str, ...] = IMPLEMENTATIONS
    commands: tuple[str, ...] = MEASURING
    recorded: tuple[str, ...] = ()
    resolve: Callable | None = None
    apply: Callable | None = None
    show: Callable | None = None
    name: str = ""

    @property
    def flag(self) -> str:
        """The option: ``--data-format`` for ``data_format``."""
        return "--" + self.name.replace("_", "-")

    @property
    def record_only(self) -> bool:
        """Set by the run itself, never by an option (``process``)."""
        return not self.commands

    def text(self, value) -> str:
        """How a label names ``value``: ``jit=on``, or the declaration's ``show``."""
        return self.show(value) if self.show else f"{self.name}={value}"

    def records(self, command: str) -> bool:
        """Whether the ``config`` of ``command``'s records carries this axis."""
        return command in self.commands or command in self.recorded


def axis(default, *, help: str, **declaration) -> dataclasses.Field:
    """A dataclass field that is an axis of a cell: its ``default`` and the rest of its ``Axis``."""
    return dataclasses.field(default=default, metadata={"axis": Axis(default, help, **declaration)})


def axes_of(cls) -> dict[str, Axis]:
    """The axes a dataclass declares (``axis()`` fields), by name, in the order of its fields."""
    return {field.name: dataclasses.replace(field.metadata["axis"], name=field.name)
            for field in dataclasses.fields(cls) if "axis" in field.metadata}


def same_axis(cls, name: str) -> dataclasses.Field:
    """A field declared as ``cls``'s axis ``name`` (the cell takes over ``Mode``'s and ``Replication``'s)."""
    declared = axes_of(cls)[name]
    return dataclasses.field(default=declared.default, metadata={"axis": declared})


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

    jit: str = axis("default", choices=("default", "off", "on"),
                    help="compile: default (the framework's own), off, on (torch.compile / XLA / jax.jit)")
    precision: str = axis("float32", choices=("float32", "tf32", "mixed_bfloat16", "mixed_float16"),
                          help="float32 (TF32 off), tf32 (GPU), mixed_bfloat16, mixed_float16")
    data_format: str = axis("channels_last", choices=("channels_last", "channels_first"),
                            implementations=("keras",), help="image layout of the Keras definition (keras only)")
    memory_format: str = axis("contiguous", choices=("contiguous", "channels_last"),
                              implementations=("torch",), help="tensor layout of the PyTorch twin (torch only)")

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


# Read from the declarations above: each axis's values, and the axes only some implementations have (the Keras
# definitions' image layout, the PyTorch tensors' memory format).
MODE_CHOICES = {name: declared.choices for name, declared in axes_of(Mode).items()}
MODE_APPLIES_TO = {name: declared.implementations for name, declared in axes_of(Mode).items()
                   if declared.implementations != IMPLEMENTATIONS}
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

    replicas: int = axis(1, parse=int, commands=("train", "throughput"), recorded=("trace", "breakdown"),
                         help="data-parallel replicas; --batch-size stays the global batch (torch: DDP through "
                              "torchrun; keras[jax]: keras.distribution.DataParallel; tf_keras, "
                              "keras[tensorflow]: MirroredStrategy; on a CPU: N host devices)")
    sync_batchnorm: bool = axis(False, commands=("train", "throughput"), recorded=("trace", "breakdown"),
                                help="BatchNorm statistics over the global batch (SyncBatchNorm, "
                                     "synchronized=True)")

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
