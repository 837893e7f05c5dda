"""History: the decomposition's ratios over software stacks and over twinbench commits, and the steps in them.

Records kept from runs on several stacks (Keras releases, a local checkout) and at several twinbench commits are
collected into **series**: one per ratio (``keras[torch] / torch`` training step time first; the p50 latency at
batch 1 where latency records exist), per comparable group (model, kind, dataset, batch size, mode) and per kind of
machine (``machine_of``: CPU model and count, GPU), with

- a **version series**: one point per stack, ordered by the Keras version (``packaging.version``), every commit's
  records of that stack pooled; and
- a **commit series** per stack where a ratio's two cells ran at two commits or more: one point per commit, in the
  order of the first record each commit has (records carry no commit dates).

A record's stack is its Keras version (``record["environment"]["versions"]``) and, where the record names one, its
stack spec (``record["cell"]["stack"]`` or ``record["config"]["stack"]``: the project's default pins are ``""``):
two stacks never pool. Each point is a ratio row of the records behind it, made by the same code as every table:
``twinbench.results.decompose.decomposition`` (throughput and training records) or
``twinbench.results.latency.latency_ratios`` (latency records), so it carries ``twinbench.stats.ratio_ci``'s ratio
and 95% CI and ``twinbench.results.verdict``'s ``verdict_status``.

**Steps** (``find_steps``): asv's step detection (``asv.step_detect.detect_steps``: a piecewise-constant fit of the
series, weighted by one over each point's CI half-width) proposes where the series moves; each proposal is then
called or not by the verdict rules, and a proposal not called is dropped, its two segments merged, and the others
judged again (``find_steps``). The records of the segment before the step and of the segment after it are
pooled (stack set aside: the segment is one population if there is no step) into one ratio row each; the change is
``after / before`` with the interval ``[after.ci_low / before.ci_high, after.ci_high / before.ci_low]`` (both
rows' CIs divided: wider than the change's own CI, so a call is never easier than from the two intervals). A step is
**called** only when that interval excludes 1 and both segments' rows have a verdict (``verdict.CALLED``: enough
independent runs, a narrow CI, a quiet machine); otherwise it stays a candidate with the reason.

This module imports no framework (the page: ``twinbench.results.history_page``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import math

from asv.step_detect import detect_steps
from packaging.version import InvalidVersion, Version

from twinbench.results import verdict
from twinbench.results.decompose import DECOMPOSITION, decomposition, label
from twinbench.results.latency import latency_ratios

SCHEMA = "twinbench.history"
LATENCY_BATCH = 1  # the latency ratio the history follows: p50 at batch size 1
AXES = ("version", "commit")  # what a series runs over
# The ratios in the decomposition's order (Keras 3's overhead on PyTorch first): the order of the page.
RATIOS = [(label(numerator), label(denominator)) for numerator, denominator, _ in DECOMPOSITION]


# --------------------------------------------------------------------------------------------- a record's place


def stack_spec(record: dict) -> str:
    """The stack spec a record names (``""``: the project's default pins, or a record from before stacks)."""
    return str((record.get("cell") or {}).get("stack") or (record.get("config") or {}).get("stack") or "")


def keras_version(record: dict) -> str:
    """The Keras version installed where the record ran (``"unknown"`` when its environment does not say)."""
    return ((record.get("environment") or {}).get("versions") or {}).get("keras") or "unknown"


def commit_of(record: dict) -> str:
    """The twinbench commit a record ran at, short, ``+dirty`` for a modified checkout (``"unknown"``: not said)."""
    git = (record.get("environment") or {}).get("git") or {}
    if not git.get("commit"):
        return "unknown"
    return git["commit"][:10] + ("+dirty" if git.get("dirty") else "")


def machine_of(record: dict) -> str:
    """The kind of machine a record ran on: CPU model and logical CPUs, and the GPU where there was one (hosts of one
    kind are alike; ratios from different kinds of machine are different series)."""
    environment = record.get("environment") or {}
    machine, gpu = environment.get("machine") or {}, environment.get("gpu") or {}
    if not machine:
        return "machine not recorded"
    words = f"{machine.get('cpu_model') or 'unknown CPU'} x{machine.get('cpu_count_logical') or '?'}"
    return f"{words}, {gpu['name']}" if gpu.get("name") else words


def stack_label(version: str, spec: str) -> str:
    """``keras 3.10.0``, and the spec beside it where it says more than the Keras version."""
    if not spec or spec.replace(" ", "") == f"keras=={version}":
        return f"keras {version}"
    return f"keras {version} [{spec}]"


def version_order(version: str):
    """Sort key of a Keras version: ``packaging.version`` order; unparsable ones after, by name."""
    try:
        return (0, Version(version), "")
    except InvalidVersion:
        return (1, Version("0"), version)


def _without_stack(record: dict) -> dict:
    """A copy of ``record`` with its stack set aside, so records of several stacks pool into one ratio row."""
    plain = copy.copy(record)
    for key in ("cell", "config"):
        if isinstance(record.get(key), dict) and "stack" in record[key]:
            plain[key] = {name: value for name, value in record[key].items() if name != "stack"}
    return plain


# ---------------------------------------------------------------------------------------------- ratio rows


def ratio_rows(records: list[dict], *, seed: int = 0) -> list[dict]:
    """The ratio rows of ``records`` (one stack, or pooled with ``_without_stack``): the decomposition of throughput
    and training records, and the latency ratios at ``LATENCY_BATCH``."""
    timed = [r for r in records if r.get("kind", "train") in ("throughput", "train")]
    latency = [r for r in records if r.get("kind") == "latency"]
    rows = decomposition(timed, seed=seed) if timed else []
    rows += [row for row in (latency_ratios(latency, seed=seed) if latency else [])
             if row["batch_size"] == LATENCY_BATCH]
    return rows


def row_key(row: dict) -> tuple:
    """What makes a ratio row one series: kind, model, dataset, batch size, numerator and denominator (labels carry
    the mode)."""
    return (row["kind"], row["model"], row.get("dataset") or "", row["batch_size"], row["numerator"],
            row["denominator"])


def _point(x: str, row: dict, records: list[dict]) -> dict:
    """One point of a series: its x label, the row's ratio, CI and verdict, and what it pooled."""
    return {"x": x, "ratio": row["ratio"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "verdict_status": row["verdict_status"], "verdict": row["verdict"], "runs_a": row["runs_a"],
            "runs_b": row["runs_b"], "commits": sorted({commit_of(r) for r in records}),
            "records": len(records)}


def _first_started(records: list[dict]) -> str:
    return min((r.get("started") or "" for r in records), default="")


# ---------------------------------------------------------------------------------------------------- series


def collect(records: list[dict], *, seed: int = 0) -> list[dict]:
    """The series of ``records`` (successful ones; see the module docstring), each with its steps (``find_steps``).

    A series: ``id``, ``axis`` (``version`` or ``commit``), ``machine`` (``machine_of``), ``stack`` (the commit series' stack, else ``None``),
    ``kind, model, dataset, batch_size, numerator, denominator, meaning``, ``points`` (``x, ratio, ci_low, ci_high,
    verdict_status, verdict, runs_a, runs_b, commits, records``) and ``steps``. Keras' overhead on PyTorch first.
    """
    ok = [r for r in records if r.get("status") == "ok"]
    machines: dict[str, list[dict]] = {}
    for record in ok:
        machines.setdefault(machine_of(record), []).append(record)
    series: dict[tuple, dict] = {}
    for machine, here in machines.items():
        _collect_machine(machine, here, series, seed=seed)
    result = []
    for key in sorted(series, key=_series_order):
        entry = series[key]
        if entry["axis"] == "commit" and len(entry["points"]) < 2:
            continue  # the ratio's two cells met at one commit only: nothing over commits to show
        point_records, point_rows = entry.pop("_records"), entry.pop("_rows")
        entry["steps"] = find_steps(entry, point_records, point_rows=point_rows, seed=seed)
        result.append({"id": f"s{len(result)}", **entry})
    return result


def _collect_machine(machine: str, records: list[dict], series: dict, *, seed: int) -> None:
    """Add the points of one kind of machine's records to ``series`` (``collect``)."""
    stacks: dict[tuple, list[dict]] = {}
    for record in records:
        stacks.setdefault((keras_version(record), stack_spec(record)), []).append(record)
    ordered = sorted(stacks, key=lambda key: (version_order(key[0]), key[1]))

    def add(axis, stack, x, records_here):
        # One stack per point: set aside, its labels are the ratio's alone (keras[torch], not keras[torch] keras=3.10.0)
        for row in ratio_rows([_without_stack(r) for r in records_here], seed=seed):
            key = (axis, machine, stack, *row_key(row))
            entry = series.setdefault(key, {
                "axis": axis, "machine": machine, "stack": stack, "kind": row["kind"], "model": row["model"],
                "dataset": row.get("dataset"), "batch_size": row["batch_size"], "numerator": row["numerator"],
                "denominator": row["denominator"], "meaning": row["meaning"], "points": [], "_records": [], "_rows": []})
            entry["points"].append(_point(x, row, records_here))
            entry["_records"].append(records_here)
            entry["_rows"].append(row)

    for version, spec in ordered:
        add("version", None, stack_label(version, spec), stacks[(version, spec)])
    for version, spec in ordered:
        commits: dict[str, list[dict]] = {}
        for record in stacks[(version, spec)]:
            commits.setdefault(commit_of(record), []).append(record)
        if len(commits) < 2:
            continue
        for commit in sorted(commits, key=lambda c: (_first_started(commits[c]), c)):
            add("commit", stack_label(version, spec), commit, commits[commit])


def _series_order(key: tuple) -> tuple:
    """Keras' overhead on PyTorch first, then the decomposition's order (modes after their ratio), latency last."""
    axis, machine, stack, kind, model, dataset, batch_size, numerator, denominator = key
    pair = (numerator.split(" ")[0], denominator.split(" ")[0])  # the labels without their mode
    rank = RATIOS.index(pair) if pair in RATIOS else len(RATIOS)
    return (rank, numerator != pair[0] or denominator != pair[1], kind == "latency", AXES.index(axis), machine, model, kind, str(dataset),
            batch_size or 0, numerator, denominator, stack or "")


# ----------------------------------------------------------------------------------------------------- steps


def candidate_steps(ratios: list[float], half_widths: list[float]) -> list[int]:
    """Where asv's step detection puts a step in ``ratios``: the index of the first point after each step.

    Weights: one over each point's CI half-width (relative), so a vague point moves the fit less."""
    if len(ratios) < 2:
        return []
    weights = [1.0 / max(h, 1e-9) for h in half_widths]
    segments = detect_steps(list(ratios), weights)
    return [left for left, *_ in segments[1:]]


def find_steps(series: dict, point_records: list[list[dict]], *, point_rows: list[dict] | None = None,
               seed: int = 0) -> list[dict]:
    """asv's candidate steps of ``series``, each confirmed or not by the CI rule (module docstring).

    ``point_records``: the records behind each point (``point_rows``: their ratio rows, where made already: a
    segment of one point is that point, one stack, so its row is the point's). Candidates are judged between their neighbours; while any is
    not called, the one with the smallest change is dropped (its two segments merge, as asv merges pieces) and the
    rest are judged again, so a called step compares everything up to the next called step on either side.

    Each step: ``index`` (first point after it), ``before`` and ``after`` (x labels around it), ``change`` (after /
    before), ``change_low``, ``change_high``, ``called`` and ``why`` (``1.12x slower``, or why it is not called:
    for a dropped candidate, its judgement when it was dropped)."""
    points = series["points"]
    half = [(p["ci_high"] - p["ci_low"]) / 2.0 / p["ratio"] for p in points]
    cuts = candidate_steps([p["ratio"] for p in points], half)
    rows: dict[tuple[int, int], dict | None] = {(i, i + 1): row for i, row in enumerate(point_rows or [])}

    def segment(start, end):
        if (start, end) not in rows:
            records = [r for records in point_records[start:end] for r in records]
            rows[(start, end)] = _segment_row(records, series, seed=seed)
        return rows[(start, end)]

    dropped = {}
    while True:
        bounds = [0, *cuts, len(points)]
        judged = {cut: judge_step(segment(bounds[i - 1], cut), segment(cut, bounds[i + 1]))
                  for i, cut in enumerate(cuts, start=1)}
        weak = [cut for cut in cuts if not judged[cut]["called"]]
        if not weak:
            break
        drop = min(weak, key=lambda cut: abs(math.log(judged[cut]["change"])) if judged[cut]["change"] else -1.0)
        dropped[drop] = judged.pop(drop)
        cuts.remove(drop)
    return [{"index": cut, "before": points[cut - 1]["x"], "after": points[cut]["x"], **step}
            for cut, step in sorted({**judged, **dropped}.items())]


def _segment_row(records: list[dict], series: dict, *, seed: int) -> dict | None:
    """The series' ratio row of a segment's records, their stacks set aside (pooled as one population)."""
    key = row_key(series)
    rows = [row for row in ratio_rows([_without_stack(r) for r in records], seed=seed) if row_key(row) == key]
    return rows[0] if rows else None


def judge_step(before: dict | None, after: dict | None) -> dict:
    """``change``, ``change_low``, ``change_high``, ``called`` and ``why`` of a step between two segments' ratio rows
    (``ratio, ci_low, ci_high, verdict_status, verdict``).

    Called only when the change's interval (the two CIs divided) excludes 1 and both rows have a verdict."""
    if before is None or after is None:
        return {"change": None, "change_low": None, "change_high": None, "called": False,
                "why": "a segment has too few samples for a ratio"}
    change = after["ratio"] / before["ratio"]
    low, high = after["ci_low"] / before["ci_high"], after["ci_high"] / before["ci_low"]
    fields = {"change": change, "change_low": low, "change_high": high, "called": False}
    for side, row in (("before", before), ("after", after)):
        if row["verdict_status"] != verdict.CALLED:
            return {**fields, "why": f"no verdict {side} the step: {row['verdict']}"}
    if low <= 1.0 <= high:
        return {**fields, "why": f"no change called: the change's interval {low:.3f}-{high:.3f} includes 1"}
    words = f"{change:.2f}x slower" if change > 1 else f"{1 / change:.2f}x faster"
    return {**fields, "called": True, "why": f"{words} (interval {low:.3f}-{high:.3f})"}


DETECTOR = ("Steps: asv's step detection (asv.step_detect.detect_steps, weighted by one over each point's CI "
            "half-width) proposes them; a step is called only when the change after / before of the pooled segments "
            "(interval: the two 95% CIs divided) excludes 1 and both segments have a verdict. " + verdict.RULES)


def history(records: list[dict], *, sources: list[str] = (), seed: int = 0) -> dict:
    """The page's data (``history.json``): ``schema``, ``generated``, ``sources``, ``detector`` and ``series``."""
    return {"schema": SCHEMA, "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "sources": list(sources), "detector": DETECTOR, "series": collect(records, seed=seed)}
