"""Generation records compared: the table, the decomposition's ratios, the figure's points.

A generate record (``twinbench.measuring.generate``) holds every timed call's seconds and its tokens' arrival times.
Records of one cell are pooled (several runs: processes), and compared only with records of the same sizes (prompt
length, new tokens, batch size):

- ``generation_rows``: one row per cell: tokens per second (median over calls, with its CI), the time to first token
  (median, CI), the per-token latency p50 with its order-statistic CI (``twinbench.stats.quantile_ci``) over the pooled
  tokens, p90, p99, the first (compiling) call's seconds (the longest of the runs) and the peak host memory.
- ``generation_ratios``: the decomposition's ratios (``twinbench.results.decompose.DECOMPOSITION``: keras[torch] /
  torch, ...) of two figures, each ``ratio_ci`` over the pooled samples with the runs resampled first, and the verdict
  rules of ``twinbench.results.verdict`` (a verdict only from enough independent runs, a narrow CI and quiet
  windows; otherwise the row says why not): the seconds per generate call (the inverse of the ratio of tokens per
  second) and the per-token latency (one decode step; keras-hub's records have none).

This module imports no framework (the figure: ``twinbench.results.figures.generation_figure``).
"""

from __future__ import annotations

from twinbench.backends.environments import order
from twinbench.cell import Cell
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

# What each ratio compares: the samples a record gives, and their words in the table.
SAMPLES = {"call": "s per generate call (1 / tokens per s)", "per_token": "s per token after the first (p50)"}


def sizes_of(record: dict) -> tuple[int, int, int]:
    """``(prompt_length, new_tokens, batch_size)``: records are compared only at equal sizes."""
    timing = record.get("timing") or {}
    return timing.get("prompt_length"), timing.get("new_tokens"), timing.get("batch_size")


def pooled_cells(records: list[dict]) -> dict[tuple, dict[tuple, list[dict]]]:
    """Successful generate records by ``(model, sizes)``, then by cell ``(implementation, backend, axes)``."""
    groups: dict[tuple, dict[tuple, list[dict]]] = {}
    for record in records:
        if record.get("kind") == "generate" and record.get("status") == "ok":
            where = (record["cell"]["model"], sizes_of(record))
            cell = (record["cell"]["implementation"], record["cell"]["backend"], axes_key(record))
            groups.setdefault(where, {}).setdefault(cell, []).append(record)
    return {where: dict(sorted(cells.items(), key=lambda item: (order(*item[0][:2]), len(item[0][2]),
                                                                 str(item[0][2]))))
            for where, cells in sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1])))}


def samples(runs: list[dict], what: str) -> tuple[list[float], list[int]]:
    """The pooled samples of ``runs`` (``call``: each timed call's seconds; ``per_token``: the seconds between
    consecutive tokens) and the run each came from."""
    values, labels = [], []
    for index, record in enumerate(runs):
        timing = record["timing"]
        own = ([call["seconds"] for call in timing["calls"]] if what == "call" else timing.get("per_token_s") or [])
        values += own
        labels += [index] * len(own)
    return values, labels


def _windows(runs: list[dict]) -> list[dict]:
    return [window for record in runs for window in record["timing"].get("windows") or []]


def generation_rows(records: list[dict]) -> list[dict]:
    """One row per model, sizes and cell: ``model, sizes, label, runs, calls, tokens_per_s, ttft (summarize over
    calls), per_token p50/p90/p99 (quantile_ci; None without token times), first_call_s, host_peak_rss_bytes``."""
    rows = []
    for (model, sizes), cells in pooled_cells(records).items():
        for (implementation, backend, axes), runs in cells.items():
            calls, _ = samples(runs, "call")
            per_token, _ = samples(runs, "per_token")
            tokens = sizes[1] * sizes[2]
            ttft = [c["token_times_s"][0] for r in runs for c in r["timing"]["calls"] if c.get("token_times_s")]
            rows.append({"model": model, "sizes": sizes, "label": label((implementation, backend), axes),
                         "runs": len(runs), "calls": len(calls),
                         "tokens_per_s": summarize([tokens / s for s in calls]),
                         "ttft": summarize(ttft) if ttft else None,
                         **{name: quantile_ci(per_token, q) if per_token else None
                            for name, q in (("p50", .5), ("p90", .9), ("p99", .99))},
                         "first_call_s": max(r["timing"]["first_call_s"] for r in runs),
                         "host_peak_rss_bytes": max((r.get("memory") or {}).get("host_peak_rss_bytes") or 0
                                                    for r in runs) or None})
    return rows


def generation_ratios(records: list[dict], *, seed: int = 0) -> list[dict]:
    """The decomposition rows (``decomposition_table``'s keys) of the seconds per call and per token: ``ratio_ci``
    of the pooled samples of each side (runs resampled first), ``resolution`` and ``verdict.judge``."""
    rows = []
    for (model, sizes), cells in pooled_cells(records).items():
        for axes in sorted({axes for _, _, axes in cells}, key=lambda a: (len(a), str(a))):
            for numerator, denominator, meaning in DECOMPOSITION:
                a_runs, b_runs = cells.get((*numerator, axes)), cells.get((*denominator, axes))
                if not a_runs or not b_runs:
                    continue
                for what, words in SAMPLES.items():
                    (a, a_labels), (b, b_labels) = samples(a_runs, what), samples(b_runs, what)
                    if len(a) < 2 or len(b) < 2:
                        continue  # keras-hub's records have no per-token times
                    names = (label(numerator, axes), label(denominator, axes))
                    result = ratio_ci(a, b, seed=seed, runs_a=a_labels, runs_b=b_labels)
                    row = {"model": f"{model} {sizes[0]}+{sizes[1]} {'per call' if what == 'call' else 'per token'}",
                           "kind": "generate", "sizes": sizes,
                           "batch_size": sizes[2], "numerator": names[0],
                           "denominator": names[1], "meaning": meaning, "samples": words,
                           "runs_a": len(a_runs), "runs_b": len(b_runs), **result,
                           **resolution(result, machine_minutes([*a_runs, *b_runs]))}
                    row.update(verdict.judge(row, [(names[0], verdict.cell_contention(_windows(a_runs))),
                                                   (names[1], verdict.cell_contention(_windows(b_runs)))]))
                    rows.append(row)
    return rows


def _ms(value) -> str:
    """Milliseconds, three significant digits (whole ones from a second up)."""
    if value is None:
        return "-"
    return f"{1e3 * value:,.0f}" if value >= 1 else f"{1e3 * value:.3g}"


def _ci_ms(low, high) -> str:
    """``0.31-0.35`` (ms); ``?`` for a bound too few samples give."""
    return "-".join("?" if bound is None else _ms(bound) for bound in (low, high))


def _sizes_text(sizes) -> str:
    prompt, new, batch = sizes
    return f"prompt {prompt} tokens, {new} new tokens, batch {batch}"


def generation_table(rows: list[dict]) -> str:
    """``generation_rows`` as one plain-text table per model and sizes."""
    blocks = []
    for where in dict.fromkeys((row["model"], row["sizes"]) for row in rows):
        table = []
        for row in rows:
            if (row["model"], row["sizes"]) != where:
                continue
            rate, ttft, p50 = row["tokens_per_s"], row["ttft"], row["p50"]
            table.append([
                row["label"], f"{rate['median']:,.1f} [{rate['ci_low']:,.1f}-{rate['ci_high']:,.1f}]",
                "-" if ttft is None else f"{_ms(ttft['median'])} [{_ci_ms(ttft['ci_low'], ttft['ci_high'])}]",
                "-" if p50 is None else f"{_ms(p50['value'])} [{_ci_ms(p50['ci_low'], p50['ci_high'])}]",
                "-" if row["p90"] is None else _ms(row["p90"]["value"]),
                "-" if row["p99"] is None else _ms(row["p99"]["value"]),
                _ms(row["first_call_s"]),
                "-" if not row["host_peak_rss_bytes"] else f"{row['host_peak_rss_bytes'] / 2 ** 20:,.0f}",
                f"{row['calls']}/{row['runs']}"])
        blocks.append(f"{where[0]}: greedy generation, {_sizes_text(where[1])} (tokens/s and ms: median [95% CI]; "
                      "per token: between consecutive tokens)\n" + format_table(
                          table, ["cell", "tokens/s", "first token (ms)", "per token p50", "p90", "p99",
                                  "first call (ms)", "peak RSS (MiB)", "calls/runs"]))
    notes = ["'-' for keras-hub's generate: its compiled loop returns every token at the end (no token times)."] \
        if any(row["ttft"] is None for row in rows) else []
    return "\n\n".join(blocks + notes)


def generation_lines(record: dict) -> list[str]:
    """What ``twinbench generate`` prints for one record."""
    timing = record["timing"]
    rate, ttft, p = timing["tokens_per_s"], timing["time_to_first_token_s"], timing["per_token_percentiles_s"]
    parts = [f"{record['cell']['model']} {Cell.of(record).label}, {_sizes_text(sizes_of(record))}: first call "
             f"{_ms(timing['first_call_s'])} ms; {rate['median']:,.1f} tokens/s"]
    if ttft is not None:
        parts.append(f"first token {_ms(ttft['median'])} ms")
    if p is not None:
        parts.append(f"per token p50 {_ms(p['p50']['value'])} ms (95% CI "
                     f"{_ci_ms(p['p50']['ci_low'], p['p50']['ci_high'])}), p90 {_ms(p['p90']['value'])}, "
                     f"p99 {_ms(p['p99']['value'])} ms")
    else:
        parts.append(f"no token times ({timing['no_token_times']})")
    return ["; ".join(parts)]


def generation_section(records: list[dict]) -> str:
    """What ``compare`` prints for generate records: the table, then the ratios."""
    rows = generation_rows(records)
    if not rows:
        return ""
    return "\n".join(["", generation_table(rows), "",
                      "Ratios per generate call and per token (twinbench generate; >1: the first is slower):",
                      decomposition_table(generation_ratios(records))])
