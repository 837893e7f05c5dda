"""A step's Python time by cause, and the cost of one layer call, in ``compare`` and ``report``.

- ``breakdown`` records (``twinbench breakdown``): each cell's ms per step by family of causes (``twinbench.causes``),
  and for each ratio of the overhead decomposition (``DECOMPOSITION``) whose two cells have one (training steps or
  inference calls alike), for an implementation eager against compiled, and for each what-if against the plain cell,
  where the numerator's extra time per step goes: "of the extra X ms/step: Y in layer-call machinery (its top
  functions), Z in op dispatch, ...; unexplained R". X is the gap of the *unprofiled* step times (with its CI); each
  family's profiled time is first corrected for the profiler (its measured inflation, the profiled step less the
  unprofiled one, shared out by the family's calls), so the families and R add up to X exactly, and R is said to lie
  within X's CI or not. A what-if's row also says how much of the gap to the native twin it closes.
- ``calls`` records (``twinbench calls``): µs per call of each layer type, pass and size, and the fixed cost per call
  and cost per element fitted through the sweep, one column per implementation.

Framework-free: reads records only.
"""

from __future__ import annotations

import dataclasses

from twinbench.backends.what_if import NONE as NO_WHAT_IF
from twinbench.backends.what_if import WHAT_IFS
from twinbench.cell import CELL_AXES, Cell
from twinbench.records import latest_runs
from twinbench.results.decompose import DECOMPOSITION


def _latest(records, kind: str) -> list[dict]:
    return [r for r in latest_runs([r for r in records if r.get("kind") == kind]) if r.get("status") == "ok"]


def families(record: dict, *, corrected: bool = False) -> dict[str, dict]:
    """``{family: {"ms": ms per step (sum of its groups' medians), "top": [(function, ms), ...]}}``, largest first.

    ``corrected``: each group's profiled time less its share of the profiler's measured inflation (``inflation_ms``:
    the profiled step less the unprofiled one), shared out by the group's calls (cProfile's cost is a price per call,
    Python's and C functions' alike): what the family takes of the *unprofiled* step, as far as calls say.
    """
    groups = record["breakdown"]["groups"].values()
    calls = sum(group.get("calls_per_step", 0) for group in groups)
    inflation = inflation_ms(record) if corrected and calls > 0 else 0.0
    out: dict[str, dict] = {}
    for group in groups:
        entry = out.setdefault(group["family"], {"ms": 0.0, "top": []})
        entry["ms"] += group["ms_per_step"]["median"] - inflation * group.get("calls_per_step", 0) / max(calls, 1)
        entry["top"] += [(top["function"], top["ms_per_step"]) for top in group["top"]]
    for entry in out.values():
        entry["top"] = sorted(entry["top"], key=lambda item: -item[1])[:2]
    return dict(sorted(out.items(), key=lambda item: -item[1]["ms"]))


def inflation_ms(record: dict) -> float:
    """The profiler's measured cost per step: the profiled windows' median step less the unprofiled ones', in ms."""
    return _step_ms(record, "profiled_step_s") - _step_ms(record)


def _step_ms(record: dict, key: str = "step_s") -> float:
    return 1e3 * record["timing"][key]["median"]


def _half_width_ms(record: dict) -> float:
    """Half the width of the unprofiled step time's 95% CI, in ms (0 where the record has none)."""
    step = record["timing"]["step_s"]
    low, high = step.get("ci_low"), step.get("ci_high")
    return 0.0 if low is None or high is None else 500.0 * (high - low)


def split(numerator: dict, denominator: dict) -> dict:
    """Where the numerator's extra time per step goes, from two breakdown records.

    ``extra_ms``: the gap of the unprofiled step times (medians), ``ci_ms``: its CI's half width (the two step times'
    half widths added in quadrature); ``families``: ``[(family, ms, top functions)]``, each family's ms per step in
    the numerator less the denominator's, both corrected for the profiler (``families(corrected=True)``: its measured
    inflation shared out by calls), largest change first; ``profiler_ms``: the inflation the correction removed, the
    numerator's less the denominator's; ``unexplained_ms``: what is left, ``extra - sum of families``: the time of the
    profiled windows no function's self time holds (the clock's edges, waits outside Python's view), so that the
    families and the unexplained add up to the gap exactly; ``within_ci``: whether the unexplained part lies inside
    the gap's CI (the families account for the gap as far as it is known).
    """
    a, b = families(numerator, corrected=True), families(denominator, corrected=True)
    extra = _step_ms(numerator) - _step_ms(denominator)
    ci = (_half_width_ms(numerator) ** 2 + _half_width_ms(denominator) ** 2) ** 0.5
    rows = []
    for family in sorted(set(a) | set(b), key=lambda f: -abs(a.get(f, {"ms": 0})["ms"] - b.get(f, {"ms": 0})["ms"])):
        delta = a.get(family, {"ms": 0.0})["ms"] - b.get(family, {"ms": 0.0})["ms"]
        top = [name.rpartition(":")[2] for name, _ in (a if delta > 0 else b).get(family, {"top": []})["top"]]
        rows.append((family, delta, top))
    unexplained = extra - sum(delta for _, delta, _ in rows)
    return {"extra_ms": extra, "ci_ms": ci, "families": rows,
            "profiler_ms": inflation_ms(numerator) - inflation_ms(denominator), "unexplained_ms": unexplained,
            "within_ci": abs(unexplained) <= ci}


def difference_line(numerator: dict, denominator: dict) -> str:
    """``of the extra X ms/step (±CI, unprofiled): Y in layer-call machinery (top functions), ...; unexplained R``,
    whether R lies within the gap's CI, and the profiler's inflation the families were corrected for (``split``)."""
    parts = split(numerator, denominator)
    text = ", ".join(f"{delta:+.2f} in {family}" + (f" ({', '.join(top)})" if top and delta > 0 else "")
                     for family, delta, top in parts["families"])
    verdict = ("within the gap's CI: the families account for it" if parts["within_ci"]
               else "outside the gap's CI: not accounted for")
    unit = "ms/call" if Cell.of(numerator).phase == "infer" else "ms/step"
    return (f"of the extra {parts['extra_ms']:+.2f} {unit} (±{parts['ci_ms']:.2f}, unprofiled): {text}; "
            f"unexplained {parts['unexplained_ms']:+.2f} ({verdict}); the families less the profiler's measured "
            f"inflation, shared by calls ({parts['profiler_ms']:+.2f} more in the numerator)")


def _where(record: dict) -> tuple:
    """What two breakdowns must share to be compared: model, batch, phase, precision."""
    cell = Cell.of(record)
    return cell.model, record["config"]["batch_size"], cell.phase, cell.precision


def _title(where: tuple) -> str:
    model, batch_size, phase, precision = where
    return " ".join([model, phase, f"batch {batch_size}", *([precision] if precision != "float32" else [])])


def _same_style(a: Cell, b: Cell) -> bool:
    """Inference calls of two cells compare where they are written alike, or one has no other way (torch)."""
    styles = CELL_AXES["style"].implementations
    return a.style == b.style or a.implementation not in styles or b.implementation not in styles


def _pairs(records: list[dict]):
    """``(numerator, denominator, meaning)`` of one group's records: each ``DECOMPOSITION`` ratio (same jit, no
    what-if), the compile effect of an implementation (eager ``jit=off`` / compiled) and each what-if (the patched
    cell / the plain one)."""
    cells = [(Cell.of(record), record) for record in records]
    plain = [(cell, record) for cell, record in cells if cell.what_if == NO_WHAT_IF]
    for numerator, denominator, meaning in DECOMPOSITION:
        for a, ra in plain:
            for b, rb in plain:
                if a.pair == numerator and b.pair == denominator and a.jit == b.jit and _same_style(a, b):
                    yield ra, rb, meaning
    for a, ra in plain:
        for b, rb in plain:
            if a.pair == b.pair and a.jit == "off" and b.jit != "off" and a.style == b.style:
                yield ra, rb, "compile effect: eager / compiled"
    for a, ra in cells:
        for b, rb in plain:
            if a.what_if != NO_WHAT_IF and dataclasses.replace(a, what_if=NO_WHAT_IF) == b:
                yield ra, rb, f"what-if {a.what_if}: {WHAT_IFS[a.what_if].group} short-circuited / as is"


def _closes(patched: dict, plain: dict, records: list[dict]) -> str:
    """What a what-if's saving is of the gap to the native twin (``DECOMPOSITION``'s first denominator for its
    pair), where the group has that twin: ``closes 1.20 of the 3.00 ms/step gap to torch (40%)``."""
    cell = Cell.of(plain)
    saved = _step_ms(plain) - _step_ms(patched)
    unit = "ms/call" if cell.phase == "infer" else "ms/step"
    ci = (_half_width_ms(plain) ** 2 + _half_width_ms(patched) ** 2) ** 0.5
    for numerator, denominator, _ in DECOMPOSITION:
        if numerator != cell.pair:
            continue
        native = [r for r in records if Cell.of(r).pair == denominator and Cell.of(r).what_if == NO_WHAT_IF
                  and Cell.of(r).jit == cell.jit and _same_style(cell, Cell.of(r))]
        if native:
            gap = _step_ms(plain) - _step_ms(native[0])
            share = f" ({100 * saved / gap:.0f}%)" if gap > 0 else ""
            return (f"saves {saved:+.2f} {unit} (±{ci:.2f}); closes {saved:.2f} of the {gap:.2f} {unit} gap to "
                    f"{Cell.of(native[0]).label}{share}")
    return f"saves {saved:+.2f} {unit}"


def breakdown_differences(records) -> list[dict]:
    """For each model, batch size, phase and precision: each pair of breakdowns ``_pairs`` names, with its split
    (``split``) and line; a what-if's row also says how much of the gap to the native twin it closes."""
    groups: dict[tuple, list] = {}
    for record in _latest(records, "breakdown"):
        groups.setdefault(_where(record), []).append(record)
    rows = []
    for where, found in sorted(groups.items(), key=lambda item: str(item[0])):
        for a, b, meaning in _pairs(found):
            line = difference_line(a, b)
            if Cell.of(a).what_if != NO_WHAT_IF:
                line = f"{_closes(a, b, found)}; {line}"
            rows.append({"group": _title(where), "model": where[0], "batch_size": where[1], "phase": where[2],
                         "numerator": Cell.of(a).label, "denominator": Cell.of(b).label, "meaning": meaning,
                         "split": split(a, b), "line": line})
    return rows


def beside(rows: list[dict], records) -> list[str]:
    """For each decomposition row (``twinbench.results.decompose.decomposition``: ``model``, ``batch_size``,
    ``numerator``, ``denominator``: training steps) whose two cells have a training breakdown at that model and
    batch, the line that splits its extra time by cause: ``cifar_cnn batch 64, keras[torch] / torch: of the extra
    ...``."""
    found: dict[tuple, dict] = {}
    for record in _latest(records, "breakdown"):
        cell = Cell.of(record)
        if cell.phase == "train" and cell.what_if == NO_WHAT_IF:
            found[(cell.model, record["config"]["batch_size"], cell.label)] = record
    lines = []
    for row in rows:
        model, batch_size = row.get("model"), row.get("batch_size")
        a = found.get((model, batch_size, row.get("numerator")))
        b = found.get((model, batch_size, row.get("denominator")))
        if a is not None and b is not None:
            lines.append(f"{model} batch {batch_size}, {row['numerator']} / {row['denominator']}: "
                         f"{difference_line(a, b)}")
    return lines


def cell_line(record: dict) -> str:
    """One cell: its step time, the profiled one, the profiler's estimated own part, the counts and the families."""
    cell, profiler = Cell.of(record), record["profiler"]
    counts = record["breakdown"]["counts_per_step"]
    step = "ms/call" if cell.phase == "infer" else "ms/step"
    head = (f"{cell.model} {cell.label} batch {record['config']['batch_size']}: {_step_ms(record):.2f} {step} "
            f"({_step_ms(record, 'profiled_step_s'):.2f} profiled, of which ~{profiler['estimated_ms_per_step']:.2f} "
            f"the profiler's own: {profiler['cost_per_call_us']['median']:.2f} µs x "
            f"{profiler['profiled_calls_per_step']} calls); "
            + ", ".join(f"{value:.0f} {name}" for name, value in counts.items()) + " per step")
    parts = [f"{family} {entry['ms']:.2f}" for family, entry in families(record).items()]
    return head + "\n  " + ", ".join(parts)


def breakdown_section(records) -> str:
    """``compare``'s text for breakdown records."""
    found = sorted(_latest(records, "breakdown"), key=lambda r: Cell.of(r).sort_key)
    if not found:
        return ""
    lines = ["", "Python time by cause (twinbench breakdown): ms per step under cProfile, by family"]
    lines += [cell_line(record) for record in found]
    lines += [f"{row['group']}: {row['numerator']} / {row['denominator']} ({row['meaning']}): {row['line']}"
              for row in breakdown_differences(found)]
    return "\n".join(lines)


def breakdown_markdown(records) -> list[str]:
    """``report``'s section for breakdown records."""
    section = breakdown_section(records)
    if not section:
        return []
    found = sorted(_latest(records, "breakdown"), key=lambda r: Cell.of(r).sort_key)
    out = ["## Python time by cause", "",
           "Milliseconds per step under cProfile (`twinbench breakdown`), each function's self time folded into the "
           "families of `twinbench.causes`; the profiler inflates every call by its measured cost per call, "
           "so read the shares and take step times from the throughput runs.", ""]
    out += [f"- {line}" for record in found for line in cell_line(record).split("\n  ")]
    out += [""] + [f"- {row['group']}, {row['numerator']} / {row['denominator']} ({row['meaning']}): {row['line']}"
                   for row in breakdown_differences(found)]
    return [*out, ""]


def stacked_bars(records) -> dict[str, dict[str, dict[str, float]]]:
    """What the figure draws: ``{model and batch: {cell label: {family: ms per step}}}``."""
    bars: dict[str, dict] = {}
    for record in sorted(_latest(records, "breakdown"), key=lambda r: Cell.of(r).sort_key):
        cell = Cell.of(record)
        bars.setdefault(_title(_where(record)), {})[cell.label] = {
            family: entry["ms"] for family, entry in families(record).items()}
    return bars


def calls_section(records) -> str:
    """``compare``'s text for calls records: per layer, pass and variant, each implementation's fixed cost per call
    (µs, 95% CI) and cost per element (ns), then µs per call at the tiny size."""
    found = sorted(_latest(records, "calls"), key=lambda r: Cell.of(r).sort_key)
    if not found:
        return ""
    lines = ["", "Cost of one layer call (twinbench calls): fixed µs per call [95% CI] + ns per input element, "
                 "fitted over the size sweep; tiny: µs per call at batch 1, a handful of features"]
    for record in found:
        label = Cell.of(record).label
        tiny = {(r["layer"], r["pass"], r["compiled"]): r["us_per_call"] for r in record["rows"] if r["size"] == "tiny"}
        for fit in record["fits"]:
            key = (fit["layer"], fit["pass"], fit["compiled"])
            i, s = fit["intercept"], fit["slope"]
            small = f"; tiny {tiny[key]['median']:.1f} µs" if key in tiny else ""
            lines.append(f"{fit['layer']:<19} {fit['pass']:<8} {'compiled' if fit['compiled'] else 'eager':<8} "
                         f"{label:<17} {i['value']:9.1f} µs [{i['ci_low']:.1f}, {i['ci_high']:.1f}] + "
                         f"{1e3 * s['value']:.3f} ns/element{small}")
        if record.get("note"):
            lines.append(f"{label}: {record['note']}")
    return "\n".join(lines)
