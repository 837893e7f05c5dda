"""``python -m twinbench profiler-cost``: the shared profiler's own cost, measured finely enough to resolve 1%.

Every ``twinbench throughput`` record already carries an on/off comparison (``profiler_overhead``: windows with the
sampler on and off in ABBA order). On a quiet GPU machine that may be enough. On a shared 2-core VM,
two consecutive windows of the *same* configuration differ by a median 6%, one pair in ten by more than 16%
(docs/profiler_cost.md; the machine's load drifts over seconds), so that comparison resolves a few percent, not the 1% the profiler must stay under. This experiment is
built for that.

1. **Bracketing.** Windows alternate: off, on, off, on, ..., off. Each window with the sampler on is
   compared with the mean of the two off windows on either side of it, so a drift that is linear over
   three windows cancels. What is compared is the *share of the window's time lost*,
   ``1 - (bracketing off windows' mean time) / (window time)``; a slowdown is ``share / (1 - share)``.
2. **Several sampling intervals.** Each "on" window samples at one of the intervals: the production one
   (0.15 s, what ``twinbench train`` and ``twinbench throughput`` use) and, to make the cost large enough to see, much
   shorter ones (down to 2 ms), in a new random order in every cycle.

The data answer two questions.

- **What does the sampler cost at the production interval?** Measured directly: the mean share lost by
  the windows sampled at 0.15 s, with a bootstrap over cycles. This estimate needs no model, and it
  decides. One experiment gives it within a few percent on the VM; ``pooled_direct`` pools the
  experiments of several implementations (the profiler is the same code for all of them), and a run
  with ``--intervals 0.15`` and many cycles spends all its windows on it.
- **How does the cost grow with the sampling rate?** A least-squares line of the share lost on samples
  per second (counted in each window: samples inside the timed interval / its time). Through the
  origin, its slope is the cost of one sample in seconds, and it predicts the cost at 0.15 s under the
  assumption that the cost is proportional to the number of samples (a sampler that takes no sample
  does nothing: it waits on an ``Event``; its thread is started and joined at the window edges,
  outside the timed interval). Fitted with an intercept, it checks that assumption: a cost that does
  not come from samples shows as an intercept above zero. The report puts each interval's measured
  mean next to the line's prediction, so a reader sees whether the line fits.

Samples are counted by the time they were taken: only those inside the timed interval of their window.

This module never imports a framework itself; it goes through ``twinbench.backends.get_runner``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from twinbench.backends.base import StepClock
from twinbench.cell import Cell, CellConfig
from twinbench.measuring.environment import collect_environment
from twinbench.measuring.profiler import Profiler
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.measuring.timing import host_load
from twinbench.records import new_record, now_iso
from twinbench.results.text import record_label

PRODUCTION_INTERVAL_S = 0.15  # the default of twinbench train / twinbench throughput (Profiler's default)
DEFAULT_INTERVALS_S = (0.15, 0.05, 0.015, 0.005, 0.002)
MIN_CYCLES = 5  # fewer cycles give no confidence interval (and so no verdict that the cost is shown small)


@dataclass(frozen=True)
class CostConfig(CellConfig):
    """Everything that defines one profiler-cost experiment: the cell (every axis at its default) and the windows;
    recorded verbatim (``CellConfig.as_dict``)."""

    command = "profiler-cost"
    dataset = "synthetic"

    batch_size: int = 64
    steps: int = 10  # steps per window
    cycles: int = 20  # each cycle: one "on" window per interval, each bracketed by "off" windows
    intervals_s: tuple[float, ...] = DEFAULT_INTERVALS_S
    production_interval_s: float = PRODUCTION_INTERVAL_S
    warmup: int = 10
    seed: int = 0  # the model, the data, and the order of the intervals within each cycle
    learning_rate: float = 1e-3
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    threads: int | None = None
    n_boot: int = 2000


def cost_schedule(intervals, cycles: int, *, seed: int = 0) -> list[tuple[int, float | None]]:
    """``(cycle, interval or None for off)`` per window: off, on, off, on, ..., off.

    Within each cycle the intervals come in a new random order (seeded), so no interval always follows
    another one; every "on" window has an "off" window on each side.

    >>> cost_schedule([0.1, 0.01], 2, seed=1)
    [(0, None), (0, 0.01), (0, None), (0, 0.1), (0, None), (1, 0.01), (1, None), (1, 0.1), (1, None)]
    """
    rng = random.Random(seed)
    schedule = [(0, None)]
    for cycle in range(cycles):
        order = list(intervals)
        rng.shuffle(order)
        for interval in order:
            schedule += [(cycle, interval), (cycle, None)]
    return schedule


# ----------------------------------------------------------------------------------------------------------
# The analysis: pure numbers in, a dict out (tested on windows with a known cost).
# ----------------------------------------------------------------------------------------------------------

def bracketed(windows: list[dict]) -> list[dict]:
    """For each "on" window: ``cycle, interval_s, seconds, samples``, ``rate`` (samples per second of the
    window), ``reference_s`` (mean of the off windows just before and after it), ``slowdown``
    (``seconds / reference_s - 1``) and ``lost_share`` (``1 - reference_s / seconds``: the share of the
    window's time that the sampler took).

    ``windows``: in the order they ran, each with ``cycle``, ``interval_s`` (None: off), ``seconds`` and
    ``samples`` (samples taken inside the timed interval).
    """
    rows = []
    for index, window in enumerate(windows):
        if window["interval_s"] is None:
            continue
        neighbours = [windows[j]["seconds"] for j in (index - 1, index + 1)
                      if 0 <= j < len(windows) and windows[j]["interval_s"] is None]
        if not neighbours:
            raise ValueError(f"window {index} (interval {window['interval_s']} s) has no off window beside it")
        reference = sum(neighbours) / len(neighbours)
        rows.append({"cycle": window["cycle"], "interval_s": window["interval_s"], "seconds": window["seconds"],
                     "samples": window["samples"], "rate": window["samples"] / window["seconds"],
                     "reference_s": reference, "slowdown": window["seconds"] / reference - 1.0,
                     "lost_share": 1.0 - reference / window["seconds"]})
    return rows


def _slowdown_at(per_sample_s: float, rate: float) -> float:
    """The slowdown at ``rate`` samples per second of wall time when each sample takes ``per_sample_s``
    from the steps: the share lost is ``c * rate``, so the steps take ``1 / (1 - c * rate)`` as long."""
    share = per_sample_s * rate
    return share / (1.0 - share) if share < 1.0 else float("inf")


def analyse(windows: list[dict], *, production_interval_s: float = PRODUCTION_INTERVAL_S, limit: float = 0.01,
            n_boot: int = 2000, seed: int = 0) -> dict:
    """The profiler's cost from the windows of one experiment (see the module docstring).

    Shares of time are fitted and averaged; each is reported as a slowdown, ``share / (1 - share)``.
    Every interval comes from one bootstrap over whole cycles (a cycle's windows ran close together and
    share the machine's state); with fewer than ``MIN_CYCLES`` cycles there is none.

    Returns:
        ``per_sample_s``: the slope of the line through the origin (seconds taken from training per sample)
        with ``ci``; ``production``: that line at ``production_interval_s`` (``pct``, ``ci_pct``,
        ``under_limit``, ``shown_under_limit``); ``with_intercept``: the line fitted with an intercept, as a
        check of the line through the origin (``intercept_pct`` and ``per_sample_s``, each with a CI);
        ``per_interval``: for each interval the mean slowdown with its CI, the median slowdown, the median
        samples per second and the line's prediction; ``direct``: the row of ``per_interval`` at the
        production interval (None if it was not sampled), with ``under_limit`` and ``shown_under_limit``:
        the model-free estimate.
    """
    rows = bracketed(windows)
    if not rows:
        raise ValueError("no window with the sampler on")
    cycles = sorted({row["cycle"] for row in rows})

    def sums(value, keep=lambda row: True):
        return np.array([sum(value(r) for r in rows if r["cycle"] == c and keep(r)) for c in cycles], dtype=float)

    n, sx, sy = sums(lambda r: 1.0), sums(lambda r: r["rate"]), sums(lambda r: r["lost_share"])
    sxx, sxy = sums(lambda r: r["rate"] ** 2), sums(lambda r: r["rate"] * r["lost_share"])
    if not sxx.sum() > 0:
        raise ValueError("no sample was taken inside any window: make the windows longer (--steps) than the intervals")
    # Bootstrap weights: how often each cycle is drawn, one row per resample (the estimate itself: all ones).
    counts = None
    if len(cycles) >= MIN_CYCLES:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(cycles), np.full(len(cycles), 1.0 / len(cycles)), size=n_boot)

    def estimate(statistic):
        """``statistic(weights @ sums...)`` on the data, and its 95% percentile interval (or None)."""
        value = float(statistic(np.ones(len(cycles))))
        if counts is None:
            return value, None
        low, high = np.percentile(statistic(counts.T), [2.5, 97.5])
        return value, [float(low), float(high)]

    slope, slope_ci = estimate(lambda w: (sxy @ w) / (sxx @ w))

    def line_with_intercept(w):
        big_n, big_x, big_y, big_xx, big_xy = n @ w, sx @ w, sy @ w, sxx @ w, sxy @ w
        det = big_n * big_xx - big_x**2
        return (big_xx * big_y - big_x * big_xy) / det, (big_n * big_xy - big_x * big_y) / det

    intercept, intercept_ci = estimate(lambda w: line_with_intercept(w)[0])
    slope1, slope1_ci = estimate(lambda w: line_with_intercept(w)[1])

    rate = 1.0 / production_interval_s
    high = None if slope_ci is None else _slowdown_at(slope_ci[1], rate)
    production = {"interval_s": production_interval_s, "samples_per_s": rate,
                  "pct": 100 * _slowdown_at(slope, rate),
                  "ci_pct": None if slope_ci is None else [100 * _slowdown_at(slope_ci[0], rate), 100 * high],
                  "limit_pct": 100 * limit, "under_limit": _slowdown_at(slope, rate) < limit,
                  "shown_under_limit": high is not None and high < limit}

    per_interval = []
    for interval in sorted({row["interval_s"] for row in rows}, reverse=True):
        at = lambda r, interval=interval: r["interval_s"] == interval  # noqa: E731
        n_i, sy_i = sums(lambda r: 1.0, at), sums(lambda r: r["lost_share"], at)
        share, share_ci = estimate(lambda w, n_i=n_i, sy_i=sy_i: (sy_i @ w) / (n_i @ w))
        chosen = [row for row in rows if at(row)]
        median_rate = float(np.median([row["rate"] for row in chosen]))
        per_interval.append({
            "interval_s": interval, "n": len(chosen), "samples_per_s": median_rate,
            "slowdown_pct": 100 * _slowdown(share),
            "ci_pct": None if share_ci is None else [100 * _slowdown(share_ci[0]), 100 * _slowdown(share_ci[1])],
            "median_slowdown_pct": 100 * float(np.median([row["slowdown"] for row in chosen])),
            "predicted_pct": 100 * _slowdown_at(slope, median_rate)})
    direct = next((dict(row) for row in per_interval if np.isclose(row["interval_s"], production_interval_s)), None)
    if direct:
        direct.update(limit_pct=100 * limit, under_limit=direct["slowdown_pct"] < 100 * limit,
                      shown_under_limit=direct["ci_pct"] is not None and direct["ci_pct"][1] < 100 * limit)
    result = {"method": "bracketed windows; shares of time lost, least squares on samples per second; "
                        "bootstrap over cycles",
              "n_windows_on": len(rows), "n_cycles": len(cycles),
              "per_sample_s": {"value": slope, "ci": slope_ci, "n_boot": n_boot},
              "production": production,
              "with_intercept": {"intercept_pct": 100 * intercept,
                                 "intercept_ci_pct": None if intercept_ci is None else [100 * v for v in intercept_ci],
                                 "per_sample_s": slope1, "per_sample_ci": slope1_ci},
              "direct": direct, "per_interval": per_interval}
    if len(per_interval) < 2:  # one sampling rate: no line to fit, only the direct estimate
        result.update(per_sample_s=None, production=None, with_intercept=None)
        for row in per_interval:
            row["predicted_pct"] = None
    return result


def _slowdown(share: float) -> float:
    """How much longer the steps take when a ``share`` of the time is taken from them."""
    return share / (1.0 - share) if share < 1.0 else float("inf")


def pooled_direct(records: list[dict], *, limit: float = 0.01, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """The model-free estimate over several experiments: all windows sampled at each record's production
    interval, their mean share of time lost, with a bootstrap over the cycles of each record (stratified).

    The profiler is the same code for every implementation, so pooling asks: what does it cost on average
    over these implementations? Returns ``n``, ``n_records``, ``slowdown_pct``, ``ci_pct``,
    ``shown_under_limit``; None when no record sampled at its production interval. With fewer than
    ``MIN_CYCLES`` cycles in any of the records there is no CI (``ci_pct`` None) and nothing is shown.
    """
    rng = np.random.default_rng(seed)
    total_n = total_y = 0.0
    boot_n, boot_y = np.zeros(n_boot), np.zeros(n_boot)
    used, too_few = 0, False
    for record in records:
        production = record["config"]["production_interval_s"]
        rows = [r for r in bracketed(record["windows"]) if np.isclose(r["interval_s"], production)]
        if not rows:
            continue
        used += 1
        cycles = sorted({r["cycle"] for r in rows})
        too_few = too_few or len(cycles) < MIN_CYCLES
        n = np.array([sum(1.0 for r in rows if r["cycle"] == c) for c in cycles])
        y = np.array([sum(r["lost_share"] for r in rows if r["cycle"] == c) for c in cycles])
        counts = rng.multinomial(len(cycles), np.full(len(cycles), 1.0 / len(cycles)), size=n_boot)
        total_n, total_y = total_n + n.sum(), total_y + y.sum()
        boot_n, boot_y = boot_n + counts @ n, boot_y + counts @ y
    if not used:
        return None
    estimate = {"n": int(total_n), "n_records": used, "slowdown_pct": 100 * _slowdown(total_y / total_n),
                "ci_pct": None, "limit_pct": 100 * limit, "under_limit": _slowdown(total_y / total_n) < limit,
                "shown_under_limit": False}
    if not too_few:  # every experiment has enough cycles for its share of the bootstrap to mean something
        low, high = np.percentile(boot_y / boot_n, [2.5, 97.5])
        estimate.update(ci_pct=[100 * _slowdown(float(low)), 100 * _slowdown(float(high))],
                        shown_under_limit=_slowdown(float(high)) < limit)
    return estimate


def pooled_text(records: list[dict], *, label=lambda cell: cell) -> list[str]:
    """``pooled_direct`` in words: per cell that has several experiments, then over all of them.

    Nothing is printed for a pool of fewer than two experiments that sampled at their production interval.
    ``label(cell_dict)`` names a cell.
    """
    def line(what, pool):
        if pool["ci_pct"] is None:
            return (f"{what}, measured directly at the production interval: {pool['slowdown_pct']:+.2f}% (no CI: "
                    f"fewer than {MIN_CYCLES} cycles in an experiment, {pool['n']} windows): nothing shown")
        return (f"{what}, measured directly at the production interval: {pool['slowdown_pct']:+.2f}% (95% CI "
                f"{pool['ci_pct'][0]:+.2f}% to {pool['ci_pct'][1]:+.2f}%, {pool['n']} windows): {_verdict(pool)}")

    lines = []
    cells = {}
    for record in records:
        cells.setdefault(Cell.of(record), []).append(record)
    for group in cells.values():
        pool = pooled_direct(group)
        if pool and pool["n_records"] >= 2:
            lines.append(line(f"{label(group[0]['cell'])}, {pool['n_records']} experiments pooled", pool))
    pool = pooled_direct(records)
    if pool and pool["n_records"] >= 2 and len(cells) >= 2:
        lines.append(line(f"all {pool['n_records']} experiments pooled", pool))
    return lines


def cost_text(cell: str, analysis: dict) -> list[str]:
    """The experiment's result in words: one row per interval, the line, and the two verdicts."""
    sample, production, direct = analysis["per_sample_s"], analysis["production"], analysis["direct"]
    lines = [f"profiler cost, {cell}: {analysis['n_windows_on']} windows with the sampler on, each between two "
             f"with it off, in {analysis['n_cycles']} cycles",
             f"  {'interval':>9} {'samples/s':>9}  {'slowdown: mean [95% CI]':<26} {'median':>7} {'line':>7}"]
    for row in analysis["per_interval"]:
        ci = "" if row["ci_pct"] is None else f"[{row['ci_pct'][0]:+5.2f}, {row['ci_pct'][1]:+5.2f}]"
        line = "" if row["predicted_pct"] is None else f" {row['predicted_pct']:+6.2f}%"
        lines.append(f"  {1e3 * row['interval_s']:7.1f}ms {row['samples_per_s']:9.1f}  {row['slowdown_pct']:+6.2f}% "
                     f"{ci:<18} {row['median_slowdown_pct']:+6.2f}%{line}")
    if sample is None:
        pass  # one sampling interval: the direct estimate only
    elif sample["ci"] is None:
        at = (f"  at the production interval ({production['interval_s']:g} s), by the line through the origin: "
              f"{production['pct']:+.3f}%")
        lines.append(f"  cost per sample {1e6 * sample['value']:.1f} us")
        lines.append(f"{at}; no confidence interval from {analysis['n_cycles']} cycles (at least {MIN_CYCLES} "
                     "needed): nothing shown")
    else:
        at = (f"  at the production interval ({production['interval_s']:g} s), by the line through the origin: "
              f"{production['pct']:+.3f}%")
        fit = analysis["with_intercept"]
        lines.append(f"  cost per sample {1e6 * sample['value']:.1f} us (95% CI {1e6 * sample['ci'][0]:.1f} to "
                     f"{1e6 * sample['ci'][1]:.1f} us); fitted with an intercept: intercept {fit['intercept_pct']:+.2f}% "
                     f"(95% CI {fit['intercept_ci_pct'][0]:+.2f}% to {fit['intercept_ci_pct'][1]:+.2f}%), slope "
                     f"{1e6 * fit['per_sample_s']:.1f} us per sample")
        lines.append(f"{at} (95% CI {production['ci_pct'][0]:+.3f}% to {production['ci_pct'][1]:+.3f}%): "
                     f"{_verdict(production)}")
    if direct:
        ci = ("no CI" if direct["ci_pct"] is None
              else f"95% CI {direct['ci_pct'][0]:+.2f}% to {direct['ci_pct'][1]:+.2f}%")
        lines.append(f"  measured directly at {direct['interval_s']:g} s: {direct['slowdown_pct']:+.2f}% ({ci}, "
                     f"{direct['n']} windows): {_verdict(direct) if direct['ci_pct'] else 'nothing shown'}")
    return lines


def _verdict(estimate: dict) -> str:
    limit = f"{estimate['limit_pct']:.0f}%"
    if estimate["shown_under_limit"]:
        return f"under {limit}: the whole CI is below it"
    if estimate["under_limit"]:
        return f"estimate under {limit}, but the CI reaches above it: not shown to be under"
    return f"NOT under {limit}"


# ----------------------------------------------------------------------------------------------------------
# The experiment.
# ----------------------------------------------------------------------------------------------------------

class _Switch:
    """The clock's ``on_edge``: at each window's start, a new profiler at that window's interval (or off)."""

    def __init__(self, starts: dict[int, float | None]):
        self.starts = starts
        self.profilers: dict[int, object] = {}  # start edge -> profiler
        self._current = None

    def __call__(self, edge: int) -> None:
        if self._current is not None:
            self._current.stop()
            self._current = None
        if edge in self.starts:
            interval = self.starts[edge]
            profiler = Profiler(interval_s=interval or PRODUCTION_INTERVAL_S, enabled=interval is not None)
            profiler.start()
            self.profilers[edge] = profiler
            self._current = profiler


def execute_cost(config: CostConfig) -> dict:
    """Run the experiment in this process and return its record (``kind: profiler_cost``)."""
    if config.steps < 1 or config.cycles < 1 or config.warmup < 1:
        raise ValueError("steps, cycles and warmup must be at least 1.")
    if not config.intervals_s or min(config.intervals_s) <= 0:
        raise ValueError(f"intervals must be positive seconds. Received: {config.intervals_s}")
    started = now_iso()
    load_before = host_load()
    runner, model, dataset, train_config = prepare_synthetic(
        config.cell.model, config.cell.implementation, config.cell.backend, batch_size=config.batch_size,
        seed=config.seed,
        input_shape=config.input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate)

    schedule = cost_schedule(config.intervals_s, config.cycles, seed=config.seed)
    edges = [0, config.warmup] + [config.warmup + (i + 1) * config.steps for i in range(len(schedule))]
    switch = _Switch({edges[i + 1]: interval for i, (_, interval) in enumerate(schedule)})
    clock = StepClock(edges, sync=lambda: runner.sync(model), on_edge=switch)
    runner.train_steps(model, dataset, train_config, steps=edges[-1], clock=clock)

    windows = []
    for index, (cycle, interval) in enumerate(schedule):
        begin, end = edges[index + 1], edges[index + 2]
        t_begin, t_end = clock.left[begin], clock.arrived[end]
        profiler = switch.profilers[begin]
        summary = profiler.summary()
        inside = [s for s in profiler.timeline() if t_begin <= profiler.started_at + s["t_s"] <= t_end]
        windows.append({"cycle": cycle, "interval_s": interval, "seconds": t_end - t_begin, "steps": config.steps,
                        "samples": len(inside), "samples_total": summary["n_samples"],
                        "sampler_busy_s": summary["sampler_busy_s"]})
    analysis = analyse(windows, production_interval_s=config.production_interval_s, n_boot=config.n_boot,
                       seed=config.seed)  # reanalyse() recomputes it from the record
    on = [w for w in windows if w["interval_s"] is not None]
    busy_per_sample = sum(w["sampler_busy_s"] for w in on) / max(1, sum(w["samples_total"] for w in on))
    off_steps = [w["seconds"] / w["steps"] for w in windows if w["interval_s"] is None]
    return {
        **new_record("profiler_cost", config, started=started),
        "status": "ok",
        "finished": now_iso(),
        "timing": {"first_steps_s": clock.interval(0, config.warmup), "off_step_s": float(np.median(off_steps))},
        "windows": windows,
        "analysis": analysis,
        "sampler_busy_per_sample_s": busy_per_sample,
        "settings": runner.describe(model),
        "host_load": {"before": load_before, "after": host_load()},
        "environment": collect_environment(),
        "clock": {"perf_counter_resolution_s": time.get_clock_info("perf_counter").resolution},
    }


def reanalyse(record: dict) -> dict:
    """A record's analysis recomputed from its windows by this code, with the record's own settings."""
    config = record["config"]
    return analyse(record["windows"], production_interval_s=config["production_interval_s"],
                   n_boot=config["n_boot"], seed=config["seed"])


def profiler_cost_section(records) -> str:
    """The profiler-cost records in words, each analysis recomputed from the record's windows."""
    lines = []
    for record in records:
        if record.get("status") != "ok":
            lines.append(f"profiler cost, {record_label(record)}: failed ({record['error']['message']})")
        else:
            lines += cost_text(record_label(record), reanalyse(record))
    label = lambda cell: record_label({"cell": cell})  # noqa: E731
    return "\n".join(lines + pooled_text([r for r in records if r.get("status") == "ok"], label=label))
