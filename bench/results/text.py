"""``compare``'s text: the sections it prints for throughput and training records (tables from
``twinbench.results.table``, the decomposition from ``twinbench.results.decompose``)."""

from __future__ import annotations

from twinbench.cell import Cell
from twinbench.results.breakdown import beside
from twinbench.results.decompose import (
    TF_NATIVE_FEED_NOTE,
    decomposition,
    decomposition_table,
    lasting_feed_cost,
    throughput_rows,
)
from twinbench.results.table import (
    feed_compute_table,
    gap_table,
    threads_table,
    throughput_table,
    timing_table,
)


def throughput_section(records, *, breakdowns=()) -> str:
    """``compare``'s text for throughput records: the table, the decomposition (beside each ratio, where
    ``breakdowns`` has both its cells, its extra time by cause: ``twinbench.results.breakdown``), the profiler's
    cost."""
    rows = decomposition(records)
    split = beside(rows, breakdowns)
    lines = ["Throughput (twinbench throughput): seconds per step over repeats of N steps, synchronised at the edges only; "
             "contention: windows the machine was busy in / windows counted (twinbench.measuring.contention)",
             throughput_table(records), "", "Overhead decomposition (time ratios, 95% bootstrap CI):",
             decomposition_table(rows), *(["Where each ratio's extra time goes (twinbench breakdown):", *split]
                                          if split else []), ""]
    parts = feed_compute_table(records)
    if parts:  # records with compute windows (twinbench throughput --compute-repeats)
        lines += ["Feed vs compute: the whole step (feed + train step), the train step alone on batches already on "
                  "the device, and the feed (whole - compute of windows run next to each other)", parts,
                  *([TF_NATIVE_FEED_NOTE] if lasting_feed_cost(records) else []), "",
                  "Overhead decomposition of compute (the train step alone; 95% bootstrap CI):",
                  decomposition_table(decomposition(records, part="compute")), ""]
    threads = threads_table(records)
    if threads:
        lines += ["Threads (record['threads']): pools as the frameworks report them, input workers, CPUs, threads "
                  "alive, other processes above 5% CPU", threads, ""]
    for row in throughput_rows(records):
        overhead = row["profiler_overhead"]
        if overhead:
            busy = row["sampler_busy_fraction"]
            busy_text = "" if busy is None else (f" The sampler thread was busy {100 * busy:.2f}% of the time "
                                                 "(its own CPU time: an upper bound on what it takes from training).")
            lines.append(f"profiler cost, {row['label']} (batch {row['batch_size']}): {overhead_text(overhead)}."
                         f"{busy_text}")
    return "\n".join(lines)


def overhead_text(overhead: dict) -> str:
    """The profiler's cost in words: both estimates and whether it is shown to be under the limit."""
    limit = f"{overhead['limit_pct']:.0f}%"
    text = (f"unpaired {overhead['overhead_pct']:+.2f}% of step time (95% CI {overhead['ci_pct'][0]:+.2f}% to "
            f"{overhead['ci_pct'][1]:+.2f}%, {overhead['n_a']} windows on / {overhead['n_b']} off)")
    paired = overhead.get("paired")
    if paired:
        text += (f"; paired {paired['overhead_pct']:+.2f}% (95% CI {paired['ci_pct'][0]:+.2f}% to "
                 f"{paired['ci_pct'][1]:+.2f}%, {paired['n']} adjacent pairs)")
    if overhead["shown_under_limit"]:
        verdict = f"under {limit}: the whole CI is below it"
    elif overhead["under_limit"]:
        verdict = f"median under {limit}, but the CI reaches above it: not shown to be under"
    else:
        verdict = f"median NOT under {limit}"
    return f"{text}: {verdict} ({overhead['decided_by']} estimate)"


def training_timing_section(records) -> str:
    """``compare``'s timing text for training records: per-cell figures and the decomposition by epoch time."""
    table = timing_table(records)
    if not table:
        return ""
    lines = ["", "Timing (twinbench train): median [IQR] over epochs after the first / over windows", table, "",
             "Overhead decomposition by epoch time (95% bootstrap CI):", decomposition_table(decomposition(records))]
    gaps = gap_table(records)
    if gaps:
        lines += ["", "Between epochs (ms): the gap's parts (means over gaps; they add up to the gap), and a later "
                  "epoch's first step: first batch in hand, retracing (its excess over the steady step, medians)", gaps]
    threads = threads_table(records)
    if threads:
        lines += ["", "Threads (record['threads']): pools as the frameworks report them, input workers, CPUs, threads "
                  "alive, other processes above 5% CPU", threads]
    return "\n".join(lines)


def record_label(record) -> str:
    cell = Cell.of(record)
    return f"{cell.model} {cell.label}"
