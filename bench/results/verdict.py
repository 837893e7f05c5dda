"""When a ratio gets a verdict ("1.48x slower"), and what a row says instead when it does not (framework-free).

A verdict is a claim the tool makes for the user, so a decomposition row (``twinbench.results.decompose``) gets one
only when the measurement behind it can carry it:

1. **The machine was quiet.** Each timed window records what the kernel counted during it
   (``twinbench.measuring.contention``: other processes' CPU, this process's run-queue wait, steal) and whether that
   crossed a limit (``busy``). If more than ``BUSY_WINDOWS_LIMIT`` of either cell's sample windows were busy, the row
   says ``machine busy: others took 48% of the CPUs in 9 of 12 windows of torch; rerun on a quiet machine``.
   Records made before windows were counted (every record committed so far) have no counts: the row says
   ``contention not recorded`` and only rule 2 applies.
2. **The ratio is resolved.** At least ``MIN_INDEPENDENT_SAMPLES`` independent samples: processes (runs) per side,
   or paired ABBA blocks where two cells were interleaved in one process (windows of one process are not
   independent of each other: processes differ by 15-30% on a shared VM, windows within one by a few percent); and a
   95% CI no wider than ``±MAX_HALF_WIDTH_PCT``% of the ratio. Otherwise the row says ``unresolved (±9.7%, 6
   independent samples): about 25 more minutes of machine time would resolve it``: the minutes from the row's
   resolution per minute (the half-width shrinks as one over the square root of the machine time,
   ``twinbench.results.decompose.resolution``) and, for too few samples, the machine time one more sample took.

Only rows that pass both keep ``ratio_ci``'s verdict. The ratio and its CI are printed in every row either way: they
are data; only the verdict's words change.
"""

from __future__ import annotations

import math
import statistics

from twinbench.measuring.contention import OTHERS_SHARE_LIMIT, STEAL_SHARE_LIMIT

BUSY_WINDOWS_LIMIT = 0.25  # more than a quarter of a cell's sample windows busy: no verdict
MIN_INDEPENDENT_SAMPLES = 5  # processes per side, or paired ABBA blocks
MAX_HALF_WIDTH_PCT = 5.0  # the 95% CI's half-width, in % of the ratio

CALLED, BUSY, UNRESOLVED = "called", "busy", "unresolved"  # a row's ``verdict_status``

# What each reason of a busy window (``twinbench.measuring.contention.window``'s ``reasons``) means, and its share.
_REASONS = {"others": ("others took {:.0%} of the CPUs", "others_share"),
            "wait": ("its threads waited on a run queue {:.0%} of the time", "wait_share"),
            "steal": ("the hypervisor stole {:.0%} of the CPUs", "steal_share")}


def cell_contention(windows: list[dict]) -> dict:
    """How busy the machine was in one cell's sample windows (repeats or epochs, each with its ``contention``).

    Returns ``windows`` (all), ``counted`` (those with counts), ``flagged`` (busy ones) and ``reasons``
    (reason -> the shares of the windows it flagged)."""
    counted = [w["contention"] for w in windows if w.get("contention")]
    reasons: dict[str, list[float]] = {}
    for counts in counted:
        for reason in counts.get("reasons") or []:
            reasons.setdefault(reason, []).append(counts[_REASONS[reason][1]])
    return {"windows": len(windows), "counted": len(counted), "flagged": sum(bool(c["busy"]) for c in counted),
            "reasons": reasons}


def contention_text(summary: dict) -> str:
    """``quiet`` (no window busy), ``busy 3/12`` (flagged / counted windows) or ``not recorded``."""
    if not summary["counted"]:
        return "not recorded"
    return "quiet" if not summary["flagged"] else f"busy {summary['flagged']}/{summary['counted']}"


def too_busy(summary: dict) -> bool:
    """More than ``BUSY_WINDOWS_LIMIT`` of the counted windows were busy."""
    return bool(summary["counted"]) and summary["flagged"] > BUSY_WINDOWS_LIMIT * summary["counted"]


def busy_reason(summary: dict, label: str) -> str:
    """``others took 48% of the CPUs in 9 of 12 windows of torch`` (median share over the windows each reason
    flagged; every reason that flagged one)."""
    parts = [f"{_REASONS[reason][0].format(statistics.median(shares))} in {len(shares)} of {summary['counted']} windows"
             for reason, shares in sorted(summary["reasons"].items(), key=lambda item: -len(item[1]))]
    return f"{', '.join(parts)} of {label}"


def independent_samples(row: dict) -> int:
    """Independent samples behind a ratio row: its pairs of ABBA blocks when paired, else the runs of its smaller
    side (windows or epochs of one process are not independent samples)."""
    return row["n_a"] if row.get("paired") else min(row["runs_a"], row["runs_b"])


def minutes_to_resolve(row: dict) -> float | None:
    """About how many more minutes of machine time would resolve ``row`` (``decompose.resolution``'s keys); ``None``
    when its records do not say how long they ran (no times, or records stamped only at their end: 0 minutes).

    Two needs, the larger wins: the CI's half-width down to ``MAX_HALF_WIDTH_PCT`` (``(resolution /
    MAX_HALF_WIDTH_PCT)^2`` minutes in all), and the samples up to ``MIN_INDEPENDENT_SAMPLES`` at the machine time
    one sample took so far (a pair: the row's minutes over its pairs; a run: over the runs of both sides)."""
    minutes = row.get("machine_min")
    if not minutes:
        return None
    for_width = (row["resolution_pct_min"] / MAX_HALF_WIDTH_PCT) ** 2 - minutes
    if row.get("paired"):
        for_samples = max(MIN_INDEPENDENT_SAMPLES - row["n_a"], 0) * minutes / row["n_a"]
    else:
        missing = sum(max(MIN_INDEPENDENT_SAMPLES - row[side], 0) for side in ("runs_a", "runs_b"))
        for_samples = missing * minutes / (row["runs_a"] + row["runs_b"])
    return max(for_width, for_samples, 0.0)


def judge(row: dict, contention: list[tuple[str, dict]]) -> dict:
    """The verdict fields of a ratio row (``ratio_ci``'s and ``decompose.resolution``'s keys, ``runs_a``, ``runs_b``).

    ``contention``: ``(label, cell_contention)`` of each side. Returns ``verdict`` (``ratio_ci``'s words when
    called, else why not and how to fix it), ``verdict_status`` (``called``, ``busy`` or ``unresolved``),
    ``independent_samples``, ``more_min`` (``minutes_to_resolve``) and ``contention`` (``quiet / busy 3/12``)."""
    independent = independent_samples(row)
    more = minutes_to_resolve(row)
    fields = {"independent_samples": independent, "more_min": more,
              "contention": " / ".join(contention_text(summary) for _, summary in contention)}
    busy = [busy_reason(summary, label) for label, summary in contention if too_busy(summary)]
    if busy:
        return {**fields, "verdict_status": BUSY,
                "verdict": f"machine busy: {'; '.join(busy)}; rerun on a quiet machine"}
    if independent < MIN_INDEPENDENT_SAMPLES or row["half_width_pct"] > MAX_HALF_WIDTH_PCT:
        minutes = max(math.ceil(more), 1) if more is not None else None
        how = ("the records do not say how long they ran; more runs would resolve it" if minutes is None else
               f"about {minutes} more minute{'s' if minutes > 1 else ''} of machine time would resolve it")
        return {**fields, "verdict_status": UNRESOLVED,
                "verdict": f"unresolved (±{row['half_width_pct']:.1f}%, {independent} independent samples): {how}"}
    return {**fields, "verdict_status": CALLED, "verdict": row["verdict"]}


RULES = (f"A ratio gets a verdict only from at least {MIN_INDEPENDENT_SAMPLES} independent samples (runs per side, or "
         f"paired ABBA blocks of interleaved cells), a 95% CI within ±{MAX_HALF_WIDTH_PCT:g}%, and no more than "
         f"{BUSY_WINDOWS_LIMIT:.0%} of either cell's windows busy (contention: a window is busy when, by the kernel's "
         f"count, other processes took more than {OTHERS_SHARE_LIMIT:.0%} of the CPUs or a hypervisor stole more than "
         f"{STEAL_SHARE_LIMIT:.0%}; 'not recorded' in records made before it was counted).")
