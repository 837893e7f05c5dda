"""The C allocator's settings for a measured process (``--allocator``): the ``allocator`` axis of a cell.

Every framework takes its tensors' host memory from the C library's ``malloc``. glibc's ``malloc`` gives freed memory
back to the operating system (it unmaps large blocks and trims the heap's top), and takes it again on the next step:
each page it hands back faults once more when it is touched again. How often that happens depends on the order of
a process's allocations, which differs between frameworks, between loops and from process to process: on the 2-core
development VM, PyTorch's cifar_cnn steps faulted 2300-8000 pages each in different processes and ran 17-35%
slower in the processes that faulted more (torch, keras[torch]), and TensorFlow's steps faulted ~17,000 pages each once a
``tf.data.Dataset.from_generator`` had run (docs/overhead.md, "Page faults"). That is noise in a framework
comparison: it is not the framework's overhead but the allocator's luck.

- ``system``: the process keeps the allocator it was started with (glibc's defaults, or whatever the environment
  set: ``MALLOC_*`` variables, an ``LD_PRELOAD``); what every record had before this axis existed.
- ``tuned``: glibc is told to keep what it took (``mallopt``, before any framework is imported): no trimming of a
  heap's top, ``malloc`` rather than ``mmap`` up to its largest threshold (32 MiB on 64-bit), 512 MiB of padding
  each time a heap grows. The same settings as the variables ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``
  and ``MALLOC_TOP_PAD_`` that the study ``malloc`` measured (the trim threshold capped at the largest value
  ``mallopt`` takes, 2 GiB, which no heap of these runs reaches). A block larger than 32 MiB is still mapped and
  unmapped each time (a large model's activations at a large batch).

PyTorch's own CPU tuning guide recommends the same for the same reason, with jemalloc or tcmalloc preloaded
(https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html, "Switch Memory allocator"); ``tuned`` needs no
library that the machine may lack. Records name the axis (``cell.allocator``) and the environment's allocator
variables (``environment.env``; ``twinbench.measuring.environment.ALLOCATOR_VARS``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

SYSTEM = "system"
TUNED = "tuned"
ALLOCATORS = (SYSTEM, TUNED)

# mallopt's parameter numbers (glibc's <malloc.h>) and the values of ``tuned``.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
TUNED_SETTINGS = {
    "M_TRIM_THRESHOLD": 2**31 - 1,  # never trim the heap's top (mallopt takes an int: 2 GiB is its largest)
    "M_MMAP_THRESHOLD": 32 * 2**20,  # glibc's largest on 64-bit: malloc, not mmap, for every block up to it
    "M_TOP_PAD": 512 * 2**20,  # grow a heap by half a GiB at a time
}
_PARAMETERS = {"M_TRIM_THRESHOLD": M_TRIM_THRESHOLD, "M_TOP_PAD": M_TOP_PAD, "M_MMAP_THRESHOLD": M_MMAP_THRESHOLD}
# Libraries that replace malloc when preloaded: glibc's mallopt would set nothing they use.
OTHER_MALLOCS = ("jemalloc", "tcmalloc", "mimalloc")


class AllocatorError(ValueError):
    """``--allocator`` cannot be applied in this process; one line naming the choices."""


def check_allocator(allocator: str) -> str:
    """``allocator`` if this process can apply it, else ``AllocatorError`` naming what can."""
    if allocator not in ALLOCATORS:
        raise AllocatorError(f"Unknown --allocator {allocator!r}; choose one of: {', '.join(ALLOCATORS)}.")
    if allocator == TUNED:
        libc, _ = platform.libc_ver()
        if libc != "glibc":
            raise AllocatorError(f"--allocator {TUNED} sets glibc's malloc, and this process runs on "
                                 f"{libc or 'another C library'}: use --allocator {SYSTEM}.")
        preloaded = [name for name in OTHER_MALLOCS if name in os.environ.get("LD_PRELOAD", "")]
        if preloaded:
            raise AllocatorError(f"--allocator {TUNED} sets glibc's malloc, but LD_PRELOAD replaces it with "
                                 f"{preloaded[0]}: use --allocator {SYSTEM} (the preloaded allocator is recorded).")
    return allocator


def apply_allocator(allocator: str) -> dict:
    """Set this process's allocator as ``--allocator`` says; call before any framework is imported (as
    ``twinbench.backends.pin_cpus``), so that the frameworks' start-up allocations are made under it too. Returns the settings
    applied (``{}`` for ``system``)."""
    if check_allocator(allocator) == SYSTEM:
        return {}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    for name, value in TUNED_SETTINGS.items():
        if libc.mallopt(_PARAMETERS[name], value) != 1:
            raise AllocatorError(f"glibc's mallopt refused {name}={value}: use --allocator {SYSTEM}.")
    return dict(TUNED_SETTINGS)
