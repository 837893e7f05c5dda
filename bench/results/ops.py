"""The op-level breakdown in ``compare`` and ``report``: each trace record's ``ops`` table (``twinbench.ops``), and for
each ratio of the overhead decomposition (``DECOMPOSITION``) where the numerator's extra time per step lies."""

from __future__ import annotations

from twinbench.cell import Cell
from twinbench.ops import CATEGORIES, CATEGORY_LABELS
from twinbench.records import latest_runs
from twinbench.results.decompose import DECOMPOSITION

COLUMNS = (*CATEGORIES, "remainder")


def ops_lines(label: str, ops: dict) -> list[str]:
    """One cell's table as text: ms per step of each category and of the remainder, then its top ops."""
    ms = ops["ms_per_step"]
    lines = [f"{label}: {ops['wall_ms_per_step']:.2f} ms/step under {ops['profiler']} ({ops['steps']} steps, "
             f"{ops['threads']} thread(s) ran ops): "
             + ", ".join(f"{CATEGORY_LABELS[key]} {ms[key]:.2f}" for key in COLUMNS)]
    lines += [f"  {op['ms_per_step']:8.3f} ms  {op['category']:<11}  {op['name']}" for op in ops["top_ops"]]
    return lines


def difference_line(numerator: dict, denominator: dict) -> str:
    """``of the extra X ms/step: Y conv/matmul, Z layout, ..., R remainder``: the per-category differences of two
    ``ops`` tables (numerator minus denominator), which add up to the difference of their wall times."""
    a, b = numerator["ms_per_step"], denominator["ms_per_step"]
    extra = numerator["wall_ms_per_step"] - denominator["wall_ms_per_step"]
    parts = ", ".join(f"{a[key] - b[key]:+.2f} {CATEGORY_LABELS[key]}" for key in COLUMNS)
    return f"of the extra {extra:+.2f} ms/step: {parts}"


def ops_differences(records) -> list[dict]:
    """For each model, batch size and mode, each ``DECOMPOSITION`` ratio whose two cells have a trace:
    ``{"group", "numerator", "denominator", "meaning", "line"}``."""
    cells = {}
    for record in _traces(records):
        cell = Cell.of(record)
        group = (cell.model, record["config"]["batch_size"], cell.jit, cell.precision)
        cells.setdefault(group, {})[(cell.implementation, cell.backend)] = record
    rows = []
    for (model, batch_size, jit, precision), found in sorted(cells.items(), key=str):
        for numerator, denominator, meaning in DECOMPOSITION:
            if numerator in found and denominator in found:
                a, b = found[numerator], found[denominator]
                rows.append({"group": f"{model} batch {batch_size} jit {jit} {precision}",
                             "numerator": Cell.of(a).label, "denominator": Cell.of(b).label, "meaning": meaning,
                             "line": difference_line(a["ops"], b["ops"])})
    return rows


def ops_section(records) -> str:
    """``compare``'s text for trace records: every cell's table, then the decomposition's differences."""
    traces = _traces(records)
    if not traces:
        return ""
    lines = ["", "Op-level breakdown (twinbench trace): ms per step under the framework's own profiler "
                 "(remainder = wall - time covered by ops: Python, dispatch, bookkeeping)"]
    for record in sorted(traces, key=lambda r: (Cell.of(r).model, Cell.of(r).sort_key)):
        lines += ops_lines(f"{Cell.of(record).model} {Cell.of(record).label}", record["ops"])
    for row in ops_differences(traces):
        lines.append(f"{row['group']}: {row['numerator']} / {row['denominator']} ({row['meaning']}): {row['line']}")
    return "\n".join(lines)


def ops_markdown(records) -> list[str]:
    """``report``'s section for trace records: one table row per cell, then the differences, as Markdown lines."""
    traces = sorted(_traces(records), key=lambda r: (Cell.of(r).model, Cell.of(r).sort_key))
    if not traces:
        return []
    headers = ["cell", "wall ms/step", *(CATEGORY_LABELS[key] for key in COLUMNS), "profiler"]
    out = ["## Op-level breakdown", "",
           "Milliseconds per step under each framework's own profiler (`twinbench trace`); categories split the time "
           "covered by ops (each op's exclusive time; overlapping ops share it), the remainder is the rest of the "
           "wall time (Python, dispatch, bookkeeping). The profiler slows the steps: read the shares, and take the "
           "step times from the throughput runs.", "",
           "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for record in traces:
        ops = record["ops"]
        cells = [f"{Cell.of(record).model} {Cell.of(record).label}", f"{ops['wall_ms_per_step']:.2f}",
                 *(f"{ops['ms_per_step'][key]:.2f}" for key in COLUMNS), ops["profiler"]]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out += [f"- {row['group']}, {row['numerator']} / {row['denominator']} ({row['meaning']}): {row['line']}"
            for row in ops_differences(traces)]
    return [*out, ""]


def _traces(records) -> list[dict]:
    """The latest successful trace record of each cell."""
    return [r for r in latest_runs([r for r in records if r.get("kind") == "trace"]) if r.get("status") == "ok"]
