"""Everything framework-specific at run time lives in this package.

- choosing the Keras backend *before* ``keras`` is imported (one backend per process),
- one ``Runner`` per implementation (``torch``, ``tf_keras``, ``keras``): device, seeding, TF32, sync,
  memory counters, weight loading and the training loop written the way that framework's users write it.

``bench/`` talks to frameworks only through ``get_runner`` and the ``Runner`` interface in ``backends.base``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

from bench.cell import (  # cells, environments, modes
    BACKENDS,
    DEFAULT_MODE,
    NATIVE_BACKEND,
    SINGLE,
    Mode,
    Replication,
)
from models import IMPLEMENTATIONS
from models.choices import check_choice

# The Python packages an implementation/backend needs, and the extra that installs them.
_PACKAGES = {"torch": ["torch", "keras"], "tensorflow": ["tensorflow", "keras"], "jax": ["jax", "keras"]}


class BackendError(RuntimeError):
    """A backend that cannot be used in this process; the message says why and what to do, on one line."""


def resolve_backend(implementation: str, backend: str | None = None) -> str:
    """The backend an implementation runs on: fixed for native twins, chosen for ``keras``."""
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    if backend is not None:
        check_choice("backend", backend, BACKENDS)
    if implementation in NATIVE_BACKEND:
        native = NATIVE_BACKEND[implementation]
        if backend not in (None, native):
            raise BackendError(
                f"Implementation {implementation!r} runs on the {native} backend only. Received: backend={backend!r}."
            )
        return native
    if backend is None:
        backend = os.environ.get("KERAS_BACKEND") or next(
            (b for b in BACKENDS if importlib.util.find_spec(b) is not None), None
        )
        if backend is None:
            raise BackendError("No Keras backend is installed here: install one of twinbench[torch], [tensorflow], [jax].")
        check_choice("KERAS_BACKEND", backend, BACKENDS)
    return backend


def check_mode_here(mode: Mode, *, who: str, gpu: bool, compiler: bool = False) -> None:
    """Raise ``BackendError`` (one line, before any training) if ``who`` cannot run ``mode`` on this machine.

    (Every framework here trains in bfloat16 and float16 on a CPU too, float16 slowly: no check needed.)

    Args:
        gpu: whether a GPU runs the model (TF32 exists only there).
        compiler: whether ``--jit on`` needs a C++ compiler here (torch.compile's CPU code generator does).
    """
    if mode.precision == "tf32" and not gpu:
        raise BackendError("--precision tf32 cannot run here: TF32 is a GPU tensor-core format and no GPU runs "
                           f"{who} here. Available here: float32, mixed_bfloat16, mixed_float16.")
    if mode.jit == "on" and compiler and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise BackendError(f"--jit on cannot run here: {who} compiles with torch.compile, whose CPU code generator "
                           "needs a C++ compiler (g++), and none is installed. Available here: --jit default, off.")


def missing_packages(backend: str) -> list[str]:
    """Packages the backend needs that this environment lacks."""
    return [p for p in _PACKAGES[backend] if importlib.util.find_spec(p) is None]


def select_keras_backend(backend: str):
    """Make ``backend`` the Keras backend of this process and return the imported ``keras`` module.

    Must run before anything imports ``keras``: Keras reads ``KERAS_BACKEND`` once, at import time.
    Also switches off the frameworks' GPU memory preallocation so memory figures mean something.
    """
    check_choice("backend", backend, BACKENDS)
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise BackendError(
                f"keras was already imported with the {current!r} backend in this process; Keras cannot switch "
                f"backends at run time. Start a new process with KERAS_BACKEND={backend}."
            )
    env_backend = os.environ.get("KERAS_BACKEND")
    if env_backend and env_backend != backend:
        raise BackendError(
            f"KERAS_BACKEND={env_backend} in the environment disagrees with the requested backend {backend!r}: "
            f"unset KERAS_BACKEND or make them agree."
        )
    missing = missing_packages(backend)
    if missing:
        raise BackendError(
            f"The {backend} backend needs the package(s) {', '.join(missing)}, which this environment lacks: "
            f"pip install 'twinbench[{backend}]' (or run it through its nox session)."
        )
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would take 75% of GPU memory
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # TF would take all of it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.config.set_image_data_format("channels_last")  # the layout of twinbench's arrays and weights
    return keras


def limit_threads(threads: int) -> dict[str, str]:
    """Cap the CPU thread pools of every framework at ``threads``; call before any framework is imported.

    Frameworks read these settings once, when they start: OpenMP/MKL (PyTorch's intra-op pool),
    ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` (TensorFlow's two pools) and XLA's CPU flags
    (JAX). On a shared or small machine, thread pools larger than the free cores spin and wait on each
    other, which measures the scheduler, not the framework. Returns the variables it set.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1. Received: threads={threads}")
    frameworks = [name for name in ("torch", "tensorflow", "jax", "keras") if name in sys.modules]
    if frameworks:
        raise BackendError(f"limit_threads must run before {frameworks[0]} is imported: it reads these once.")
    settings = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
    }
    # XLA's CPU backend has no thread-count flag: one thread is `--xla_cpu_multi_thread_eigen=false`; more use its
    # Eigen pool (one thread per core). The old recipe's bare `intra_op_parallelism_threads=N` is not an XLA flag:
    # first in XLA_FLAGS, XLA takes it for a file name and aborts; after a flag, it ends XLA's reading of them.
    xla_flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "--xla_cpu_multi_thread_eigen" not in xla_flags:
        settings["XLA_FLAGS"] = f"{xla_flags} --xla_cpu_multi_thread_eigen=false".strip()
    os.environ.update(settings)
    return settings


def get_runner(implementation: str, backend: str | None = None, *, mode: Mode = DEFAULT_MODE,
               replication: Replication = SINGLE):
    """The ``Runner`` for ``implementation`` (on ``backend`` for the Keras 3 definition), running in ``mode``
    (``bench.cell.Mode``: compilation, precision, layout; ``runner.setup`` checks that this machine can) on
    ``replication``'s replicas (``backends.distributed``)."""
    backend = resolve_backend(implementation, backend)
    mode.check(implementation)
    replication.check(implementation, backend)
    from backends import distributed

    distributed.prepare_process(backend, replication)
    select_keras_backend(backend)  # every runner builds the Keras definition for the canonical weights
    replicas = distributed.start(implementation, backend, replication)
    if implementation == "torch":
        from backends.torch_runner import TorchRunner

        runner = TorchRunner()
    elif implementation == "tf_keras":
        from backends.tf_keras_runner import TfKerasRunner

        runner = TfKerasRunner()
    else:
        from backends.keras_runner import KerasRunner

        runner = KerasRunner(backend)
    runner.mode = mode
    runner.replicas = replicas
    return runner
