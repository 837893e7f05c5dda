"""An A/B of two stacks with a null calibration: faster, slower or no difference, per cell and per ratio.

``twinbench ab`` (``twinbench.studies.versions.run_ab``) runs one environment's cells in three virtualenvs that take
turns in short processes, ABBA order (``twinbench.measuring.alternate``): **A** (the baseline stack), **B** (the
change: a release, a checkout, a wheel) and **A'**, a second, separate environment of A's stack. Each process writes
its throughput records with its slot (``record["alternation"]``: ``environment`` is ``A``, ``B`` or ``A'``). Per block
of one process each:

- a **cell** (``torch``, ``keras[torch]``) gives the pair (its median step time in B, in A): ``B / A``;
- a **ratio** (``keras[torch] / torch``, the two cells of one process) gives (the ratio in B, in A): how the change
  moved the overhead, with what moves both cells alike (the machine, the process) cancelled;
- the **null** pairs A' with A the same way: what two separate environments of one stack differ by with nothing
  changed. ``mde_pct``, the smallest change the A/B could have seen, is how far the null's 95% CI reaches from 1.0.

Each ``B / A`` and ``A' / A`` is ``twinbench.stats.paired_ratio_ci`` over the blocks (each block one independent
sample). A row says faster or slower only when ``twinbench.results.verdict.judge`` calls it (a quiet machine, at least
``MIN_INDEPENDENT_SAMPLES`` blocks, a CI within ``MAX_HALF_WIDTH_PCT``), the null is resolved and includes 1.0, and
the change lies beyond the null's reach; else it says why not. Imports no framework.
"""

from __future__ import annotations

import statistics

from twinbench.backends.environments import ENVIRONMENTS, implementation_label
from twinbench.results import verdict
from twinbench.results.decompose import (
    DECOMPOSITION,
    machine_minutes,
    resolution,
    runs_contention,
    time_samples,
)
from twinbench.results.table import format_table
from twinbench.stats import paired_ratio_ci

A, B, NULL = "A", "B", "A'"  # the slots' names in record["alternation"]["environment"]
SLOTS = (A, B, NULL)
NO_DIFFERENCE, NULL_DIFFERS = "no difference", "null differs"  # verdict_status beside verdict's CALLED/BUSY/UNRESOLVED


def slot_records(records: list[dict], sequence: str | None = None) -> dict[str, list[dict]]:
    """``{slot: its successful throughput records}`` of one alternated sequence (the latest where not named)."""
    timed = [r for r in records if r.get("kind") == "throughput" and r.get("alternation")
             and r["alternation"].get("environment") in SLOTS]
    if sequence is None and timed:
        sequence = max(timed, key=lambda r: r.get("started") or "")["alternation"]["sequence"]
    return {slot: [r for r in timed if r["alternation"]["sequence"] == sequence
                   and r["alternation"]["environment"] == slot and r.get("status") == "ok"] for slot in SLOTS}


def block_medians(records: list[dict]) -> dict[int, dict[tuple, float]]:
    """``{block: {(implementation, backend): median step time}}`` of one slot's records (each process's cells)."""
    blocks: dict[int, dict[tuple, float]] = {}
    for record in records:
        samples = time_samples(record)[0]
        if samples:
            cell = record["cell"]
            blocks.setdefault(record["alternation"]["block"], {})[(cell["implementation"], cell["backend"])] = \
                statistics.median(samples)
    return blocks


def _values(blocks: dict, what) -> dict[int, float]:
    """Per block, a cell's median (``what``: a pair) or a ratio's (``what``: (numerator, denominator))."""
    out = {}
    for block, cells in blocks.items():
        if isinstance(what[0], tuple):
            if what[0] in cells and what[1] in cells:
                out[block] = cells[what[0]] / cells[what[1]]
        elif what in cells:
            out[block] = cells[what]
    return out


def _paired(other: dict[int, float], base: dict[int, float], n_boot: int) -> dict | None:
    pairs = [(other[b], base[b]) for b in sorted(set(other) & set(base))]
    return paired_ratio_ci(pairs, n_boot=n_boot) if len(pairs) >= 2 else None


def mde_pct(null: dict | None) -> float | None:
    """The smallest change the A/B could have seen: how far the null's (A' / A) CI reaches from 1.0, in %."""
    if null is None:
        return None
    return 100.0 * max(null["ci_high"] - 1.0, 1.0 - null["ci_low"], 0.0)


def _what(env: str) -> list[tuple[str, object]]:
    """The cells of ``env`` and its ratios of two cells (``DECOMPOSITION``'s within one environment)."""
    pairs = list(ENVIRONMENTS[env])
    rows = [(implementation_label(*pair), pair) for pair in pairs]
    rows += [(f"{implementation_label(*num)} / {implementation_label(*den)}", (num, den))
             for num, den, _ in DECOMPOSITION if num in pairs and den in pairs]
    return rows


def ab_rows(slots: dict[str, list[dict]], env: str, *, n_boot: int = 2000) -> list[dict]:
    """One row per cell and per ratio of ``env``: ``b_over_a`` and ``null`` (``paired_ratio_ci`` results or None),
    ``mde_pct``, and the verdict fields (``verdict``, ``verdict_status``: ``verdict.judge``'s, or ``no difference``
    where the change lies within the null's reach, or ``null differs`` where separate environments alone differ)."""
    medians = {slot: block_medians(slots[slot]) for slot in SLOTS}
    rows = []
    for name, what in _what(env):
        a, b, a2 = (_values(medians[slot], what) for slot in SLOTS)
        if not a:
            continue
        row = {"what": name, "b_over_a": _paired(b, a, n_boot), "null": _paired(a2, a, n_boot)}
        row["mde_pct"] = mde_pct(row["null"])
        rows.append({**row, **_judge(row, slots, what)})
    return rows


def _side_records(records: list[dict], what) -> list[dict]:
    pairs = set(what) if isinstance(what[0], tuple) else {what}
    return [r for r in records if (r["cell"]["implementation"], r["cell"]["backend"]) in pairs]


def _judge(row: dict, slots: dict, what) -> dict:
    result = row["b_over_a"]
    if result is None:
        return {"verdict_status": verdict.UNRESOLVED, "verdict": "unresolved (fewer than 2 blocks with both A and B): "
                                                                 "run more --blocks"}
    a_side, b_side = _side_records(slots[A], what), _side_records(slots[B], what)
    fields = {**result, **resolution(result, machine_minutes(a_side + b_side))}
    judged = verdict.judge(fields, [(A, runs_contention(a_side)), (B, runs_contention(b_side))])
    if judged["verdict_status"] != verdict.CALLED:
        return judged
    null = row["null"]
    if null is None:
        return {**judged, "verdict_status": verdict.UNRESOLVED,
                "verdict": "no null calibration (fewer than 2 blocks with both A and A'): run more --blocks"}
    null_fields = verdict.judge({**null, **resolution(null, None)}, [])
    if null_fields["verdict_status"] != verdict.CALLED:
        return {**judged, "verdict_status": verdict.UNRESOLVED, "verdict": f"null calibration {null_fields['verdict']}"}
    if null["differs"]:
        return {**judged, "verdict_status": NULL_DIFFERS,
                "verdict": f"no verdict: two environments of A alone differ ({null['verdict']}); look for what "
                           f"differs between them"}
    change = 100.0 * abs(result["ratio"] - 1.0)
    if not result["differs"] or change <= row["mde_pct"]:
        return {**judged, "verdict_status": NO_DIFFERENCE,
                "verdict": f"no difference beyond ±{row['mde_pct']:.1f}% ({result['verdict']})"}
    return judged


def _ci(result: dict | None) -> str:
    return "-" if result is None else f"{result['ratio']:.3f} [{result['ci_low']:.3f}-{result['ci_high']:.3f}]"


def ab_table(rows: list[dict]) -> str:
    """The A/B table: B / A and A' / A with their 95% CIs, the smallest change seen, the verdict."""
    body = [[row["what"], _ci(row["b_over_a"]), _ci(row["null"]),
             "-" if row["mde_pct"] is None else f"±{row['mde_pct']:.1f}%", row["verdict"]] for row in rows]
    return format_table(body, ["cell or ratio", "B / A [95% CI]", "null A' / A [95% CI]", "smallest change seen",
                               "verdict"])
