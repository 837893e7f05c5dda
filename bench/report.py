"""``python -m bench report DIR...``: ``report.md`` and its figures, from the result records in the directories.

The report reads whatever records the directories hold (with their subdirectories, e.g. one per round) and
works on a partial matrix: a cell that is missing or failed is shown as such in every table and figure, never
a crash. Several runs of one cell are pooled as ``bench.records`` says: the decomposition uses every run, the
per-cell figures its latest successful one. It shows

1. step time and throughput per implementation, with their 95% confidence intervals;
2. the overhead decomposition (ratios of step times with a CI and a verdict in plain words);
3. the shared profiler's timeline: GPU utilisation and device memory (CPU % and RSS on a CPU machine)
   against time, epochs shaded, one panel per implementation on a shared time axis;
4. training loss (log scale) and test accuracy per epoch, every implementation on one chart;
5. peak memory per implementation (framework allocator, whole device, host);
6. the environment each record came from.

Each figure uses the best figures a record has and says which. The figures are drawn by ``bench.figures``
(matplotlib, imported only there).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.cell import LABELS, Cell, implementation_label
from bench.decompose import DECOMPOSITION, decomposition
from bench.records import latest_runs, load_records
from bench.stats import summarize
from bench.table import results_table

MISSING = "missing"


@dataclass
class Group:
    """The records that are compared with each other: one kind of run of one model on one dataset."""

    kind: str  # "train" (bench train) or "throughput" (bench throughput)
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

    def ok_runs(self) -> list[dict]:
        """Every successful run of every cell: what pooled statistics use."""
        return [r for runs in self.runs.values() for r in runs if r.get("status") == "ok"]

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
# What each record says, whichever schema version wrote it. Every function returns None when it cannot say.
# ----------------------------------------------------------------------------------------------------------

def _summary(samples):
    samples = [s for s in samples if s is not None and s > 0]
    return summarize(samples) if samples else None


def step_time(record: dict) -> tuple[dict | None, str]:
    """Seconds per training step as a ``bench.stats.summarize`` dict, and what its samples are."""
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


def phase_times(record: dict) -> dict:
    """Seconds spent around the steady state: ``first_step`` (tracing/compilation; v2 only), ``first_epoch``,
    ``later_epochs`` (median), ``between_epochs`` (median: end of one epoch's training to the start of the
    next one's, evaluation included) and ``evaluation`` (median). Absent figures are None."""
    timing = record.get("timing") or {}
    epochs = (record.get("results") or {}).get("epochs") or []

    def median(value):
        return value.get("median") if isinstance(value, dict) else value

    if "epoch_time_s" in timing:  # schema v2 (bench.measure.train_timing)
        return {"first_step": timing.get("first_step_s"), "first_epoch": timing["epoch_time_s"].get("first"),
                "later_epochs": median(timing["epoch_time_s"].get("later")),
                "between_epochs": median(timing.get("epoch_gap_s")), "evaluation": median(timing.get("eval_time_s"))}
    gaps = [later["started_at"] - (earlier["started_at"] + earlier["train_time_s"])
            for earlier, later in zip(epochs, epochs[1:], strict=False)]
    summary = lambda values: summarize(values)["median"] if values else None  # noqa: E731
    return {"first_step": timing.get("first_step_s"), "first_epoch": epochs[0]["train_time_s"] if epochs else None,
            "later_epochs": summary([e["train_time_s"] for e in epochs[1:]]), "between_epochs": summary(gaps),
            "evaluation": summary([e["eval_time_s"] for e in epochs])}


def epoch_curves(record: dict) -> list[dict]:
    """``[{"epoch": 1, "loss": ..., "test_accuracy": ...}, ...]`` (epochs counted from 1)."""
    epochs = (record.get("results") or {}).get("epochs") or []
    return [{"epoch": e["epoch"] + 1, "loss": e.get("loss"), "test_accuracy": e.get("test_accuracy")} for e in epochs]


def memory_peaks(record: dict) -> dict[str, int | None]:
    """Peak bytes: ``allocator`` (the framework's own counter), ``device`` (NVML), ``host`` (RSS)."""
    memory = record.get("memory") or {}
    allocator = memory.get("allocator") if isinstance(memory.get("allocator"), dict) else memory  # v2 | v1
    profile = record.get("profile") or {}
    fields = profile.get("fields") or {}
    return {
        "allocator": (allocator or {}).get("peak_bytes"),
        "device": memory.get("process_gpu_memory_peak_bytes") or memory.get("device_memory_used_peak_bytes")
        or (fields.get("memory_used_bytes") or {}).get("peak"),
        "host": memory.get("host_peak_rss_bytes") or profile.get("host_peak_rss_bytes"),
    }


def device_memory_is_process(record: dict) -> bool:
    return bool((record.get("memory") or {}).get("process_gpu_memory_peak_bytes"))


@dataclass
class Timeline:
    """One run's profiler samples and windows, in seconds since the run's first profiler started."""

    samples: list[dict]
    windows: list[dict]  # {"name", "start_s", "end_s"}
    source: str  # "nvml", "psutil" or "epochs only" (a v1 record: no samples, epochs from their timestamps)

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
            segments = json.loads((where / record["timeline_file"]).read_text()).get("segments")
        except (OSError, json.JSONDecodeError):
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
    settings = record.get("settings") or record.get("device") or {}
    device = str(settings.get("device", ""))
    if gpu.get("name") and device not in ("cpu",):
        return gpu["name"]
    m = env.get("machine") or {}
    cores = m.get("cpu_affinity") or m.get("cpu_count_logical")
    return f"CPU: {m.get('cpu_model') or 'unknown'}" + (f" ({cores} cores)" if cores else "")


def machines(records) -> str:
    names = sorted({machine(r) for r in records if r.get("environment")})
    if not names:
        return "machine not recorded"
    return names[0] if len(names) == 1 else "several machines: " + "; ".join(names)


# ----------------------------------------------------------------------------------------------------------
# The overhead decomposition.
# ----------------------------------------------------------------------------------------------------------

def decomposition_rows(groups: list[Group]) -> list[dict]:
    """One row per (group, ratio of ``bench.decompose.DECOMPOSITION``): ``numerator, denominator, meaning,
    model, kind, dataset`` and either ``bench.stats.ratio_ci``'s fields (``ratio, ci_low, ci_high, differs,
    verdict, n_a, n_b``), pooled over every successful run of each cell, or ``missing`` (why there is no ratio)."""
    rows = []
    for group in groups:
        ok = group.ok()
        computed = {(row["numerator"], row["denominator"]): row for row in decomposition(group.ok_runs())}
        for numerator, denominator, meaning in DECOMPOSITION:
            numerator, denominator = implementation_label(*numerator), implementation_label(*denominator)
            row = {"model": group.model, "kind": group.kind, "dataset": group.dataset, "group": group.title,
                   "numerator": numerator, "denominator": denominator, "meaning": meaning}
            if (numerator, denominator) in computed:
                rows.append({**computed[(numerator, denominator)], **row})
                continue
            absent = [name for name in (numerator, denominator) if name not in ok]
            if absent:
                rows.append({**row, "missing": ", ".join(
                    f"{name} {'failed' if name in group.records else 'missing'}" for name in absent)})
                continue
            rows.append({**row, "missing": "fewer than 2 timing samples per side (train for 3+ epochs), or "
                                           "different batch sizes or input shapes"})
    return rows


# ----------------------------------------------------------------------------------------------------------
# The report.
# ----------------------------------------------------------------------------------------------------------

def _fmt_seconds(summary: dict | None) -> str:
    if not summary:
        return MISSING
    scale, unit = (1e3, "ms") if summary["median"] < 1 else (1.0, "s")
    return (f"{summary['median'] * scale:.3g} {unit} ({summary['ci_low'] * scale:.3g}–{summary['ci_high'] * scale:.3g},"
            f" n={summary['n']})")


def _fmt_rate(summary: dict | None) -> str:
    if not summary:
        return MISSING
    return f"{summary['median']:,.0f} ({summary['ci_low']:,.0f}–{summary['ci_high']:,.0f})"


def _fmt_bytes(value) -> str:
    return MISSING if value is None else f"{value / 2**20:,.0f} MiB"


def _table(headers, rows) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def build_report(*directories, out_dir=None, figures: bool = True) -> Path:
    """Write ``OUT/report.md`` and ``OUT/figures/*.png`` from the records in ``directories`` (and their
    subdirectories); ``out_dir`` defaults to the first directory. Returns the report's path.

    Raises ``FileNotFoundError`` if a directory does not exist. Directories with no readable record still
    get a report that says so (and lists the files it skipped, with the reason).
    """
    for path in directories:
        if not Path(path).is_dir():
            raise FileNotFoundError(f"results directory {str(path)!r} does not exist")
    directory = Path(out_dir or directories[0])
    records, skipped = load_records(*directories)
    # Profiler-cost experiments are not runs of a cell to compare; `bench profiler-cost --show` prints them.
    groups = group_records([r for r in records if r.get("kind", "train") in ("train", "throughput")])
    figure_dir = directory / "figures"
    drawn: dict[str, Path] = {}
    if figures and groups:
        from bench import figures as fig

        figure_dir.mkdir(exist_ok=True)
        for stale in figure_dir.glob("*.png"):
            stale.unlink()
        drawn = fig.draw_all(groups, directory=directory, out_dir=figure_dir)

    def image(name, alt):
        path = drawn.get(name)
        return [f"![{alt}]({path.relative_to(directory).as_posix()})", ""] if path else []

    ok_count = sum(1 for r in records if r.get("status") == "ok")
    sources = ", ".join(f"`{Path(d).as_posix()}`" for d in directories)
    out = [f"# twinbench report: {sources}", "",
           f"{len(records)} records ({ok_count} ok, {len(records) - ok_count} failed) in {len(groups)} group(s); "
           f"{machines(records)}. Written by `python -m bench report` on "
           f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    if not records:
        out += ["No readable twinbench records here: run the matrix first (`nox -s compare`).", ""]

    # -- which cells are there --
    if groups:
        out += ["## Cells", "", "Each group needs every implementation; a cell not run yet is *missing*.", ""]
        out += _table(["group", *LABELS], [[g.title, *(g.status(label) for label in LABELS)] for g in groups])
        trained = [r for r in records if r.get("kind", "train") == "train"]
        if trained:
            out += ["", "```", results_table(trained), "```", ""]

    # -- speed --
    if groups:
        out += ["## Step time and throughput", "",
                "Median with its 95% confidence interval (bars on the figures). Which samples a record has depends "
                "on how it was run; the last column says.", ""]
        for group in groups:
            out += [f"### {group.title}", ""] + image(f"speed__{group.slug}", f"step time, {group.title}")
            rows = []
            for label in LABELS:
                record = group.ok().get(label)
                if record is None:
                    rows.append([label, group.status(label), "", ""])
                    continue
                summary, what = step_time(record)
                rows.append([label, _fmt_seconds(summary), _fmt_rate(throughput(record)), what])
            out += _table(["implementation", "time per step (95% CI)", "images/s (95% CI)", "samples"], rows) + [""]

        out += ["## Where the time goes: the overhead decomposition", "",
                "Ratios of median step times (numerator / denominator; above 1: the numerator is slower), each with "
                "a bootstrap 95% CI. A difference is called only when the interval excludes 1.0.", ""]
        rows = decomposition_rows(groups)
        for group in groups:
            out += image(f"decomposition__{group.slug}", f"overhead decomposition, {group.title}")
        out += _table(["group", "ratio", "what it isolates", "ratio (95% CI)", "verdict"],
                      [[r["group"], f"{r['numerator']} / {r['denominator']}", r["meaning"],
                        MISSING if "missing" in r else f"{r['ratio']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})",
                        r["missing"] if "missing" in r else r["verdict"]] for r in rows]) + [""]

    # -- timeline --
    if groups:
        out += ["## Timeline", "",
                "The shared profiler's samples against time, one panel per implementation on a shared time axis: "
                "GPU utilisation and device memory on a GPU machine, the process's CPU % and RSS on a CPU machine. "
                "Training epochs are shaded blue, evaluation grey; white space between epochs is time spent "
                "between them (framework epoch handling, callbacks). Records without profiler samples (schema v1) "
                "show their epochs only.", ""]
        for group in groups:
            out += [f"### {group.title}", ""] + image(f"timeline__{group.slug}", f"timeline, {group.title}")
            rows = []
            for label in LABELS:
                record = group.ok().get(label)
                if record is None:
                    rows.append([label, group.status(label), "", "", "", ""])
                    continue
                times = phase_times(record)
                rows.append([label, *(MISSING if times[k] is None else f"{times[k]:.3g} s" for k in
                                      ("first_step", "first_epoch", "later_epochs", "between_epochs", "evaluation"))])
            out += _table(["implementation", "first step (compiles)", "first epoch", "later epochs (median)",
                           "between epochs (median, incl. evaluation)", "evaluation (median)"], rows) + [""]

    # -- training curves --
    train_groups = [g for g in groups if g.kind == "train"]
    if train_groups:
        out += ["## Training curves", "",
                "Loss: the mean cross-entropy over the epoch's training samples while it trained (the same "
                "definition in every implementation), log scale. Test accuracy: after each epoch.", ""]
        for group in train_groups:
            out += [f"### {group.title}", ""] + image(f"curves__{group.slug}", f"loss and accuracy, {group.title}")

    # -- memory --
    if groups:
        out += ["## Peak memory", "",
                "Framework allocator: the framework's own peak counter (GPU only). Device: NVML, this process when "
                "NVML can attribute memory to it, else the whole device. Host: peak resident set size (RSS) of the "
                "process.", ""]
        for group in groups:
            out += [f"### {group.title}", ""]
            out += image(f"memory__{group.slug}", f"peak memory, {group.title}") or (
                ["No memory figures in these records (no GPU, and no profiler: schema v1).", ""] if figures else [])
            rows = []
            for label in LABELS:
                record = group.ok().get(label)
                if record is None:
                    rows.append([label, group.status(label), "", ""])
                    continue
                peaks = memory_peaks(record)
                rows.append([label, _fmt_bytes(peaks["allocator"]), _fmt_bytes(peaks["device"]), _fmt_bytes(peaks["host"])])
            out += _table(["implementation", "framework allocator", "device", "host RSS"], rows) + [""]

    # -- environment --
    if records:
        out += ["## Environment", "", "Where each record came from (`environment` and `settings` in the record).", ""]
        out += _table(["cell", "machine", "device", "python", "framework versions", "threads", "git", "finished"],
                      [environment_row(r) for r in sorted(records, key=lambda r: (r["cell"]["model"], label_of(r)))])
        out.append("")

    if skipped:
        out += ["## Skipped files", "", "Files in the directory that are not records this twinbench reads:", ""]
        out += [f"- {line}" for line in skipped] + [""]
    path = directory / "report.md"
    path.write_text("\n".join(out).rstrip("\n") + "\n")
    return path


def environment_row(record: dict) -> list[str]:
    env = record.get("environment") or {}
    versions = env.get("versions") or {}
    settings = record.get("settings") or record.get("device") or {}
    frameworks = ", ".join(f"{k} {v}" for k, v in versions.items() if v and k not in ("python", "numpy", "psutil",
                                                                                     "nvidia-ml-py"))
    threads = settings.get("threads") or {}
    threads_text = (", ".join(f"{k} {v}" for k, v in threads.items() if v is not None) if isinstance(threads, dict)
                    else str(threads))
    git = env.get("git") or {}
    commit = (git.get("commit") or "")[:8] + (" (dirty)" if git.get("dirty") else "")
    cell = record["cell"]
    return [f"{cell['model']} {label_of(record)}", machine(record), str(settings.get("device", "?")),
            versions.get("python", "?"), frameworks or "?", threads_text or "?", commit or "?",
            record.get("finished") or record.get("started") or "?"]
