"""Plain-text tables of result records (no framework imports: runs in any environment).

A cell run several times shows once: its latest successful run where a table has one figure per cell, every
successful run pooled where it has statistics (``twinbench.records``: how runs are pooled).
"""

from __future__ import annotations

import statistics

from twinbench.cell import Cell
from twinbench.records import latest_runs
from twinbench.results.decompose import runs_contention, throughput_rows
from twinbench.results.verdict import contention_text
from twinbench.results.views import GAP_PARTS, gap_breakdown, threads_summary


def sorted_records(records: list[dict]) -> list[dict]:
    """Records in the order of ``Cell.sort_key``: by model, dataset, then torch, keras[torch], tf_keras, ..."""
    return sorted(records, key=lambda record: Cell.of(record).sort_key)


def format_table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i >= 3 else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def epoch_times(record) -> tuple[float | None, float | None]:
    """(first epoch's training time, median training time of the later epochs) in seconds."""
    epochs = record.get("results", {}).get("epochs") or []
    if not epochs:
        return None, None
    first = epochs[0]["train_time_s"]
    later = [e["train_time_s"] for e in epochs[1:]]
    return first, (statistics.median(later) if later else None)


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


# A first step or first epoch of a cell that ran after other cells in its process (``train --cell-processes one``,
# ``record["shared_process"]``): its framework had started already, so it is no cold start.
WARM_MARK = "*"
WARM_NOTE = ("* ran after other cells in its process (train --cell-processes one): its framework had started already, "
             "so its first step and first epoch are no cold start")


def _warm(record) -> bool:
    return ((record.get("shared_process") or {}).get("position") or 1) > 1


def _marked(text: str, record) -> str:
    """``text`` with ``WARM_MARK`` where ``record``'s first step came after other cells' in its process."""
    return f"{text} {WARM_MARK}" if _warm(record) and text != "—" else text


def _with_note(table: str, records: list[dict]) -> str:
    return f"{table}\n{WARM_NOTE}" if any(_warm(record) for record in records) else table


def results_table(records: list[dict]) -> str:
    """The comparison table: one row per (model, implementation, backend), from its latest successful run."""
    headers = ["model", "implementation", "backend", "params", "acc before", "acc after", "final loss",
               "epoch 1 (s)", "epoch time (s)"]
    rows = []
    for record in sorted_records(latest_runs(records)):
        cell = record["cell"]
        label = Cell.of(record).label
        if record.get("status") != "ok":
            reason = (record.get("error") or {}).get("message", "failed")
            rows.append([cell["model"], label, cell["backend"], "FAILED", reason[:60], "", "", "", ""])
            continue
        results = record["results"]
        first, steady = epoch_times(record)
        rows.append([cell["model"], label, cell["backend"], f"{record['model']['params']:,}",
                     f"{results['accuracy_before']:.3f}", f"{results['accuracy_after']:.3f}",
                     _fmt(results["final_loss"], ".4f"), _marked(_fmt(first, ".2f"), record), _fmt(steady, ".2f")])
    return _with_note(format_table(rows, headers), [r for r in latest_runs(records) if r.get("status") == "ok"])


def agreement_summary(records: list[dict]) -> list[str]:
    """Per model: are parameter counts equal, and how far apart are the final accuracies?"""
    lines = []
    by_model: dict[str, list[dict]] = {}
    for record in latest_runs(records):
        if record.get("status") == "ok":
            by_model.setdefault(record["cell"]["model"], []).append(record)
    for model, group in sorted(by_model.items()):
        params = {r["model"]["params"] for r in group}
        accuracies = [r["results"]["accuracy_after"] for r in group]
        spread = 100 * (max(accuracies) - min(accuracies))
        lines.append(
            f"{model}: {len(group)} implementations, parameter counts "
            f"{'equal (' + format(params.pop(), ',') + ')' if len(params) == 1 else 'DIFFER: ' + str(sorted(params))}, "
            f"final accuracy {100 * min(accuracies):.1f}-{100 * max(accuracies):.1f}% (spread {spread:.1f} points)"
        )
    return lines


def median_iqr(summary, scale=1.0, spec=".2f"):
    """``12.30 [11.90-12.80]``: median and interquartile range of a ``summarize`` dict, scaled."""
    if not summary:
        return "—"
    return (f"{format(summary['median'] * scale, spec)} "
            f"[{format(summary['q1'] * scale, spec)}-{format(summary['q3'] * scale, spec)}]")


def timing_table(records: list[dict]) -> str:
    """The timing figures of training records (``twinbench train``): median [IQR] over epochs or windows."""
    headers = ["model", "implementation", "jit", "first step (ms)", "step (ms) median [IQR]",
               "epoch (s) median [IQR]", "gap (ms)", "eval (ms)", "contention"]
    rows, shown = [], []
    for record in sorted_records(latest_runs(records)):
        if record.get("status") != "ok" or "timing" not in record:
            continue
        cell, timing = record["cell"], record["timing"]
        shown.append(record)
        rows.append([cell["model"], Cell.of(record).label,
                     str((record.get("settings") or {}).get("jit_compile")),
                     _marked(_fmt(timing["first_step_s"] and 1e3 * timing["first_step_s"], ".0f"), record),
                     median_iqr(timing["steady_step_s"], 1e3),
                     median_iqr(timing["epoch_time_s"]["later"]),
                     median_iqr(timing["epoch_gap_s"], 1e3, ".0f"),
                     median_iqr(timing["eval_time_s"], 1e3, ".0f"),
                     contention_text(runs_contention([record]))])  # busy epochs / counted, after the first
    return _with_note(format_table(rows, headers), shown) if rows else ""


def gap_table(records: list[dict]) -> str:
    """The time between epochs of training records in parts that add up to it (means over gaps, ms), and a later
    epoch's first step in parts (medians, ms): the first batch in hand, and what is left above the steady step."""
    headers = ["model", "implementation", "gap (ms)", *GAP_PARTS, "first batch", "retracing"]
    rows = []
    for record in sorted_records(latest_runs(records)):
        parts = gap_breakdown(record) if record.get("status") == "ok" else None
        if parts:
            rows.append([record["cell"]["model"], Cell.of(record).label,
                         *(_fmt(None if parts[k] is None else 1e3 * parts[k], ".1f")
                           for k in ("gap", *GAP_PARTS, "first_batch", "retracing"))])
    return format_table(rows, headers) if rows else ""


def threads_table(records: list[dict]) -> str:
    """Each run's threads (the record's ``threads``): pools, input workers, CPUs, threads alive, other processes."""
    rows = [[r["cell"]["model"], Cell.of(r).label, threads_summary(r)]
            for r in sorted_records(latest_runs(records)) if r.get("status") == "ok" and threads_summary(r)]
    return format_table(rows, ["model", "implementation", "threads"]) if rows else ""


def throughput_table(records: list[dict]) -> str:
    """Throughput records (``twinbench throughput``): one row per cell, pooled over runs, median [IQR] over repeats."""
    headers = ["model", "implementation", "batch", "runs", "jit", "first step (ms)", "step (ms) median [IQR]",
               "95% CI (ms)", "images/s", "GFLOP/s", "MFU", "page faults/step", "profiler cost [95% CI]",
               "contention"]
    rows = []
    for row in throughput_rows(records):
        step, overhead = row["steady_step_s"], row["profiler_overhead"]
        cost = "—"
        if overhead:  # the deciding estimate: paired when there are pairs
            best = overhead["paired"] or overhead
            cost = f"{best['overhead_pct']:+.2f}% [{best['ci_pct'][0]:+.1f}, {best['ci_pct'][1]:+.1f}]"
        rows.append([row["model"], row["label"], str(row["batch_size"]), str(row["runs"]), str(row["jit_compile"]),
                     f"{1e3 * row['first_step_s']:.0f}", median_iqr(step, 1e3),
                     f"{1e3 * step['ci_low']:.2f}-{1e3 * step['ci_high']:.2f}",
                     f"{row['throughput_images_per_s']['median']:.0f}", *_flops_cells(row),
                     "—" if row["page_faults_per_step"] is None else f"{row['page_faults_per_step']:.0f}", cost,
                     row["contention"]])
    failed = [r for r in latest_runs(records) if r.get("status") != "ok"]  # cells without a successful run
    for record in sorted_records(failed):
        cell = record["cell"]
        reason = (record.get("error") or {}).get("message", "failed")
        rows.append([cell["model"], Cell.of(record).label, "", "", "",
                     "FAILED", reason[:40], "", "", "", "", "", "", ""])
    return format_table(rows, headers) if rows else ""


def feed_compute_table(records: list[dict]) -> str:
    """Throughput records with compute windows: per cell the whole step, the train step alone (compute) and the
    feed (whole - compute of adjacent windows), median [IQR] in ms, the feed's 95% CI; "" when none has them."""
    headers = ["model", "implementation", "batch", "runs", "whole (ms) median [IQR]", "compute (ms) median [IQR]",
               "feed (ms) median [IQR]", "feed 95% CI (ms)"]
    rows = []
    for row in throughput_rows(records):
        compute, feed = row["compute_step_s"], row["feed_step_s"]
        if compute is None:
            continue
        rows.append([row["model"], row["label"], str(row["batch_size"]), str(row["runs"]),
                     median_iqr(row["steady_step_s"], 1e3), median_iqr(compute, 1e3), median_iqr(feed, 1e3),
                     "—" if feed is None else f"{1e3 * feed['ci_low']:.2f} to {1e3 * feed['ci_high']:.2f}"])
    return format_table(rows, headers) if rows else ""


def _flops_cells(row) -> list[str]:
    """Achieved GFLOP/s (3 x forward FLOPs x images/s) and MFU, from the pooled median throughput (twinbench.measuring.mfu)."""
    eff = row.get("efficiency")
    if not eff or "train_flops_per_image" not in eff:  # none, or {"unavailable": why} (twinbench.measuring.mfu)
        return ["—", "—"]
    gflops = eff["train_flops_per_image"] * row["throughput_images_per_s"]["median"] / 1e9
    peak = eff.get("peak")
    mfu = f"{100 * gflops / (1e3 * peak['tflops']):.1f}%" if peak else "— (CPU)" if "CPU" in (eff.get("note") or "") else "—"
    return [f"{gflops:.1f}", mfu]
