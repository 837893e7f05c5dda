"""Latency records compared: the table per model, the decomposition's ratios per batch size, the figure's points.

A latency record (``twinbench.measuring.latency``) holds, per batch size, every timed call's seconds. Records of one
cell are pooled (several runs: processes), and each comparison is made per batch size:

- ``latency_rows``: one row per cell (implementation x style x the other axes) and batch size: p50 with its
  order-statistic CI (``twinbench.stats.quantile_ci``) over the pooled calls, p90, p99, throughput (median over
  windows) and the first call's seconds (the longest of the runs: each process traces anew).
- ``latency_ratios``: the decomposition's ratios (``twinbench.results.decompose.DECOMPOSITION``: keras[torch] / torch,
  ...) of the p50 per batch size, ``ratio_ci`` over the pooled calls with the runs resampled first, and the verdict
  rules (``twinbench.results.verdict``): a verdict only from enough independent runs, a narrow CI and quiet windows.
  Where one side's implementation has no such style (the PyTorch twin has only ``call``), its ``call`` cell stands
  in: ``keras[torch] style=predict / torch`` is what a user switching from one to the other gets.

This module imports no framework (figures: ``twinbench.results.figures.latency_figure``).
"""

from __future__ import annotations

from twinbench.backends.environments import order
from twinbench.cell import CELL_AXES, Cell
from twinbench.results import verdict
from twinbench.results.decompose import (
    DECOMPOSITION,
    axes_key,
    decomposition_table,
    label,
    machine_minutes,
    resolution,
)
from twinbench.results.table import format_table
from twinbench.stats import quantile_ci, ratio_ci, summarize


def _batches(record: dict) -> dict[int, dict]:
    """Batch size -> the record's ``timing.batches`` entry."""
    return {entry["batch_size"]: entry for entry in (record.get("timing") or {}).get("batches") or []}


def pooled_cells(records: list[dict]) -> dict[tuple, dict[tuple, list[dict]]]:
    """Successful latency records by ``(model, input shape)``, then by cell ``(implementation, backend, axes)``."""
    groups: dict[tuple, dict[tuple, list[dict]]] = {}
    for record in records:
        if record.get("kind") == "latency" and record.get("status") == "ok":
            where = (record["cell"]["model"], tuple((record.get("model") or {}).get("input_shape") or ()))
            cell = (record["cell"]["implementation"], record["cell"]["backend"], axes_key(record))
            groups.setdefault(where, {}).setdefault(cell, []).append(record)
    return {where: dict(sorted(cells.items(), key=lambda item: (order(*item[0][:2]), str(item[0][2]))))
            for where, cells in sorted(groups.items())}


def calls_at(runs: list[dict], batch_size: int) -> tuple[list[float], list[int], list[dict]]:
    """The pooled calls of ``runs`` at ``batch_size``: seconds, the run each came from, and the timed windows."""
    seconds, labels, windows = [], [], []
    for index, record in enumerate(runs):
        entry = _batches(record).get(batch_size)
        if entry:
            seconds += entry["calls_s"]
            labels += [index] * len(entry["calls_s"])
            windows += entry.get("windows") or []
    return seconds, labels, windows


def latency_rows(records: list[dict]) -> list[dict]:
    """One row per model, cell and batch size: ``model, label, batch_size, runs, calls, p50 (quantile_ci), p90, p99,
    throughput (summarize over windows), first_call_s``."""
    rows = []
    for (model, _), cells in pooled_cells(records).items():
        for (implementation, backend, axes), runs in cells.items():
            sizes = sorted({size for record in runs for size in _batches(record)})
            for size in sizes:
                seconds, _, _ = calls_at(runs, size)
                entries = [_batches(r)[size] for r in runs if size in _batches(r)]
                rates = [size * w["calls"] / w["seconds"] for e in entries for w in e.get("windows") or []]
                rows.append({"model": model, "label": label((implementation, backend), axes), "batch_size": size,
                             "runs": len(entries), "calls": len(seconds),
                             **{name: quantile_ci(seconds, q) for name, q in (("p50", .5), ("p90", .9), ("p99", .99))},
                             "throughput": summarize(rates) if rates else None,
                             "first_call_s": max(e["first_call_s"] for e in entries)})
    return rows


def _side(cells: dict, pair: tuple[str, str], axes: tuple) -> tuple[list[dict] | None, tuple]:
    """The runs of ``pair`` in ``axes``, or, where its implementation has no ``style`` knob, in its only style."""
    if pair[0] not in CELL_AXES["style"].implementations:
        axes = tuple((name, value) for name, value in axes if name != "style")
    return cells.get((*pair, axes)), axes


def latency_ratios(records: list[dict], *, seed: int = 0) -> list[dict]:
    """The decomposition rows of the p50 per batch size (``twinbench.results.decompose.decomposition_table``'s keys):
    ``ratio_ci`` of the pooled calls of each side (runs resampled first), ``resolution`` and ``verdict.judge``."""
    rows = []
    for (model, _), cells in pooled_cells(records).items():
        for axes in sorted({axes for _, _, axes in cells}, key=lambda a: (len(a), str(a))):
            for numerator, denominator, meaning in DECOMPOSITION:
                (a_runs, a_axes), (b_runs, b_axes) = _side(cells, numerator, axes), _side(cells, denominator, axes)
                if not a_runs or not b_runs or axes not in (a_axes, b_axes):
                    continue  # a side missing, or both sides stood in for a group of their own
                for size in sorted(set.intersection(*({s for r in runs for s in _batches(r)}
                                                      for runs in (a_runs, b_runs)))):
                    a, a_labels, a_windows = calls_at(a_runs, size)
                    b, b_labels, b_windows = calls_at(b_runs, size)
                    if len(a) < 2 or len(b) < 2:
                        continue
                    names = (label(numerator, a_axes), label(denominator, b_axes))
                    result = ratio_ci(a, b, seed=seed, runs_a=a_labels, runs_b=b_labels)
                    row = {"model": model, "kind": "latency", "batch_size": size, "numerator": names[0],
                           "denominator": names[1], "meaning": meaning, "samples": "s per call (p50 = median)",
                           "runs_a": len(a_runs), "runs_b": len(b_runs), **result,
                           **resolution(result, machine_minutes([*a_runs, *b_runs]))}
                    row.update(verdict.judge(row, [(names[0], verdict.cell_contention(a_windows)),
                                                   (names[1], verdict.cell_contention(b_windows))]))
                    rows.append(row)
    return rows


def _ms(value) -> str:
    return "-" if value is None else f"{1e3 * value:.3g}"


def _ci(percentile: dict) -> str:
    """``0.31-0.35`` (ms); ``?`` for a bound too few calls give, ``none`` for both."""
    low, high = percentile["ci_low"], percentile["ci_high"]
    if low is None and high is None:
        return "none"
    return "-".join("?" if bound is None else _ms(bound) for bound in (low, high))


def latency_table(rows: list[dict]) -> str:
    """``latency_rows`` as one plain-text table per model (milliseconds)."""
    blocks = []
    for model in dict.fromkeys(row["model"] for row in rows):
        table = [[row["label"], str(row["batch_size"]),
                  f"{_ms(row['p50']['value'])} [{_ci(row['p50'])}]",
                  _ms(row["p90"]["value"]), _ms(row["p99"]["value"]),
                  "-" if row["throughput"] is None else f"{row['throughput']['median']:,.0f}",
                  _ms(row["first_call_s"]), f"{row['calls']}/{row['runs']}"]
                 for row in rows if row["model"] == model]
        blocks.append(f"{model}: inference latency per call (ms; p50 [95% CI])\n" + format_table(
            table, ["cell", "batch", "p50 [CI]", "p90", "p99", "samples/s", "first call", "calls/runs"]))
    return "\n\n".join(blocks)


def latency_lines(record: dict) -> list[str]:
    """What ``twinbench latency`` prints for one record: a line per batch size."""
    cell = record["cell"]
    lines = []
    for entry in record["timing"]["batches"]:
        p = entry["percentiles_s"]
        lines.append(f"{cell['model']} {Cell.of(record).label} batch {entry['batch_size']}: first call "
                     f"{_ms(entry['first_call_s'])} ms; p50 {_ms(p['p50']['value'])} ms (95% CI {_ci(p['p50'])}), "
                     f"p90 {_ms(p['p90']['value'])}, p99 "
                     f"{_ms(p['p99']['value'])} ms; {entry['throughput_samples_per_s']['median']:,.0f} samples/s")
    return lines


def latency_section(records: list[dict]) -> str:
    """What ``compare`` prints for latency records: the table per model, then the ratios of the p50 per batch size."""
    rows = latency_rows(records)
    if not rows:
        return ""
    return "\n".join(["", latency_table(rows), "",
                      "Ratios of the p50 per batch size (twinbench latency; >1: the first is slower):",
                      decomposition_table(latency_ratios(records))])
