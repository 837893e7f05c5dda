"""What the report and its figures read from records: groups of comparable records, and the figures each record
has (step time, throughput, phases, curves, memory, timeline, machine), whichever way it was run.

Every function returns None (or ``MISSING``) when a record cannot say. Imports no framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from twinbench.backends.environments import implementation_label
from twinbench.cell import Cell
from twinbench.records import RecordError, latest_runs, read_timeline_file
from twinbench.results.decompose import DECOMPOSITION, decomposition
from twinbench.stats import summarize

MISSING = "missing"


@dataclass
class Group:
    """The records that are compared with each other: one kind of run of one model on one dataset."""

    kind: str  # "train" (twinbench train) or "throughput" (twinbench throughput)
    model: str
    dataset: str
    records: dict[str, dict] = field(default_factory=dict)  # label -> its latest run (ok if one is)
    runs: dict[str, list[dict]] = field(default_factory=dict)  # label -> every run (ok or failed)

    @property
    def title(self) -> str:
        kind = "" if self.kind == "train" else f" ({self.kind})"
        return f"{self.model} on {self.dataset}{kind}"

    @property
    def slug(self) -> str:
        return f"{self.model}__{self.dataset}" + ("" if self.kind == "train" else f"__{self.kind}")

    def ok(self) -> dict[str, dict]:
        return {label: r for label, r in self.records.items() if r.get("status") == "ok"}

    def ok_runs(self, label: str | None = None) -> list[dict]:
        """Every successful run of the cell ``label`` (of every cell: None): what pooled statistics use."""
        labels = [label] if label is not None else list(self.runs)
        return [r for name in labels for r in self.runs.get(name, []) if r.get("status") == "ok"]

    def status(self, label: str) -> str:
        """``ok``, ``failed: <reason>`` or ``missing``."""
        record = self.records.get(label)
        if record is None:
            return MISSING
        if record.get("status") == "ok":
            return "ok"
        return f"failed: {((record.get('error') or {}).get('message') or 'no reason recorded')[:80]}"


def label_of(record: dict) -> str:
    return Cell.of(record).label


def group_records(records: list[dict]) -> list[Group]:
    """Records by (kind, model, dataset); within a group, every run of each cell and its latest one."""
    groups: dict[tuple, Group] = {}
    for record in records:
        cell = record["cell"]
        key = (record.get("kind", "train"), cell["model"], cell["dataset"])
        groups.setdefault(key, Group(*key)).runs.setdefault(label_of(record), []).append(record)
    for record in latest_runs(records):
        cell = record["cell"]
        groups[(record.get("kind", "train"), cell["model"], cell["dataset"])].records[label_of(record)] = record
    return [groups[key] for key in sorted(groups)]


# ----------------------------------------------------------------------------------------------------------
# What each record says. Every function returns None when it cannot say.
# ----------------------------------------------------------------------------------------------------------

def _summary(samples):
    samples = [s for s in samples if s is not None and s > 0]
    return summarize(samples) if samples else None


def step_time(record: dict) -> tuple[dict | None, str]:
    """Seconds per training step as a ``twinbench.stats.summarize`` dict, and what its samples are."""
    timing = record.get("timing") or {}
    if isinstance(timing.get("steady_step_s"), dict):  # schema v2: windows of many steps, synced at the edges
        what = "per repeat" if record.get("kind") == "throughput" else f"per window of {timing.get('window_steps')} steps"
        return timing["steady_step_s"], f"steady-state step time, one sample {what}"
    epochs = (record.get("results") or {}).get("epochs") or []
    later = [e["train_time_s"] / e["steps"] for e in epochs[1:] if e.get("steps")]
    return _summary(later), "epoch training time / steps, one sample per epoch after the first"


def throughput(record: dict) -> dict | None:
    """Training images per second (``summarize`` dict)."""
    timing = record.get("timing") or {}
    if isinstance(timing.get("throughput_images_per_s"), dict):
        return timing["throughput_images_per_s"]
    epochs = (record.get("results") or {}).get("epochs") or []
    n = (record.get("dataset") or {}).get("train")
    return _summary(n / e["train_time_s"] for e in epochs[1:] if n and e.get("train_time_s"))


def window_step_times(record: dict) -> list[float]:
    """Seconds per step, one sample per timed window: a throughput record's repeats with the profiler on, a
    training record's windows within its epochs (none when it ran without timing windows)."""
    timing = record.get("timing") or {}
    if record.get("kind") == "throughput":
        return [r["step_s"] for r in timing.get("repeats") or [] if r.get("profiler")]
    window = timing.get("window_steps") or 0
    epochs = (record.get("results") or {}).get("epochs") or []
    return [t / window for e in epochs for t in e.get("window_times_s") or []] if window else []


def speed(runs: list[dict]) -> tuple[dict | None, dict | None, str]:
    """Step time and images per second (``summarize`` dicts) of a cell's successful runs, and what the samples
    are: one run's own figures, or the windows of several runs pooled (``twinbench.records``: how runs are pooled)."""
    pooled = [s for run in runs for s in window_step_times(run)]
    if len(runs) < 2 or len(pooled) < 2:
        summary, what = step_time(runs[-1])
        return summary, throughput(runs[-1]), what
    batch_size = (runs[-1].get("config") or {}).get("batch_size")
    rates = _summary(batch_size / s for s in pooled) if batch_size else None
    return _summary(pooled), rates, f"steady-state step time, one sample per window, {len(runs)} runs pooled"


def phase_times(record: dict) -> dict:
    """Seconds spent around the steady state: ``first_step`` (tracing/compilation; v2 only), ``first_epoch``,
    ``later_epochs`` (median), ``between_epochs`` (median: end of one epoch's training to the start of the
    next one's, evaluation included) and ``evaluation`` (median). Absent figures are None."""
    timing = record.get("timing") or {}
    epochs = (record.get("results") or {}).get("epochs") or []

    def median(value):
        return value.get("median") if isinstance(value, dict) else value

    if "epoch_time_s" in timing:  # schema v2 (twinbench.measuring.timing.train_timing)
        return {"first_step": timing.get("first_step_s"), "first_epoch": timing["epoch_time_s"].get("first"),
                "later_epochs": median(timing["epoch_time_s"].get("later")),
                "between_epochs": median(timing.get("epoch_gap_s")), "evaluation": median(timing.get("eval_time_s"))}
    gaps = [later["started_at"] - (earlier["started_at"] + earlier["train_time_s"])
            for earlier, later in zip(epochs, epochs[1:], strict=False)]
    summary = lambda values: summarize(values)["median"] if values else None  # noqa: E731
    return {"first_step": timing.get("first_step_s"), "first_epoch": epochs[0]["train_time_s"] if epochs else None,
            "later_epochs": summary([e["train_time_s"] for e in epochs[1:]]), "between_epochs": summary(gaps),
            "evaluation": summary([e["eval_time_s"] for e in epochs])}


GAP_PARTS = ("evaluation", "callbacks", "reshuffle", "iterator", "other")  # twinbench.backends.base.GAP_PARTS, in its order


def gap_breakdown(record: dict) -> dict | None:
    """The time between epochs in parts (``twinbench.measuring.timing.gap_parts``): ``gap`` and each part of ``GAP_PARTS``
    as means over the record's gaps (means, not medians, so that the parts add up to the gap), and a later epoch's
    first step in parts: ``first_batch`` and ``retracing`` (medians). None for a record without the parts."""
    timing = record.get("timing") or {}
    parts, gap = timing.get("epoch_gap_parts_s"), timing.get("epoch_gap_s")
    if not parts or not gap:
        return None
    first = timing.get("first_step_parts_s") or {}
    return {"gap": gap["mean"], **{part: (parts.get(part) or {}).get("mean", 0.0) for part in GAP_PARTS},
            "first_batch": (first.get("first_batch") or {}).get("median"),
            "retracing": (first.get("retracing") or {}).get("median")}


def threads_summary(record: dict) -> str | None:
    """One line of the record's ``threads``: the pools, the input workers, the CPUs, the threads alive and the other
    busy processes; None for a record without it."""
    threads = record.get("threads")
    if not threads:
        return None

    def flat(values: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in values.items():
            if isinstance(value, dict):
                value = value.get("resolves_to", None) if "resolves_to" in value else None
                if value is None:
                    continue
            if value is not None and not (isinstance(value, str) and len(value) > 30):
                out.append(f"{prefix}{key} {value}")
        return out

    pools = threads.get("pools") or {}
    items = flat({k: v for k, v in pools.items() if k not in ("input", "keras_callbacks")})
    items += flat(pools.get("input") or {})
    callbacks = pools.get("keras_callbacks")
    if callbacks:
        items.append(f"callback pool {callbacks['max_workers']}" if callbacks["batch_end_in_thread_pool"]
                     else "callbacks in line")
    cpus = threads.get("cpus") or {}
    sampler = threads.get("sampler") or {}
    items.append(f"cpus {cpus.get('layout')} ({','.join(map(str, cpus.get('affinity') or []))})")
    items.append(f"sampler {'every ' + str(sampler.get('interval_s')) + ' s' if sampler.get('enabled') else 'off'}")
    items.append(f"threads {threads['python_threads']['max_alive']} Python / {threads['native_threads_max']} native")
    others = threads.get("other_processes") or []
    items.append("others: " + (", ".join(f"{p['name']} {p['cpu_percent']:.0f}%" for p in others[:3]) or "none") +
                 (f" (+{len(others) - 3})" if len(others) > 3 else ""))
    return "; ".join(items)


def epoch_curves(record: dict) -> list[dict]:
    """``[{"epoch": 1, "loss": ..., "test_accuracy": ...}, ...]`` (epochs counted from 1)."""
    epochs = (record.get("results") or {}).get("epochs") or []
    return [{"epoch": e["epoch"] + 1, "loss": e.get("loss"), "test_accuracy": e.get("test_accuracy")} for e in epochs]


def memory_peaks(record: dict) -> dict[str, int | None]:
    """Peak bytes: ``allocator`` (the framework's own counter), ``device`` (NVML), ``host`` (RSS)."""
    memory = record.get("memory") or {}
    allocator = memory.get("allocator")
    profile = record.get("profile") or {}
    fields = profile.get("fields") or {}
    return {
        "allocator": (allocator or {}).get("peak_bytes"),
        "device": memory.get("process_gpu_memory_peak_bytes") or memory.get("device_memory_used_peak_bytes")
        or (fields.get("memory_used_bytes") or {}).get("peak"),
        "host": memory.get("host_peak_rss_bytes") or profile.get("host_peak_rss_bytes"),
    }


@dataclass
class Timeline:
    """One run's profiler samples and windows, in seconds since the run's first profiler started."""

    samples: list[dict]
    windows: list[dict]  # {"name", "start_s", "end_s"}
    source: str  # "nvml", "psutil" or "epochs only" (no samples: the epochs from their timestamps)

    @property
    def has_gpu(self) -> bool:
        return any(s.get("utilization_gpu") is not None for s in self.samples)


def timeline(record: dict, directory: Path) -> Timeline | None:
    """The timeline of a record: its sidecar file, an inline one, or the epochs' own timestamps.

    The sidecar lies beside the record (``record_dir``, set by ``load_records``; else ``directory``).
    """
    segments = record.get("timeline")
    if segments is None and record.get("timeline_file"):
        where = Path(record.get("record_dir") or directory)
        try:
            segments = read_timeline_file(where / record["timeline_file"]).get("segments")
        except RecordError:  # missing or unreadable: the epochs' timestamps below, as for a run without a profiler
            segments = None
    if segments is None and (record.get("profile") or {}).get("timeline") is not None:
        profile = record["profile"]
        segments = [{"offset_s": 0.0, "samples": profile["timeline"], "windows": profile.get("windows", [])}]
    if segments:
        samples, windows = [], []
        for segment in segments:
            offset = segment.get("offset_s") or 0.0
            samples += [{**s, "t_s": s["t_s"] + offset} for s in segment.get("samples") or [] if "t_s" in s]
            windows += [{"name": w["name"], "start_s": w["start_s"] + offset, "end_s": w["end_s"] + offset}
                        for w in segment.get("windows") or [] if w.get("end_s") is not None]
        source = "nvml" if any(s.get("source") == "nvml" for s in samples) else "psutil"
        return Timeline(samples=samples, windows=windows, source=source)
    epochs = (record.get("results") or {}).get("epochs") or []
    if not epochs or epochs[0].get("started_at") is None:
        return None
    t0 = epochs[0]["started_at"]
    windows = []
    for e in epochs:
        trained = e.get("trained_at") or e["started_at"] + e["train_time_s"]
        windows.append({"name": f"train-epoch-{e['epoch']}", "start_s": e["started_at"] - t0, "end_s": trained - t0})
        windows.append({"name": f"eval-epoch-{e['epoch']}", "start_s": trained - t0, "end_s": e["ended_at"] - t0})
    return Timeline(samples=[], windows=windows, source="epochs only")


def machine(record: dict) -> str:
    """``NVIDIA H100 80GB HBM3`` or ``CPU: <model> (N cores)``: where the record was measured."""
    env = record.get("environment") or {}
    if not env:
        return "not recorded"
    gpu = env.get("gpu") or {}
    settings = record.get("settings") or {}
    device = str(settings.get("device", ""))
    if gpu.get("name") and device not in ("cpu",):
        return gpu["name"]
    m = env.get("machine") or {}
    cores = m.get("cpu_affinity") or m.get("cpu_count_logical")
    details = [f"{cores} cores"] if cores else []
    simd = m.get("cpu_simd") or []  # the widest vector extension: kernels (and float32 results) differ by it
    widest = "AVX-512" if "avx512f" in simd else "AVX2" if "avx2" in simd else None
    details += [widest] if widest else []
    return f"CPU: {m.get('cpu_model') or 'unknown'}" + (f" ({', '.join(details)})" if details else "")


def machines(records) -> str:
    names = sorted({machine(r) for r in records if r.get("environment")})
    if not names:
        return "machine not recorded"
    return names[0] if len(names) == 1 else "several machines: " + "; ".join(names)


# ----------------------------------------------------------------------------------------------------------
# The overhead decomposition.
# ----------------------------------------------------------------------------------------------------------

def decomposition_rows(groups: list[Group], *, part: str = "whole") -> list[dict]:
    """One row per (group, ratio of ``twinbench.results.decompose.DECOMPOSITION``): ``numerator, denominator, meaning,
    model, kind, dataset`` and either ``twinbench.stats.ratio_ci``'s fields (``ratio, ci_low, ci_high, differs,
    verdict, n_a, n_b``; ``verdict`` as ``twinbench.results.verdict.judge`` gives it, with ``verdict_status`` and
    ``contention``), pooled over every successful run of each cell, or ``missing`` (why there is no ratio).
    Then the ratios the group has in other modes and the mode effects (``decompose.MODE_EFFECTS``), where measured.
    ``part``: ratios of the whole step or of compute alone (``decompose.PARTS``)."""
    rows = []
    for group in groups:
        ok = group.ok()
        computed = {(row["numerator"], row["denominator"]): row for row in decomposition(group.ok_runs(), part=part)}
        shown = set()
        for numerator, denominator, meaning in DECOMPOSITION:
            numerator, denominator = implementation_label(*numerator), implementation_label(*denominator)
            row = {"model": group.model, "kind": group.kind, "dataset": group.dataset, "group": group.title,
                   "numerator": numerator, "denominator": denominator, "meaning": meaning}
            shown.add((numerator, denominator))
            if (numerator, denominator) in computed:
                rows.append({**computed[(numerator, denominator)], **row})
                continue
            absent = [name for name in (numerator, denominator) if name not in ok]
            if absent:
                rows.append({**row, "missing": ", ".join(
                    f"{name} {'failed' if name in group.records else 'missing'}" for name in absent)})
                continue
            rows.append({**row, "missing": "fewer than 2 timing samples per side (train for 3+ epochs), or "
                                           "different batch sizes or input shapes" if part == "whole" else
                                           "fewer than 2 compute windows per side"})
        rows += [{**row, "group": group.title} for key, row in computed.items() if key not in shown]
    return rows
