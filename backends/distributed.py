"""Data parallelism on the engines users already run: torch DDP, ``keras.distribution``, ``tf.distribute``.

A cell with ``--replicas N`` (``twinbench.backends.modes.Replication``) trains each global batch of ``--batch-size`` samples on N
replicas, each taking an equal, consecutive shard of it (the split MirroredStrategy and a batch-sharded JAX array
make); only full global batches are trained (a partial last batch cannot be split evenly; ``drop_last`` in
``TrainConfig``). The engines:

- torch: ``torch.nn.parallel.DistributedDataParallel`` in N processes launched by ``torch.distributed.run``
  (torchrun), gloo on a CPU and nccl on GPUs; each rank reads its shard of the shared per-epoch order
  (``twinbench.data.order``), DDP averages the gradients in ``backward`` (PyTorch Distributed, Li et al. 2020,
  https://arxiv.org/abs/2006.15704). ``--sync-batchnorm``: ``torch.nn.SyncBatchNorm`` (GPUs only: PyTorch raises
  for CPU tensors).
- keras[jax]: ``keras.distribution.DataParallel`` over N devices (on a CPU: N host devices through XLA's
  ``--xla_force_host_platform_device_count``); batches are sharded arrays, so BatchNorm sees the global batch.
- keras[tensorflow] and tf_keras: ``tf.distribute.MirroredStrategy`` over N devices (on a CPU: N logical devices);
  model and optimizer are made in ``strategy.scope()``; ``--sync-batchnorm``: ``BatchNormalization(synchronized=True)``.
- keras[torch]: none in Keras 3.15 (``twinbench.backends.modes.NO_DATA_PARALLEL`` says why).

The runners call small hooks here (``scope``, ``after_build``, ``wrap``, ``shard``, ``mean``); everything else about
the engines lives in this module. A collective that waits longer than ``TWINBENCH_COLLECTIVE_TIMEOUT_S`` seconds (default
300) for a rank that died or hangs raises, so the cell ends as a failed record.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys

from twinbench.backends.modes import DATA_PARALLEL, SINGLE, Replication
from twinbench.backends.process import BackendError

TIMEOUT_ENV = "TWINBENCH_COLLECTIVE_TIMEOUT_S"
XLA_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def collective_timeout_s() -> float:
    """Seconds a collective waits for every rank before it fails the cell."""
    return float(os.environ.get(TIMEOUT_ENV, "300"))


def launched_rank() -> tuple[int, int] | None:
    """``(rank, world_size)`` in a process that torchrun started, else None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def needs_launcher(implementation: str, replication: Replication) -> bool:
    """True where this process must start the cell's ranks itself (torch DDP outside torchrun)."""
    return implementation == "torch" and replication.replicas > 1 and launched_rank() is None


def torchrun_command(replicas: int, bench_argv: list[str], *, python: str = sys.executable) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m bench ...``: one cell's ranks on this
    machine (``docs/cluster.md`` has the multi-node form)."""
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={replicas}",
            "--max-restarts=0", "-m", "twinbench", *bench_argv]


def check_launch(implementation: str, replication: Replication) -> None:
    """Raise ``BackendError`` (one line, before any rank starts) where this machine cannot run ``replication``:
    torch's SyncBatchNorm without a GPU."""
    if implementation == "torch" and replication.sync_batchnorm and launched_rank() is None:
        import torch

        if not torch.cuda.is_available():
            raise BackendError(SYNC_BATCHNORM_CPU)


SYNC_BATCHNORM_CPU = ("--sync-batchnorm cannot run torch here: torch.nn.SyncBatchNorm takes GPU tensors only (PyTorch "
                      "raises 'SyncBatchNorm expected input tensor to be on GPU' for CPU ones). Available here: "
                      "--replicas without --sync-batchnorm.")


def prepare_process(backend: str, replication: Replication) -> None:
    """What must happen before the framework is imported: N host devices for JAX on a CPU."""
    if replication.replicas > 1 and backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if XLA_DEVICES_FLAG not in flags:
            # First, so that no token XLA does not know can end its reading of the flags.
            os.environ["XLA_FLAGS"] = f"{XLA_DEVICES_FLAG}={replication.replicas} {flags}".strip()


class Replicas:
    """One replica: the default for every cell (all hooks are the identity)."""

    engine = None
    launcher = None
    rank = 0

    def __init__(self, replication: Replication = SINGLE):
        self.replication = replication

    @property
    def world_size(self) -> int:
        return self.replication.replicas

    def scope(self):
        """The context models and optimizers are made in."""
        return contextlib.nullcontext()

    def after_build(self, model) -> None:
        """Adjust a freshly built model (``--sync-batchnorm``)."""

    def wrap(self, module):
        """The module the training loop calls (torch: DDP around it)."""
        return module

    def shard(self, batch):
        """This process's share of a global batch (the engines that split batches themselves: all of it)."""
        return batch

    def mean(self, value):
        """The mean of ``value`` over the processes (one process: itself)."""
        return value

    def describe(self) -> dict | None:
        if self.replication == SINGLE:
            return None
        return {"engine": self.engine, "world_size": self.world_size, "launcher": self.launcher, "rank": self.rank,
                "sync_batchnorm": self.replication.sync_batchnorm, "devices": self.devices(),
                "collective_timeout_s": collective_timeout_s()}

    def devices(self) -> list[str]:
        return []

    def gpu_indices(self) -> list[int]:
        """The GPUs the replicas run on, as NVML numbers them (the profiler samples each); none on a CPU."""
        return []


class TorchDDP(Replicas):
    """torch DDP in a process that torchrun started: gloo on a CPU, nccl on GPUs (one GPU per rank)."""

    engine = DATA_PARALLEL[("torch", "torch")]
    launcher = "torchrun (torch.distributed.run)"

    def __init__(self, replication: Replication):
        import torch
        import torch.distributed as dist

        super().__init__(replication)
        launched = launched_rank()
        if launched is None:
            raise RuntimeError("torch DDP runs in processes started by torch.distributed.run (torchrun)")
        self.rank, world = launched
        if world != replication.replicas:
            raise RuntimeError(f"torchrun started {world} ranks for --replicas {replication.replicas}")
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.gpu = torch.cuda.is_available()
        if replication.sync_batchnorm and not self.gpu:
            raise BackendError(SYNC_BATCHNORM_CPU)
        if self.gpu:
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.gpu else "gloo",
                                    timeout=datetime.timedelta(seconds=collective_timeout_s()))
        self._ddp = {}

    def device(self):
        import torch

        return torch.device("cuda", self.local_rank) if self.gpu else torch.device("cpu")

    def devices(self):
        return [f"rank {r}: {'cuda:' + str(r) if self.gpu else 'cpu'}" for r in range(self.world_size)]

    def gpu_indices(self):
        """One GPU per rank on this node (rank 0 samples them all; a multi-node run samples its own node's)."""
        return list(range(int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size)))) if self.gpu else []

    def wrap(self, module):
        """DDP around ``module`` (made once; SyncBatchNorm swapped in first under ``--sync-batchnorm``)."""
        from torch import nn

        if id(module) not in self._ddp:
            if self.replication.sync_batchnorm:
                nn.SyncBatchNorm.convert_sync_batchnorm(module)
            self._ddp[id(module)] = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.local_rank] if self.gpu else None)
        return self._ddp[id(module)]

    def shard(self, batch):
        return self.replication.shard(batch, self.rank)

    def mean(self, value):
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world_size


_STRATEGIES: dict = {}  # device names -> the process's MirroredStrategy over them


class Mirrored(Replicas):
    """``tf.distribute.MirroredStrategy`` over N GPUs, or N logical CPU devices where there are fewer GPUs."""

    engine = DATA_PARALLEL[("keras", "tensorflow")]
    launcher = "in-process"

    def __init__(self, replication: Replication):
        import tensorflow as tf

        super().__init__(replication)
        n = replication.replicas
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) >= n:
            names = [f"/gpu:{i}" for i in range(n)]
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            configured = tf.config.get_logical_device_configuration(cpu)
            if configured is None:
                try:
                    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
                except RuntimeError as err:
                    raise RuntimeError(f"MirroredStrategy needs {n} logical CPU devices, configured before "
                                       f"TensorFlow starts: {err}") from None
            elif len(configured) < n:
                raise RuntimeError(f"TensorFlow already runs with {len(configured)} logical CPU devices; "
                                   f"--replicas {n} needs a new process")
            names = [f"/cpu:{i}" for i in range(n)]
        self.names = names
        # One strategy per process and device set: two strategies would number their collectives alike and mix them up.
        if tuple(names) not in _STRATEGIES:
            _STRATEGIES[tuple(names)] = tf.distribute.MirroredStrategy(devices=names)
        self.strategy = _STRATEGIES[tuple(names)]
        self.gpus = len(gpus) >= n

    def gpu_indices(self):
        return list(range(self.world_size)) if self.gpus else []

    def devices(self):
        return list(self.names)

    def scope(self):
        return self.strategy.scope()

    def after_build(self, model) -> None:
        if not self.replication.sync_batchnorm:
            return
        for layer in _layers(model):
            if "BatchNormalization" in type(layer).__name__:
                layer.synchronized = True
                if hasattr(layer, "fused"):  # tf.keras' fused kernel has no synchronised form
                    layer.fused = False


class KerasDataParallel(Replicas):
    """``keras.distribution.DataParallel`` over N JAX devices (host devices on a CPU)."""

    engine = DATA_PARALLEL[("keras", "jax")]
    launcher = "in-process"

    def __init__(self, replication: Replication):
        import jax
        import keras

        super().__init__(replication)
        available = jax.devices()
        if len(available) < replication.replicas:
            raise RuntimeError(f"--replicas {replication.replicas} needs {replication.replicas} JAX devices, this "
                               f"process has {len(available)} ({XLA_DEVICES_FLAG} must be set before JAX starts)")
        self.names = [f"{d.platform}:{d.id}" for d in available[:replication.replicas]]
        self.gpus = [d.id for d in available[:replication.replicas] if d.platform == "gpu"]
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=keras.distribution.list_devices()[:replication.replicas]))

    def devices(self):
        return list(self.names)

    def gpu_indices(self):
        return list(self.gpus)


def _layers(model):
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _layers(layer)
        else:
            yield layer


def start(implementation: str, backend: str, replication: Replication) -> Replicas:
    """The replicas of this process for one cell (after ``twinbench.backends.select_keras_backend``)."""
    if replication.replicas == 1:
        if backend == "jax" and "keras" in sys.modules:
            sys.modules["keras"].distribution.set_distribution(None)  # one device, whatever came before
        return Replicas()
    if implementation == "torch":
        return TorchDDP(replication)
    if backend == "tensorflow":
        return Mirrored(replication)
    return KerasDataParallel(replication)

