"""Faults a long matrix must survive: out-of-memory cells, and a hook to inject faults in tests.

Out of memory looks different in every framework (``torch.OutOfMemoryError``, TensorFlow's
``ResourceExhaustedError``, JAX's ``XlaRuntimeError: RESOURCE_EXHAUSTED``, Python's ``MemoryError``);
``is_out_of_memory`` recognises all of them without importing any framework.

``TWINBENCH_INJECT_FAULT`` lets tests provoke faults inside a real run (in a child process, where
monkeypatching cannot reach): ``oom`` raises an out-of-memory error, ``oom-above:N`` only while the batch
size is above N, ``hang`` sleeps (so a test can kill the process mid-matrix), ``crash`` exits hard.
An optional ``@MODEL`` suffix limits it to one model, e.g. ``hang@mnist_cnn``; ``TWINBENCH_INJECT_FAULT_RANK=R`` to one rank
of a data-parallel cell (torchrun's ``RANK``). Unset in normal use.
"""

from __future__ import annotations

import os
import time

FAULT_ENV = "TWINBENCH_INJECT_FAULT"
FAULT_RANK_ENV = "TWINBENCH_INJECT_FAULT_RANK"


class InjectedOutOfMemory(MemoryError):
    """The out-of-memory error ``TWINBENCH_INJECT_FAULT=oom`` raises."""


def is_out_of_memory(err: BaseException) -> bool:
    """True for any framework's out-of-memory error (GPU or host)."""
    if isinstance(err, MemoryError):
        return True
    name = type(err).__name__
    text = str(err)
    return name in ("OutOfMemoryError", "ResourceExhaustedError") or "RESOURCE_EXHAUSTED" in text or (
        "out of memory" in text.lower()
    )


def maybe_inject_fault(*, model: str, batch_size: int) -> None:
    """Raise, hang or crash here if ``TWINBENCH_INJECT_FAULT`` asks for it (tests only; several faults for different
    models are separated by commas, e.g. ``crash@cifar_cnn,hang@mnist_cnn``)."""
    only_rank = os.environ.get(FAULT_RANK_ENV)
    if only_rank is not None and os.environ.get("RANK", "0") != only_rank:
        return
    for spec in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        fault, _, only_model = spec.partition("@")
        if only_model and only_model != model:
            continue
        kind, _, arg = fault.partition(":")
        if kind == "oom" or (kind == "oom-above" and batch_size > int(arg)):
            raise InjectedOutOfMemory(f"injected out of memory at batch size {batch_size}")
        if kind == "hang":
            time.sleep(3600)
        if kind == "crash":
            os._exit(70)
