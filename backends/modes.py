"""How a cell runs: its execution mode (``Mode``: compilation, precision, layouts) and on how many replicas
(``Replication``), each with the default that means what twinbench does without the option, and the tables of
which implementation has which knob. The runners apply them (``twinbench.backends``); the cell names them
(``twinbench.cell``). It imports no framework.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinbench.backends.environments import implementation_label
from twinbench.models import check_choice
from twinbench.models.choices import UnknownChoiceError


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
