"""Where a result came from: machine, GPU, package versions, thread settings and git commit.

Every result record carries ``collect_environment()`` so that two numbers are only ever compared
knowing whether they came from the same machine, driver, framework versions and thread settings.

This module never imports a framework: versions are read from the installed package metadata with
``importlib.metadata``, which is cheap and cannot change how a framework starts (importing ``keras``
here would fix ``KERAS_BACKEND`` for the rest of the process). Runtime settings that need the
framework itself (the resolved Keras backend, ``jit_compile``, TF32, allocator peaks) are added by
``backends/``.

Caveats: ``versions`` says what is *installed* in this environment, not what a given process
imported; ``cpu_count_logical`` is the machine's count, while ``cpu_affinity`` is how many cores this
process may actually use (smaller inside containers or under ``taskset``).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

import psutil

from twinbench.measuring.profiler import gpu_info

# Distribution names as pip knows them (``tf-keras``, not ``tf_keras``; ``nvidia-ml-py``, not ``pynvml``).
PACKAGES = (
    "numpy",
    "keras",
    "torch",
    "torchvision",
    "tensorflow",
    "tf-keras",
    "jax",
    "jaxlib",
    "nvidia-ml-py",
    "psutil",
)

# The C allocator's settings: glibc's malloc reads these at start-up (the study malloc), or another allocator
# is preloaded; they decide how many page faults a step takes (docs/overhead.md).
ALLOCATOR_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX", "LD_PRELOAD")

# Environment variables that change threading, memory or compilation behaviour.
ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "XLA_FLAGS",
    "KERAS_BACKEND",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    *ALLOCATOR_VARS,
)

REPO_DIR = Path(__file__).resolve().parents[2]


def package_version(distribution: str) -> str | None:
    """Installed version of a distribution (e.g. ``"tf-keras"``), or ``None`` if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str | None:
    """The CPU's marketing name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# The CPU's vector extensions that decide which kernels the frameworks run (oneDNN, XLA, Eigen pick by them): the same
# model's float32 results and step times differ between an AVX2 machine and an AVX-512 one.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16",
              "amx_tile", "neon", "asimd", "sve")


def cpu_simd() -> list[str] | None:
    """Which of ``SIMD_FLAGS`` the CPU has, from ``/proc/cpuinfo``'s flags (Linux; ``Features`` on ARM), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("flags", "features")):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in SIMD_FLAGS if flag in present]
    except OSError:
        pass
    return None


def _cpu_affinity() -> int | None:
    """How many cores this process may run on (None where the OS does not say)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def git_state(repo_dir: str | os.PathLike = REPO_DIR) -> dict | None:
    """``{"commit": <sha>, "dirty": <bool>}`` for the checkout at ``repo_dir``.

    ``dirty`` is True when ``git status --porcelain`` lists anything (modified or untracked files).
    Returns ``None`` when git is missing or ``repo_dir`` is not a git checkout.
    """

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None


def collect_environment(*, repo_dir: str | os.PathLike = REPO_DIR) -> dict:
    """Describe the machine, GPU, package versions, thread settings and git commit; JSON-serialisable.

    Returns:
        ``{"timestamp_utc", "machine", "gpu", "versions", "env", "git"}`` where ``machine`` holds
        ``hostname, platform, machine, cpu_model, cpu_simd, cpu_count_logical, cpu_count_physical,
        cpu_affinity, ram_bytes``; ``gpu`` is ``gpu_info()`` (None without NVML); ``versions`` maps
        ``python`` and each of ``PACKAGES`` to a version string or None; ``env`` maps each of
        ``ENV_VARS`` to its value or None; ``git`` is ``git_state()``.
    """
    versions = {"python": platform.python_version()}
    versions.update({name: package_version(name) for name in PACKAGES})
    return {
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_model": cpu_model(),
            "cpu_simd": cpu_simd(),
            "cpu_count_logical": psutil.cpu_count(logical=True),
            "cpu_count_physical": psutil.cpu_count(logical=False),
            "cpu_affinity": _cpu_affinity(),
            "ram_bytes": int(psutil.virtual_memory().total),
        },
        "gpu": gpu_info(),
        "versions": versions,
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "git": git_state(repo_dir),
    }


LAUNCHER_ENV = "TWINBENCH_LAUNCHER"  # set by the matrix launcher that started this cell (twinbench.measuring.children)
# Set by twinbench.measuring.alternate for each process it starts: that process's slot in an A,B,B,A sequence (JSON).
ALTERNATION_ENV = "TWINBENCH_ALTERNATION"


def alternation_slot() -> dict | None:
    """This process's place in an alternated sequence (``twinbench.measuring.alternate``), or ``None`` when it was
    not started by one; the throughput record keeps it as ``record["alternation"]``."""
    text = os.environ.get(ALTERNATION_ENV)
    if not text:
        return None
    try:
        slot = json.loads(text)
    except ValueError:
        return None
    return slot if isinstance(slot, dict) else None


def launcher_of(runner) -> dict:
    """How this run was started: by which matrix launcher (``local`` or ``submitit``, with its Slurm job id), and
    which engine ran its replicas with how many processes or devices (``twinbench.backends.distributed``)."""
    replicas = runner.replicas
    return {"matrix": os.environ.get(LAUNCHER_ENV, "local"), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "cell": replicas.launcher or "single process", "engine": replicas.engine or "single device",
            "world_size": replicas.world_size}
