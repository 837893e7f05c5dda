"""Which threads a run had and what else ran beside it: the record's ``threads`` (framework-neutral).

On a small machine the ratios between implementations move with how the cores are shared, so every record says:
each framework pool's size as the framework reports it (``runner.describe_threads()``, from ``backends``), the
OpenMP/MKL variables, the input pipeline's workers, the profiler's sampler thread, the CPUs the process may run on
(``--cpus``), how many Python and native threads were alive during the run, and the other processes that used more
than ``BUSY_PERCENT`` of a CPU while it ran (next to the load averages in ``host_load``).
"""

from __future__ import annotations

import os
import threading

import psutil

BUSY_PERCENT = 5.0  # another process above this share of one CPU over the run is listed
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def minor_page_faults() -> int | None:
    """The minor page faults this process has taken so far (every thread; ``getrusage``), None where the OS has no
    ``resource`` module. Per step, they show how often an allocator hands memory back to the OS and touches fresh
    pages again: glibc's malloc does it for large buffers depending on the process's history, which makes the same
    step take a different time in two processes (docs/overhead.md)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class ThreadCensus:
    """Counts threads while a run goes on (``sample``) and other processes' CPU over the whole run.

    ``start()`` before the run, ``sample()`` during it (the runners' epoch ends, the throughput clock's edges),
    ``finish(...)`` after it returns the record's ``threads``.
    """

    def __init__(self):
        self.python_threads: set[str] = set()
        self.python_max = 0
        self.native_max = 0
        self._others: dict[int, psutil.Process] = {}

    def start(self) -> ThreadCensus:
        """Start measuring the other processes' CPU (psutil's first ``cpu_percent`` call) and take a first sample."""
        me = os.getpid()
        for process in psutil.process_iter(["name"]):
            if process.pid == me:
                continue
            try:
                process.cpu_percent(None)
                self._others[process.pid] = process
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self.sample()
        return self

    def sample(self) -> None:
        """Note the threads alive now: Python's (by name, numbers left out) and the process's native ones."""
        alive = threading.enumerate()
        self.python_max = max(self.python_max, len(alive))
        self.python_threads |= {thread.name.rstrip("0123456789").rstrip("-_ ") or thread.name for thread in alive}
        self.native_max = max(self.native_max, psutil.Process().num_threads())

    def busy_others(self) -> list[dict]:
        """Other processes above ``BUSY_PERCENT`` of one CPU since ``start()``, busiest first."""
        busy = []
        for pid, process in self._others.items():
            try:
                percent = process.cpu_percent(None)
                if percent > BUSY_PERCENT:
                    busy.append({"pid": pid, "name": process.info.get("name"), "cpu_percent": round(percent, 1)})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return sorted(busy, key=lambda p: -p["cpu_percent"])

    def finish(self, *, pools: dict, requested: int | None, cpus: str, sampler: dict) -> dict:
        """The record's ``threads``.

        Args:
            pools: ``runner.describe_threads()``: the framework's pools and the input pipeline's workers.
            requested: ``--threads`` (None: the frameworks' own choice).
            cpus: ``--cpus`` (``"free"``: the CPUs the process was given).
            sampler: ``{"enabled": bool, "interval_s": float}``: the profiler's sampler thread.
        """
        self.sample()
        return {
            "requested": requested,
            "pools": pools,
            "env": {name: os.environ.get(name) for name in ENV_VARS},
            "sampler": sampler,
            "cpus": {"layout": cpus, "affinity": sorted(os.sched_getaffinity(0))},
            "python_threads": {"max_alive": self.python_max, "names": sorted(self.python_threads)},
            "native_threads_max": self.native_max,
            "other_processes": self.busy_others(),
        }


class SamplingEvents:
    """The profiler's ``mark``/``window`` interface that also takes a ``ThreadCensus`` sample at every mark."""

    def __init__(self, events, census: ThreadCensus):
        self.events, self.census = events, census

    def mark(self, name, **info):
        self.census.sample()
        return self.events.mark(name, **info)

    def window(self, *args, **kwargs):
        return self.events.window(*args, **kwargs)
