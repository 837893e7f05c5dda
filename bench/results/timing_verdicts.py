"""The main job's timing verdicts (``nox -s compare``'s last step, ``python -m twinbench alternate``), in words and
tables (framework-free).

``nox -s compare`` trains the default cells for their accuracy table, then times them by the design of
``twinbench.measuring.alternate``: each environment's cells interleaved window by window in one process, the
environments' processes alternated A,B,B,A. This module prints what came of it: the six decomposition ratios
(``twinbench.results.decompose``) with the rule's verdict or why there is none (``twinbench.results.verdict``), the
resolution reached, and how quiet the machine was while it measured.

``main_job_text`` is the whole output of the main job as the README shows it (``tools/readme_main_job.py`` writes
it there); ``structure`` is what a test compares between the README's block and this format.
"""

from __future__ import annotations

import re

from twinbench.cell import Cell
from twinbench.results import verdict
from twinbench.results.decompose import DECOMPOSITION, decomposition, decomposition_table, sample_windows
from twinbench.results.table import agreement_summary, results_table

HEADING = "Timing verdicts (twinbench alternate): time ratios, 95% CI paired by ABBA block"
ACCURACY_HEADING = "Accuracy (twinbench train, the embedded digits data):"


def machine_text(records: list[dict]) -> str:
    """``machine: quiet: 0 of 48 timed windows busy (others took at most 3% of the CPUs)`` or ``machine: busy: 30 of
    48 ...``: the kernel's count over every timed window of ``records`` (``twinbench.measuring.contention``)."""
    counted = [w["contention"] for record in records for w in sample_windows(record) if w.get("contention")]
    if not counted:
        return "machine: contention not recorded (no window was counted: the kernel's accounting is Linux's)"
    flagged = sum(bool(c["busy"]) for c in counted)
    others = max(c["others_share"] for c in counted)
    wait = max(c["wait_share"] for c in counted)
    state = "quiet" if not flagged else ("busy" if flagged > verdict.BUSY_WINDOWS_LIMIT * len(counted) else "mostly quiet")
    return (f"machine: {state}: {flagged} of {len(counted)} timed windows busy (others took at most {others:.0%} of the "
            f"CPUs, run-queue wait at most {wait:.0%} of a window)")


def latest_sequence(records: list[dict]) -> list[dict]:
    """The records of the sequence (``record["alternation"]["sequence"]``) that finished last."""
    alternated = [r for r in records if r.get("alternation")]
    if not alternated:
        return []
    last = max(alternated, key=lambda r: r.get("finished") or "")["alternation"]["sequence"]
    return [r for r in alternated if r["alternation"]["sequence"] == last]


def run_text(records: list[dict]) -> str:
    """``cifar_cnn batch 32: 2 blocks of one process per environment (torch, tensorflow, jax; ABBA order), 6
    processes, 8 windows x 20 steps per cell and process``: what one sequence ran, from its records."""
    alternated = [r for r in records if r.get("alternation")]
    if not alternated:
        return "no alternated process"
    first = alternated[0]
    blocks = len({r["alternation"]["block"] for r in alternated})
    processes = len({r["alternation"]["slot"] for r in alternated})
    repeats = len(sample_windows(first))
    steps = (first.get("timing") or {}).get("steps_per_repeat") or (sample_windows(first) or [{}])[0].get("steps")
    return (f"{first['cell']['model']} batch {(first.get('config') or {}).get('batch_size')}: {blocks} block(s) of one "
            f"process per environment ({', '.join(first['alternation']['environments'])}; ABBA order), {processes} "
            f"processes, {repeats} windows x {steps} steps per cell and process, an environment's two cells "
            "interleaved")


def resolution_text(rows: list[dict]) -> str:
    """``resolution reached: 2 of 6 ratios called, 1 unresolved, 3 machine busy; half-widths ±1.2%-±9.0%``."""
    rows = [row for row in rows if row.get("chosen", True)]  # one row per ratio (decompose.choose_sources)
    if not rows:
        return "resolution reached: no ratio (fewer than 2 samples per side)"
    counts = {status: sum(row["verdict_status"] == status for row in rows)
              for status in (verdict.CALLED, verdict.UNRESOLVED, verdict.BUSY)}
    widths = [row["half_width_pct"] for row in rows]
    return (f"resolution reached: {counts[verdict.CALLED]} of {len(rows)} ratios called, {counts[verdict.UNRESOLVED]} "
            f"unresolved, {counts[verdict.BUSY]} with the machine busy; CI half-widths ±{min(widths):.1f}% to "
            f"±{max(widths):.1f}% (a verdict needs ±{verdict.MAX_HALF_WIDTH_PCT:g}% and "
            f"{verdict.MIN_INDEPENDENT_SAMPLES} independent samples)")


def timing_rows(records: list[dict]) -> list[dict]:
    """The decomposition rows of the throughput records (the six ``DECOMPOSITION`` ratios, no mode effects)."""
    meanings = {meaning for _, _, meaning in DECOMPOSITION}
    throughput = [r for r in records if r.get("kind") == "throughput"]
    return [row for row in decomposition(throughput) if row["meaning"] in meanings]


def verdict_section(records: list[dict], *, run: str | None = None) -> str:
    """The timing verdicts of ``records`` (throughput records of an alternated sequence): heading, ``run`` (what
    ran, in words), the decomposition table, the resolution reached and the machine's quietness."""
    rows = timing_rows(records)
    failed = sorted({f"{r['cell']['model']} {Cell.of(r).label} (slot {(r.get('alternation') or {}).get('slot')})"
                     for r in records if r.get("kind") == "throughput" and r.get("status") != "ok"})
    lines = [HEADING, *([run] if run else []), decomposition_table(rows), resolution_text(rows),
             machine_text([r for r in records if r.get("kind") == "throughput" and r.get("status") == "ok"])]
    if failed:
        lines.append(f"failed processes (recorded; the others went on): {', '.join(failed)}")
    return "\n".join(lines)


def main_job_text(train_records: list[dict], timing_records: list[dict], *, run: str | None = None) -> str:
    """What ``nox -s compare`` prints that the README shows: the accuracy table and its summary, then the timing
    verdicts."""
    return "\n".join([ACCURACY_HEADING, results_table(train_records), "", *agreement_summary(train_records), "",
                      verdict_section(timing_records, run=run)])


_NUMBER = re.compile(r"[0-9][0-9.,:\-x%±]*")


def structure(text: str) -> list[str]:
    """The fixed lines of a main-job text, numbers masked: the headings, the two tables' header lines and the
    beginnings of the resolution and machine lines (what a README block must keep; the numbers are the run's)."""
    keep = []
    for line in text.splitlines():
        words = line.split()
        if line in (HEADING, ACCURACY_HEADING) or words[:2] in (["model", "implementation"], ["model", "batch"]):
            keep.append(" ".join(words))
        elif line.startswith(("resolution reached:", "machine:")):
            keep.append(line.split(":")[0] + ":")
    return [_NUMBER.sub("#", line) for line in keep]
