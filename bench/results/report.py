"""``python -m twinbench report DIR...``: ``report.md`` and its figures, from the result records in the directories.

The report reads whatever records the directories hold (with their subdirectories, e.g. one per round) and
works on a partial matrix: a cell that is missing or failed is shown as such in every table and figure, never
a crash. Several runs of one cell are pooled as ``twinbench.records`` says: step time, throughput and the
decomposition use the windows of every successful run, the other per-cell figures its latest one. It shows

1. step time and throughput per implementation, with their 95% confidence intervals;
2. the overhead decomposition (ratios of step times with a CI, each cell's contention, and a verdict in plain words
   or why there is none: ``twinbench.results.verdict``);
3. the shared profiler's timeline: GPU utilisation and device memory (CPU % and RSS on a CPU machine)
   against time, epochs shaded, one panel per implementation on a shared time axis;
4. training loss (log scale) and test accuracy per epoch, every implementation on one chart;
5. peak memory per implementation (framework allocator, whole device, host);
6. the environment each record came from.

Each figure uses the best figures a record has and says which. The figures are drawn by ``twinbench.results.figures``
(matplotlib, imported only there).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from twinbench.backends.environments import LABELS
from twinbench.causes import NATIVE_GROUP
from twinbench.records import load_records
from twinbench.results import figures as fig
from twinbench.results.breakdown import (
    beside,
    breakdown_differences,
    breakdown_markdown,
    calls_section,
    stacked_bars,
)
from twinbench.results.decompose import (
    TF_NATIVE_FEED_NOTE,
    decomposition_table,
    feed_and_compute,
    lasting_feed_cost,
)
from twinbench.results.generation import generation_ratios, generation_rows, generation_table
from twinbench.results.latency import latency_ratios, latency_rows, latency_table
from twinbench.results.ops import ops_markdown
from twinbench.results.table import median_iqr, results_table
from twinbench.results.verdict import RULES
from twinbench.results.views import (
    GAP_PARTS,
    MISSING,
    decomposition_rows,
    gap_breakdown,
    group_records,
    label_of,
    machine,
    machines,
    memory_peaks,
    phase_times,
    speed,
    threads_summary,
)

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


def _decomposition_table(rows: list[dict]) -> list[str]:
    """Decomposition rows (``views.decomposition_rows``) as a table: the ratio and its CI in every row, the contention
    of both cells, and the verdict (or why there is none: ``twinbench.results.verdict``)."""
    return _table(["group", "ratio", "what it isolates", "ratio (95% CI)", "contention", "verdict"],
                  [[r["group"], f"{r['numerator']} / {r['denominator']}", r["meaning"],
                    MISSING if "missing" in r else f"{r['ratio']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})",
                    "" if "missing" in r else r.get("contention", "not recorded"),
                    r["missing"] if "missing" in r else r["verdict"]] for r in rows]) + [""]


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
    # Profiler-cost experiments are not runs of a cell to compare; `twinbench profiler-cost --show` prints them.
    groups = group_records([r for r in records if r.get("kind", "train") in ("train", "throughput")])
    figure_dir = directory / "figures"
    drawn: dict[str, Path] = {}
    if figures and groups:
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
           f"{machines(records)}. Written by `python -m twinbench report` on "
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
                summary, rate, what = speed(group.ok_runs(label))
                rows.append([label, _fmt_seconds(summary), _fmt_rate(rate), what])
            out += _table(["implementation", "time per step (95% CI)", "images/s (95% CI)", "samples"], rows) + [""]

        out += ["## Where the time goes: the overhead decomposition", "",
                "Ratios of median step times (numerator / denominator; above 1: the numerator is slower), each with "
                f"a bootstrap 95% CI. A difference is called only when the interval excludes 1.0. {RULES}", ""]
        rows = decomposition_rows(groups)
        for group in groups:
            out += image(f"decomposition__{group.slug}", f"overhead decomposition, {group.title}")
        out += _decomposition_table(rows)
        split = beside([row for row in rows if "missing" not in row], records)
        if split:
            out += ["Where each ratio's extra time goes (`twinbench breakdown`; section below):", "",
                    *(f"- {line}" for line in split), ""]

    # -- feed vs compute (throughput records with compute windows) --
    if any(feed_and_compute(group.ok_runs(label))["compute"] for group in groups for label in group.ok()):
        out += ["## Feed vs compute", "",
                "The whole step (the implementation's own feed and train step), the train step alone on batches "
                "already on the device (compute), and the feed: whole - compute of windows run next to each other, "
                "a difference in ms with its 95% CI (a ratio of feeds means little). Median [IQR] over windows.", ""]
        rows = []
        for group in groups:
            for label in LABELS:
                if label not in group.ok():
                    continue
                parts = feed_and_compute(group.ok_runs(label))
                if parts["compute"] is None:
                    continue
                feed = parts["feed"]
                rows.append([group.title, label, *(median_iqr(parts[k], 1e3) for k in ("whole", "compute", "feed")),
                             MISSING if feed is None else f"{1e3 * feed['ci_low']:.3g} to {1e3 * feed['ci_high']:.3g}"])
        out += _table(["group", "implementation", "whole (ms)", "compute (ms)", "feed (ms)", "feed 95% CI (ms)"],
                      rows) + [""]
        if lasting_feed_cost(records):
            out += [TF_NATIVE_FEED_NOTE, ""]
        out += ["Ratios of compute alone (the same pairs as above):", ""]
        out += _decomposition_table(decomposition_rows(groups, part="compute"))
    out += ops_markdown(records)
    out += breakdown_markdown(records)
    if figures and stacked_bars(records):
        figure_dir.mkdir(exist_ok=True)
        for name, path in fig.causes_figures(stacked_bars(records), out_dir=figure_dir, native=NATIVE_GROUP).items():
            drawn[name] = path
            out += image(name, f"a step's time by cause: {name}")
        for name, path in fig.split_figures(breakdown_differences(records), out_dir=figure_dir).items():
            drawn[name] = path
            out += image(name, f"where the extra time goes: {name}")
    calls = calls_section(records)
    if calls:
        out += ["## Cost of one layer call", "", "```", *calls.strip().splitlines(), "```", ""]

    # -- timeline --
    if groups:
        out += ["## Timeline", "",
                "The shared profiler's samples against time, one panel per implementation on a shared time axis: "
                "GPU utilisation and device memory on a GPU machine, the process's CPU % and RSS on a CPU machine. "
                "Training epochs are shaded blue, evaluation grey; white space between epochs is time spent "
                "between them (framework epoch handling, callbacks). Records without profiler samples "
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
            gaps = [[label, *(MISSING if parts[k] is None else f"{1e3 * parts[k]:.1f} ms"
                              for k in ("gap", *GAP_PARTS, "first_batch", "retracing"))]
                    for label, parts in ((label, gap_breakdown(group.ok()[label])) for label in LABELS
                                         if label in group.ok()) if parts]
            if gaps:
                out += ["Between epochs, in parts that add up to the gap (means over gaps): evaluation, callbacks "
                        "(epoch-end bookkeeping), reshuffle (the data's next order), iterator (re-making it), other; "
                        "then a later epoch's first step: the first batch in hand and retracing (the rest of it above "
                        "the steady step; medians).", ""]
                out += _table(["implementation", "gap", *GAP_PARTS, "first batch", "retracing"], gaps) + [""]

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
                ["No memory figures in these records (no GPU, and no profiler).", ""] if figures else [])
            rows = []
            for label in LABELS:
                record = group.ok().get(label)
                if record is None:
                    rows.append([label, group.status(label), "", ""])
                    continue
                peaks = memory_peaks(record)
                rows.append([label, _fmt_bytes(peaks["allocator"]), _fmt_bytes(peaks["device"]), _fmt_bytes(peaks["host"])])
            out += _table(["implementation", "framework allocator", "device", "host RSS"], rows) + [""]

    # -- inference latency --
    latency = latency_rows(records)
    if latency:
        out += ["## Inference latency", "",
                "Per call, each synchronised, at each batch size (`twinbench latency`); the first call (tracing, "
                "compilation) apart. p50 with its 95% order-statistic CI over the pooled calls of every run.", ""]
        if figures:
            figure_dir.mkdir(exist_ok=True)
            drawn.update(fig.draw_latency(latency, out_dir=figure_dir, machine=machines(records)))
        for model in dict.fromkeys(row["model"] for row in latency):
            out += image(f"latency__{model}", f"latency against batch size, {model}")
        out += ["```", latency_table(latency), "```", "",
                "Ratios of the p50 per batch size:", "", "```", decomposition_table(latency_ratios(records)), "```", ""]

    # -- generation --
    generation = generation_rows(records)
    if generation:
        out += ["## Generation", "",
                "GPT-2 greedy decoding with a key/value cache (`twinbench generate`), each token timed as it reaches "
                "the host; the first (compiling) call apart. Tokens per second and the time to first token: median "
                "over calls with its 95% CI; per token: p50 with its 95% order-statistic CI over the pooled tokens.",
                ""]
        if figures:
            figure_dir.mkdir(exist_ok=True)
            drawn.update(fig.draw_generation(generation, out_dir=figure_dir, machine=machines(records)))
        for where in dict.fromkeys((row["model"], row["sizes"]) for row in generation):
            out += image(f"generation__{where[0]}__{'-'.join(map(str, where[1]))}", f"generation, {where[0]}")
        out += ["```", generation_table(generation), "```", "",
                "Ratios per generate call and per token:", "", "```",
                decomposition_table(generation_ratios(records)), "```", ""]

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
    settings = record.get("settings") or {}
    frameworks = ", ".join(f"{k} {v}" for k, v in versions.items() if v and k not in ("python", "numpy", "psutil",
                                                                                     "nvidia-ml-py"))
    threads = settings.get("threads") or {}
    threads_text = threads_summary(record) or (", ".join(f"{k} {v}" for k, v in threads.items() if v is not None) if isinstance(threads, dict)
                    else str(threads))
    git = env.get("git") or {}
    commit = (git.get("commit") or "")[:8] + (" (dirty)" if git.get("dirty") else "")
    cell = record["cell"]
    return [f"{cell['model']} {label_of(record)}", machine(record), str(settings.get("device", "?")),
            versions.get("python", "?"), frameworks or "?", threads_text or "?", commit or "?",
            record.get("finished") or record.get("started") or "?"]
