"""How busy the machine was during a timed window, from the kernel's own accounting (framework-free).

A window timed while other processes took the CPUs measures them as much as the implementation: on a 2-core VM a
``yes > /dev/null`` beside a run makes a cell several times slower, and a per-process sampler that looks every 1/6 s
misses short-lived processes altogether. The kernel counts everything, so each window takes a ``snapshot`` at its two
edges (outside the timed interval: ``StepClock``'s ``on_edge``) and ``window`` takes their difference:

- ``run_queue_wait_s``: how long this process's threads were runnable but waiting for a CPU (field 2 of
  ``/proc/self/task/<tid>/schedstat``, ns, summed over the threads alive at the end; a thread that ended inside the
  window takes its waiting with it, so this is a lower bound);
- ``others_cpu_s``: the CPU time everything else took on the CPUs this process may run on: busy ticks of those CPUs'
  lines of ``/proc/stat`` (user, nice, system, irq, softirq; guest time is already in user and nice) minus this
  process's own CPU time (``getrusage``). Only the CPUs in ``os.sched_getaffinity`` count, because a process on a
  CPU this one may not use takes nothing from it; where the per-CPU lines are missing, the machine's first line and
  ``os.cpu_count()``. The process's live child processes (input workers) count as others;
- ``steal_s``: time a hypervisor gave those CPUs to other guests (``steal`` ticks).

``/proc/stat`` counts in ticks of ``1 / os.sysconf("SC_CLK_TCK")`` s (10 ms): a window of half a second on two CPUs
is exact to about 2%. Shares are of the window's wall time times the CPUs counted.

A window is ``busy`` when other processes or a hypervisor took more than their ``*_LIMIT`` share of the CPUs. The
run-queue wait is recorded and shown but flags nothing by itself: on the quiet 2-core VM (``nox -s compare`` on a
fresh clone, 2026-12-07 04:33-04:38 UTC, nothing else running) TensorFlow's and JAX's own thread pools waited for
each other 23-85% of every window while others took at most 5% of the CPUs and steal at most 0.8%; PyTorch's
threads waited 0-10%. A process's threads queue behind each other whenever it runs more of them than there are
CPUs, so the wait alone cannot tell a busy machine from a busy process. The records keep every figure, so a window
can be judged again with other limits; how many flagged windows deny a ratio its verdict is
``twinbench.results.verdict``'s rule.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import resource  # Unix only
except ImportError:  # pragma: no cover - Windows
    resource = None

# A quiet 2-core VM flags no window (module docstring: others at most 5%, steal at most 0.8% in 50 training windows);
# a `yes > /dev/null` beside a run takes about half of two CPUs.
OTHERS_SHARE_LIMIT = 0.10  # other processes took more than 10% of the CPUs this process may use
STEAL_SHARE_LIMIT = 0.05  # a hypervisor stole more than 5% of those CPUs

PROC = Path("/proc")
SOURCE = ("kernel accounting: /proc/self/task/*/schedstat (run-queue wait), /proc/stat (busy and steal ticks of the "
          "CPUs this process may use) minus getrusage (this process's CPU)")


@dataclass(frozen=True)
class Snapshot:
    """The kernel's counters at one instant (``snapshot``)."""

    t: float  # perf_counter, s
    wait_ns: dict  # thread id -> run-queue wait so far, ns
    own_cpu_s: float  # this process's user + system CPU time so far (all its threads)
    busy_ticks: int  # busy ticks of the CPUs counted, since boot
    steal_ticks: int
    cpus: int  # how many CPUs the ticks are of
    cpus_from: str  # "affinity" (the CPUs this process may use) or "machine" (the first line of /proc/stat)


def snapshot(proc: Path | None = None) -> Snapshot | None:
    """The counters now, or ``None`` where the kernel does not offer them (no ``/proc``: not Linux; see ``why_not``).

    ``proc``: where ``/proc`` is (default ``PROC``; tests pass a folder of fake files)."""
    proc = PROC if proc is None else proc
    if resource is None:
        return None
    try:
        stat = (proc / "stat").read_text()
        wait_ns = {}
        for task in (proc / "self" / "task").iterdir():
            try:
                wait_ns[task.name] = int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended while we looked
        busy, steal, cpus, cpus_from = _ticks(stat, _affinity())
    except (OSError, KeyError, ValueError):  # no /proc, or a /proc/stat without its "cpu" line
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(t=time.perf_counter(), wait_ns=wait_ns, own_cpu_s=usage.ru_utime + usage.ru_stime,
                    busy_ticks=busy, steal_ticks=steal, cpus=cpus, cpus_from=cpus_from)


def why_not(proc: Path | None = None) -> str | None:
    """Why ``snapshot`` returns ``None`` here, in words (``None`` when it works)."""
    proc = PROC if proc is None else proc
    if not (proc / "stat").exists():
        return f"no {proc / 'stat'}: the kernel's accounting is Linux's (contention not recorded)"
    if not (proc / "self" / "task").is_dir():
        return f"no {proc / 'self' / 'task'}: no per-thread scheduler statistics (contention not recorded)"
    if resource is None:
        return "no resource module: this process's CPU time is unknown (contention not recorded)"
    return None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _ticks(stat: str, affinity: set[int] | None) -> tuple[int, int, int, str]:
    """``(busy ticks, steal ticks, CPUs, "affinity" | "machine")`` from ``/proc/stat``'s text.

    Fields after the name: user nice system idle iowait irq softirq steal guest guest_nice (older kernels: fewer)."""
    lines = {}
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu"):
            lines[name] = [int(x) for x in fields] + [0] * (8 - len(fields))

    def busy_and_steal(fields):
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        return user + nice + system + irq + softirq, steal

    if affinity and all(f"cpu{cpu}" in lines for cpu in affinity):
        pairs = [busy_and_steal(lines[f"cpu{cpu}"]) for cpu in affinity]
        return sum(b for b, _ in pairs), sum(s for _, s in pairs), len(affinity), "affinity"
    busy, steal = busy_and_steal(lines["cpu"])
    return busy, steal, os.cpu_count() or 1, "machine"


def window(start: Snapshot | None, end: Snapshot | None, *, clock_ticks: int | None = None) -> dict | None:
    """What the kernel counted between two snapshots: the record's ``contention`` of one window.

    Returns ``None`` when either snapshot is missing, else ``wall_s, run_queue_wait_s, others_cpu_s, steal_s, cpus,
    others_share`` (of the CPUs counted), ``wait_share`` (of the window), ``steal_share``, ``busy`` and ``reasons``
    (which limits were exceeded: ``others``, ``steal``; the wait is shown, not judged: module docstring). ``clock_ticks``: ticks per second (default:
    ``SC_CLK_TCK``)."""
    if start is None or end is None:
        return None
    hz = clock_ticks or os.sysconf("SC_CLK_TCK")
    wall = max(end.t - start.t, 1e-9)
    wait = sum(max(ns - start.wait_ns.get(tid, 0), 0) for tid, ns in end.wait_ns.items()) / 1e9
    machine = (end.busy_ticks - start.busy_ticks) / hz
    others = max(machine - (end.own_cpu_s - start.own_cpu_s), 0.0)  # ticks are coarse: a little below 0 is 0
    steal = max(end.steal_ticks - start.steal_ticks, 0) / hz
    shares = {"others": others / (wall * end.cpus), "wait": wait / wall, "steal": steal / (wall * end.cpus)}
    reasons = [name for name, limit in (("others", OTHERS_SHARE_LIMIT), ("steal", STEAL_SHARE_LIMIT))
               if shares[name] > limit]
    return {"wall_s": round(wall, 6), "run_queue_wait_s": round(wait, 6), "others_cpu_s": round(others, 4),
            "steal_s": round(steal, 4), "cpus": end.cpus, "others_share": round(shares["others"], 4),
            "wait_share": round(shares["wait"], 4), "steal_share": round(shares["steal"], 4),
            "busy": bool(reasons), "reasons": reasons}


def run_summary(windows: list[dict | None], *, unavailable: str | None = None) -> dict:
    """The record's ``contention``: how many of a run's timed windows were flagged, the largest shares, the limits.

    ``windows``: each timed window's ``window`` dict (``None`` where it was not counted); ``unavailable``:
    ``why_not()``, said instead when nothing was counted."""
    counted = [w for w in windows if w is not None]
    if not counted:
        return {"unavailable": unavailable or "no window counted", "windows": len(windows), "flagged": None}
    return {
        "windows": len(counted),
        "flagged": sum(w["busy"] for w in counted),
        "max_others_share": max(w["others_share"] for w in counted),
        "max_wait_share": max(w["wait_share"] for w in counted),
        "max_steal_share": max(w["steal_share"] for w in counted),
        "cpus": counted[-1]["cpus"],
        "limits": {"others_share": OTHERS_SHARE_LIMIT, "steal_share": STEAL_SHARE_LIMIT},
        "source": SOURCE,
    }


class EpochContention:
    """The profiler's ``mark``/``window`` interface (``events`` in ``Runner.fit``) that also counts contention over
    each epoch's training window (``phase="train"``: from the epoch's synchronised start to its last synchronised
    step, the interval ``train_time_s`` times). ``epochs``: epoch -> ``window`` dict. The first snapshot falls just
    inside the epoch's interval (the runners open the window after its synchronised start, and ``backends`` stays
    free of measuring code): one ``/proc`` read per thread, 177 µs median (p90 195 µs) for a TensorFlow process of 8
    threads on the 2-core VM (2026-12-07, 200 snapshots, nothing else running), under 0.1% of a 0.3 s epoch; the
    last one falls after it."""

    def __init__(self, events, proc: Path | None = None):
        self.events, self.proc = events, proc
        self.epochs: dict[int, dict | None] = {}

    def mark(self, name, **info):
        return self.events.mark(name, **info)

    def window(self, name, **info):
        inner = self.events.window(name, **info)
        if info.get("phase") != "train" or "epoch" not in info:
            return inner
        return _Counted(inner, self, info["epoch"])

    def annotate(self, epochs: list[dict]) -> None:
        """Give each epoch dict (``EpochResult.as_dict()``) its ``contention`` (``None`` where not counted)."""
        for epoch in epochs:
            epoch["contention"] = self.epochs.get(epoch["epoch"])


class _Counted:
    """A window's context manager that snapshots on entering and leaving (outside the inner window's own work)."""

    def __init__(self, inner, owner: EpochContention, epoch: int):
        self.inner, self.owner, self.epoch, self.start = inner, owner, epoch, None

    def __enter__(self):
        entered = self.inner.__enter__()
        self.start = snapshot(self.owner.proc)
        return entered

    def __exit__(self, *exc):
        self.owner.epochs[self.epoch] = window(self.start, snapshot(self.owner.proc))
        return self.inner.__exit__(*exc)
