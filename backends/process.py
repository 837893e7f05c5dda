"""What a process settles before and around its framework: the Keras backend (chosen *before* ``keras`` is
imported, one per process), its thread pools and CPUs, whether this machine can run a mode, and the one error
(``BackendError``) that says, on one line, why something cannot run here.

The runners, the replicas (``twinbench.backends.distributed``) and the factory ``twinbench.backends.get_runner`` all
read it; ``twinbench.backends`` hands its names on. It imports a framework only inside the functions that report one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

from twinbench.backends.environments import BACKENDS, NATIVE_BACKEND
from twinbench.backends.modes import Mode
from twinbench.models import IMPLEMENTATIONS
from twinbench.models.choices import check_choice

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


def allow_native_frameworks_side_by_side() -> list[str]:
    """Make this process able to hold PyTorch and TensorFlow at once (the natives environment's interleaved native
    twins); call before ``torch`` imports ``triton`` (before any model is built). Returns what it did, for the
    record.

    Tried with torch 2.14.1 and tensorflow 2.21.0 in one virtualenv (CPU): ``import tensorflow`` then ``import torch``
    ends with a segmentation fault while ``torch._dynamo`` imports ``triton`` (its ``libtriton.so`` brings its own
    LLVM beside TensorFlow's), and ``import torch`` then ``import tensorflow`` ends with one too. With ``triton``
    unimportable, both orders import and train. Triton serves only
    ``torch.compile`` on a GPU, which an interleaved process refuses anyway (``--jit on``), so ``triton`` is marked
    unimportable here: ``import triton`` raises ``ImportError`` and PyTorch takes it as not installed.
    """
    triton = sys.modules.get("triton", False)
    if triton is None:
        return ["triton kept out of the process (its LLVM and TensorFlow's crash side by side)"]
    if triton is not False:
        return ["triton was imported before: left as it is"]
    sys.modules["triton"] = None  # import triton -> ImportError (see the docstring)
    return ["triton kept out of the process (its LLVM and TensorFlow's crash side by side)"]


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


FREE = "free"  # --cpus: whatever CPUs the process was given (twinbench.cell.AXES["cpus"])


def cpu_list(cpus: str) -> list[int]:
    """The CPUs of ``--cpus`` (``"0"``, ``"0,1"``; ``"free"``: none named), checked against those this machine lets
    the process use; an unknown CPU is a ``BackendError`` of one line naming the available ones."""
    if cpus == FREE:
        return []
    try:
        wanted = sorted({int(part) for part in cpus.split(",") if part.strip()})
    except ValueError:
        wanted = []
    available = sorted(os.sched_getaffinity(0))
    if not wanted or min(wanted) < 0:
        raise BackendError(f"--cpus takes CPU numbers separated by commas, e.g. 0 or 0,1 (or free). Received: "
                           f"--cpus {cpus}. Available here: {','.join(map(str, available))}.")
    missing = [cpu for cpu in wanted if cpu not in available]
    if missing:
        raise BackendError(f"--cpus {cpus}: this machine has no CPU {','.join(map(str, missing))} for this process. "
                           f"Available here: {','.join(map(str, available))}.")
    return wanted


def pin_cpus(cpus: str) -> list[int]:
    """Run this process (and the threads it starts later) on the CPUs of ``--cpus`` only; call before any framework
    is imported, like ``limit_threads``: thread pools size themselves from the CPUs they see when they start.
    ``"free"`` leaves the process as it was started. Returns the CPUs the process runs on now."""
    wanted = cpu_list(cpus)
    if wanted:
        frameworks = [name for name in ("torch", "tensorflow", "jax", "keras") if name in sys.modules]
        if frameworks:
            raise BackendError(f"pin_cpus must run before {frameworks[0]} is imported: its pools size themselves then.")
        os.sched_setaffinity(0, wanted)
    return sorted(os.sched_getaffinity(0))


def framework_threads(backend: str) -> dict:
    """The thread pools of ``backend``'s framework as the framework reports them (imports it: call after setup)."""
    if backend == "torch":
        import torch

        return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    if backend == "tensorflow":
        import tensorflow as tf

        cpus = len(os.sched_getaffinity(0))

        def pool(setting, variable):  # 0: TF's default, the env variable if set, else one thread per usable CPU
            if setting:
                return {"setting": setting, "resolves_to": setting, "from": "tf.config.threading"}
            if os.environ.get(variable):
                return {"setting": 0, "resolves_to": int(os.environ[variable]), "from": variable}
            return {"setting": 0, "resolves_to": cpus, "from": "TF's default: one per CPU this process may use"}

        return {"tf_intra_op": pool(tf.config.threading.get_intra_op_parallelism_threads(), "TF_NUM_INTRAOP_THREADS"),
                "tf_inter_op": pool(tf.config.threading.get_inter_op_parallelism_threads(), "TF_NUM_INTEROP_THREADS")}
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    return {"xla_flags": flags or None, "xla_cpu_multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false" not in flags,
            "xla_note": "XLA's CPU backend has no thread-count flag: one Eigen thread per CPU unless multi-thread is off",
            "jax_cpu_devices": len(jax.devices("cpu"))}


def keras_callback_threads(keras) -> dict:
    """Keras 3's thread for batch-end hooks: its ``CallbackList`` hands ``on_*_batch_end`` to a
    ``ThreadPoolExecutor`` when the backend says it is thread-safe (torch, jax; not tensorflow) and no callback
    overrides those hooks (twinbench's do not: ``twinbench.backends.keras_fit.StepClockCallback``); its threads start on
    demand, up to Python's default ``max_workers``."""
    safe = bool(getattr(keras.src.backend, "IS_THREAD_SAFE", False))
    return {"batch_end_in_thread_pool": safe, "max_workers": min(32, (os.cpu_count() or 1) + 4) if safe else 0}
