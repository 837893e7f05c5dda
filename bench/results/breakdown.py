"""A step's Python time by cause, and the cost of one layer call, in ``compare`` and ``report``.

- ``breakdown`` records (``twinbench breakdown``): each cell's ms per step by family of causes (``twinbench.causes``),
  and for each ratio of the overhead decomposition (``DECOMPOSITION``) whose two cells have one, where the
  numerator's extra time per step goes: "of the extra X ms/step: Y in layer-call machinery (its top functions),
  Z in op dispatch, ...". X is the gap of the *unprofiled* step times; the families split the *profiled* gap, which
  holds the profiler's own cost too (its cost per call x the calls profiled, recorded); what the families and the
  profiler's cost do not account for is shown as unexplained.
- ``calls`` records (``twinbench calls``): µs per call of each layer type, pass and size, and the fixed cost per call
  and cost per element fitted through the sweep, one column per implementation.

Framework-free: reads records only.
"""

from __future__ import annotations

from twinbench.cell import Cell
from twinbench.records import latest_runs
from twinbench.results.decompose import DECOMPOSITION


def _latest(records, kind: str) -> list[dict]:
    return [r for r in latest_runs([r for r in records if r.get("kind") == kind]) if r.get("status") == "ok"]


def families(record: dict) -> dict[str, dict]:
    """``{family: {"ms": ms per step (sum of its groups' medians), "top": [(function, ms), ...]}}``, largest first."""
    out: dict[str, dict] = {}
    for group in record["breakdown"]["groups"].values():
        entry = out.setdefault(group["family"], {"ms": 0.0, "top": []})
        entry["ms"] += group["ms_per_step"]["median"]
        entry["top"] += [(top["function"], top["ms_per_step"]) for top in group["top"]]
    for entry in out.values():
        entry["top"] = sorted(entry["top"], key=lambda item: -item[1])[:2]
    return dict(sorted(out.items(), key=lambda item: -item[1]["ms"]))


def _step_ms(record: dict, key: str = "step_s") -> float:
    return 1e3 * record["timing"][key]["median"]


def difference_line(numerator: dict, denominator: dict) -> str:
    """``of the extra X ms/step: Y in layer-call machinery (top functions), ...; unexplained R``."""
    a, b = families(numerator), families(denominator)
    extra = _step_ms(numerator) - _step_ms(denominator)
    profiler = numerator["profiler"]["estimated_ms_per_step"] - denominator["profiler"]["estimated_ms_per_step"]
    parts, explained = [], 0.0
    for family in sorted(set(a) | set(b), key=lambda f: -abs(a.get(f, {"ms": 0})["ms"] - b.get(f, {"ms": 0})["ms"])):
        delta = a.get(family, {"ms": 0.0})["ms"] - b.get(family, {"ms": 0.0})["ms"]
        explained += delta
        top = ", ".join(name.rpartition(":")[2] for name, _ in a.get(family, {"top": []})["top"])
        parts.append(f"{delta:+.2f} in {family}" + (f" ({top})" if top and delta > 0 else ""))
    unexplained = extra - (explained - profiler)
    return (f"of the extra {extra:+.2f} ms/step (unprofiled): " + ", ".join(parts)
            + f"; less the profiler's own {profiler:+.2f}; unexplained {unexplained:+.2f}")


def breakdown_differences(records) -> list[dict]:
    """For each model, batch size and mode, each ``DECOMPOSITION`` ratio whose two cells have a breakdown."""
    cells: dict[tuple, dict] = {}
    for record in _latest(records, "breakdown"):
        cell = Cell.of(record)
        cells.setdefault((cell.model, record["config"]["batch_size"], cell.jit, cell.precision), {})[
            (cell.implementation, cell.backend)] = record
    rows = []
    for (model, batch_size, jit, precision), found in sorted(cells.items(), key=str):
        for numerator, denominator, meaning in DECOMPOSITION:
            if numerator in found and denominator in found:
                a, b = found[numerator], found[denominator]
                rows.append({"group": f"{model} batch {batch_size} jit {jit} {precision}",
                             "numerator": Cell.of(a).label, "denominator": Cell.of(b).label, "meaning": meaning,
                             "line": difference_line(a, b)})
    return rows


def beside(rows: list[dict], records) -> list[str]:
    """For each decomposition row (``twinbench.results.decompose.decomposition``: ``model``, ``batch_size``,
    ``numerator``, ``denominator``) whose two cells have a breakdown at that model and batch, the line that splits its
    extra time by cause: ``cifar_cnn batch 64, keras[torch] / torch: of the extra ...``."""
    found = {(row["group"].split(" batch ")[0], int(row["group"].split(" batch ")[1].split()[0]), row["numerator"],
              row["denominator"]): row["line"] for row in breakdown_differences(records)}
    lines = []
    for row in rows:
        key = (row.get("model"), row.get("batch_size"), row.get("numerator"), row.get("denominator"))
        if key in found:
            lines.append(f"{key[0]} batch {key[1]}, {key[2]} / {key[3]}: {found.pop(key)}")
    return lines


def cell_line(record: dict) -> str:
    """One cell: its step time, the profiled one, the profiler's estimated own part, the counts and the families."""
    cell, profiler = Cell.of(record), record["profiler"]
    counts = record["breakdown"]["counts_per_step"]
    head = (f"{cell.model} {cell.label} batch {record['config']['batch_size']}: {_step_ms(record):.2f} ms/step "
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
        bars.setdefault(f"{cell.model} batch {record['config']['batch_size']}", {})[cell.label] = {
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
