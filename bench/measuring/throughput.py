"""``python -m twinbench throughput``: the throughput benchmark of one implementation on synthetic data.

What it measures, in one process (one Keras backend per process):

1. The first training step on its own: it traces and compiles (``tf.function``, XLA, ``jax.jit``), so it
   is reported separately and never averaged into the steady state.
2. ``warmup`` steps in all (the first one included), reported as one figure.
3. ``repeats`` windows of ``steps`` steps each, with the device synchronised only at the edges of each
   window; the shared profiler samples during every one of them. One sample per repeat: seconds per
   step (window time / steps) and images per second; ``twinbench.stats.summarize`` gives the median, IQR
   and 95% CI over repeats.
4. ``overhead_repeats`` more windows with the profiler's sampler off, interleaved with the others in an
   ABBA order (on, off, off, on, ...) so a slow drift of the machine affects both alike. The ratio of
   median step times (on / off) with a bootstrap CI is the profiler's own cost.

5. ``compute_repeats`` compute windows (default: as many as ``repeats``): the implementation's own train step
   alone on a few batches already on the device (``Runner.compute_steps``), each put next to a whole window
   with the profiler on, after one and before the next in turn (``window_schedule``), sampled like it.
   ``timing.compute_step_s`` summarizes them, ``timing.feed_step_s`` the differences whole - compute of the
   windows side by side (``twinbench.measuring.timing.feed_pairs``); each repeat says its ``window``:
   ``whole`` or ``compute``.

Whole windows run the implementation's real training path (``Runner.train_steps``: the PyTorch loop, or a
``fit`` epoch for Keras and tf.keras, fed as ``feed`` says) on full batches of the synthetic dataset, cycled in
the shared order. Without compute windows all steps run in one such call; with them, each run of windows of one
kind is one call (``segments``), its first call led in by the warm-up (a compute path's first step may trace)
and every later one by one untimed step. Each window's profiler is started and stopped at the window's edges,
between the two timestamps the ``StepClock`` takes there, so starting and joining its thread is not timed;
what the sampler thread costs while the steps run is.

This module never imports a framework itself; it goes through ``twinbench.backends.get_runner``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twinbench import data as datasets
from twinbench.backends import get_runner
from twinbench.backends.base import StepClock, TrainConfig, check_feed
from twinbench.backends.modes import DEFAULT_MODE, SINGLE
from twinbench.cell import CellConfig
from twinbench.measuring import contention, mfu
from twinbench.measuring.environment import alternation_slot, collect_environment, launcher_of
from twinbench.measuring.profiler import Profiler
from twinbench.measuring.threads import ThreadCensus, minor_page_faults
from twinbench.measuring.timing import (
    feed_pairs,
    host_load,
    memory_figures,
    overhead_pairs,
    profiler_overhead,
    summarize_or_none,
    timeline_segment,
)
from twinbench.models import get_model_spec
from twinbench.records import new_record
from twinbench.records import now_iso as _now_iso  # a module name of its own: tests pin the clock here
from twinbench.stats import ratio_ci


@dataclass(frozen=True)
class ThroughputConfig(CellConfig):
    """Everything that defines one throughput run: the cell (its axes included: the mode, the replicas, ``feed``,
    ``cpus``, ``process``, ``allocator``) and how it is timed; recorded verbatim (``CellConfig.as_dict``)."""

    command = "throughput"
    dataset = "synthetic"

    batch_size: int = 64
    steps: int = 50  # steps per timed window (one window per repeat)
    warmup: int = 10  # steps before the first window, the first (compiling) step included
    repeats: int = 10  # windows with the profiler sampling
    overhead_repeats: int | None = None  # windows with the sampler off; None: as many as `repeats`
    compute_repeats: int | None = None  # compute windows (Runner.compute_steps); None: as many as `repeats`; 0: none
    seed: int = 0
    learning_rate: float = 1e-3
    input_shape: tuple[int, int, int] | None = None  # default: the model's own
    num_classes: int | None = None
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults
    profile_interval_s: float = 0.15
    synthetic_train: int | None = None  # default: enough for 16 distinct batches

    @property
    def off_repeats(self) -> int:
        return self.repeats if self.overhead_repeats is None else self.overhead_repeats

    @property
    def compute_windows(self) -> int:
        """Compute windows to run: ``compute_repeats``, by default as many as ``repeats`` (none on several replicas,
        where ``Runner.compute_steps`` does not run)."""
        if self.compute_repeats is None:
            return self.repeats if self.cell.replicas == 1 else 0
        return self.compute_repeats


def repeat_schedule(on: int, off: int) -> list[bool]:
    """Which windows run with the profiler on: ABBA pairs (on, off, off, on, ...), leftovers at the end.

    >>> repeat_schedule(3, 3)
    [True, False, False, True, True, False]
    >>> repeat_schedule(3, 0)
    [True, True, True]
    """
    schedule = []
    pairs = min(on, off)
    for pair in range(pairs):
        schedule += [True, False] if pair % 2 == 0 else [False, True]
    return schedule + [True] * (on - pairs) + [False] * (off - pairs)


def window_schedule(profiler: list[bool], compute: int) -> list[tuple[str, bool]]:
    """``(kind, profiler on)`` of every window in run order: ``compute`` windows put next to the whole windows with
    the profiler on, after one and before the next in turn (ABBA), leftovers at the end.

    >>> window_schedule([True, False, False, True], 2)
    [('whole', True), ('compute', True), ('whole', False), ('whole', False), ('compute', True), ('whole', True)]
    >>> window_schedule([True, False], 0)
    [('whole', True), ('whole', False)]
    """
    windows, placed = [], 0
    for enabled in profiler:
        if enabled and placed < compute:
            windows += [("whole", True), ("compute", True)] if placed % 2 == 0 else [("compute", True), ("whole", True)]
            placed += 1
        else:
            windows.append(("whole", enabled))
    return windows + [("compute", True)] * (compute - placed)


def segments(windows: list[tuple[str, bool]], *, warmup: int) -> list[tuple[str, int, list[int]]]:
    """The runner calls that run ``windows``: ``(kind, lead-in steps, indices of its windows)`` per run of windows
    of one kind. A kind's first call leads in with ``warmup`` steps (its first step may trace), later calls with
    one step (a new ``fit``, DataLoader or batch list starts outside every window).

    >>> segments([("whole", True), ("compute", True), ("compute", True), ("whole", False)], warmup=5)
    [('whole', 5, [0]), ('compute', 5, [1, 2]), ('whole', 1, [3])]
    """
    calls: list[tuple[str, int, list[int]]] = []
    for index, (kind, _) in enumerate(windows):
        if calls and calls[-1][0] == kind:
            calls[-1][2].append(index)
        else:
            calls.append((kind, warmup if all(k != kind for k, _, _ in calls) else 1, [index]))
    return calls


class _Windows:
    """The clock's ``on_edge``: starts and stops one profiler per window, remembers which was which.

    ``starts``: edge -> (name of the window that starts there, whether its profiler samples); edge 1 (the end
    of the first step) passes unless a window starts there. ``profilers``: a list shared by several clocks.
    """

    def __init__(self, starts: dict, interval_s: float, profilers: list | None = None):
        self.interval_s = interval_s
        self.starts = starts
        self.profilers: list[tuple[str, object, float]] = [] if profilers is None else profilers  # (name, profiler, start)
        self._current = None

    def __call__(self, edge: int) -> None:
        if edge == 1 and edge not in self.starts:
            return  # the end of the first step, inside the warm-up
        if self._current is not None:
            self._current.stop()
            self._current = None
        if edge in self.starts:
            name, enabled = self.starts[edge]
            profiler = Profiler(interval_s=self.interval_s, enabled=enabled)
            self.profilers.append((name, profiler, time.perf_counter()))
            profiler.start()
            profiler.mark("window_begin", window=name, edge=edge)
            self._current = profiler


def prepare_synthetic(model_name, implementation, backend, *, batch_size, seed, input_shape=None, num_classes=None,
                      learning_rate=1e-3, synthetic_train=None, mode=DEFAULT_MODE, replication=SINGLE):
    """``(runner, model, dataset, train_config)`` for timing steps on synthetic data of the model's shape.

    The dataset has ``synthetic_train`` samples (default: 16 full batches), cycled in the shared order.
    """

    spec = get_model_spec(model_name)
    input_shape = tuple(input_shape or spec.input_shape)
    if spec.task == datasets.tasks.DEFAULT_TASK:
        dataset = datasets.load_dataset("synthetic", input_shape=input_shape,
                                        num_classes=num_classes or spec.num_classes, seed=seed,
                                        synthetic_train=synthetic_train or 16 * batch_size, synthetic_test=batch_size)
    else:  # random ids of the model's kind (twinbench.data.tasks)
        dataset = datasets.synthetic.load_task(spec.task, input_shape=input_shape,
                                               num_classes=num_classes or spec.num_classes, seed=seed,
                                               train_size=synthetic_train or 16 * batch_size, test_size=batch_size)
    runner = get_runner(implementation, backend, mode=mode, replication=replication)
    runner.setup(seed=seed)
    model = runner.prepare(model_name, input_shape=input_shape, num_classes=dataset.num_classes, seed=seed)
    train_config = TrainConfig(epochs=1, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    return runner, model, dataset, train_config


def execute_throughput(config: ThroughputConfig) -> dict:
    """Run the benchmark and return its record (status ``ok``); exceptions propagate to the caller."""
    cell = config.cell
    if config.warmup < 1 or config.steps < 1 or config.repeats < 1:
        raise ValueError("warmup, steps and repeats must be at least 1.")
    check_feed(cell.feed)
    if config.compute_windows and cell.replicas > 1:
        raise ValueError(f"--compute-repeats runs on one replica only: use --compute-repeats 0 with --replicas "
                         f"{cell.replicas}. Received: compute_repeats={config.compute_repeats}.")
    started = _now_iso()
    load_before = host_load()
    census = ThreadCensus().start()
    spec = get_model_spec(cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    runner, model, dataset, train_config = prepare_synthetic(
        cell.model, cell.implementation, cell.backend, batch_size=config.batch_size, seed=config.seed,
        input_shape=input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate,
        synthetic_train=config.synthetic_train, mode=cell.mode, replication=cell.replication)

    windows_run = window_schedule(repeat_schedule(config.repeats, config.off_repeats), config.compute_windows)
    profilers: list = []
    seconds: dict[int, float] = {}  # window index -> seconds
    counts: dict[int, dict | None] = {}  # window index -> what the kernel counted (twinbench.measuring.contention)
    faults: dict[int, float | None] = {}  # window index -> minor page faults per step
    first_step_s = warmup_s = None
    kinds_run: set[str] = set()
    for kind, lead, indices in segments(windows_run, warmup=config.warmup):
        # Edges: before step 0, after the first step, after the lead-in, then after each window.
        edges = [0, 1, lead] + [lead + (i + 1) * config.steps for i in range(len(indices))]
        # The profiler samples the warm-up (as it always did), not the later lead-ins.
        lead_in = ("warmup", True) if first_step_s is None else (
            ("compute-warmup" if kind not in kinds_run else f"{kind}-lead-{indices[0]}"), False)
        kinds_run.add(kind)
        starts = {0: lead_in}
        starts.update({lead + i * config.steps: (f"repeat-{index}", windows_run[index][1])
                       for i, index in enumerate(indices)})
        windows = _Windows(starts, config.profile_interval_s, profilers)

        faults_at: dict[int, int | None] = {}  # edge -> the process's minor page faults so far
        counts_at: dict[int, contention.Snapshot | None] = {}  # edge -> the kernel's counters

        def on_edge(edge, windows=windows, faults_at=faults_at, counts_at=counts_at):  # between an edge's two timestamps
            counts_at[edge] = contention.snapshot()
            faults_at[edge] = minor_page_faults()
            census.sample()
            windows(edge)

        clock = StepClock(edges, sync=lambda: runner.sync(model), on_edge=on_edge)
        run_steps = runner.train_steps if kind == "whole" else runner.compute_steps
        options = {"feed": cell.feed} if kind == "whole" else {}
        run_steps(model, dataset, train_config, steps=edges[-1], clock=clock, **options)
        for i, index in enumerate(indices):
            seconds[index] = clock.interval(edges[i + 2], edges[i + 3])
            start, end = faults_at.get(edges[i + 2]), faults_at.get(edges[i + 3])
            faults[index] = None if start is None or end is None else (end - start) / config.steps
            counts[index] = contention.window(counts_at.get(edges[i + 2]), counts_at.get(edges[i + 3]))
        if first_step_s is None:
            first_step_s = clock.interval(0, 1)
            warmup_s = clock.interval(0, config.warmup) if config.warmup > 1 else first_step_s

    repeats = []
    for index, (kind, enabled) in enumerate(windows_run):
        repeats.append({"repeat": index, "window": kind, "profiler": enabled, "steps": config.steps,
                        "seconds": seconds[index], "step_s": seconds[index] / config.steps,
                        "images_per_s": config.steps * config.batch_size / seconds[index],
                        "page_faults_per_step": faults[index], "contention": counts[index]})
    return throughput_record(config, runner=runner, model=model, dataset=dataset, started=started,
                             load_before=load_before, first_step_s=first_step_s, warmup_s=warmup_s, repeats=repeats,
                             profilers=profilers, census=census)


def throughput_record(config: ThroughputConfig, *, runner, model, dataset, started: str, load_before, first_step_s,
                      warmup_s, repeats: list[dict], profilers: list[tuple[str, object, float]],
                      census: ThreadCensus) -> dict:
    """A cell's throughput record (status ``ok``) from its timed ``repeats`` (dicts with ``profiler``, ``step_s`` and
    ``window``: ``whole`` where absent), its window ``profilers`` ``(name, Profiler, start time)`` and the process's
    ``census``; ``twinbench.measuring.interleave`` writes its records with it too."""
    cell = config.cell
    spec = get_model_spec(cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    whole = [r for r in repeats if r.get("window", "whole") == "whole"]
    on = [r["step_s"] for r in whole if r["profiler"]]
    off = [r["step_s"] for r in whole if not r["profiler"]]
    compute = [r["step_s"] for r in repeats if r.get("window") == "compute"]
    feed = [w - c for w, c in feed_pairs(repeats)]

    profiles = [(name, profiler.summary()) for name, profiler, _ in profilers if profiler.enabled]
    profile = _combine_profiles(profiles)
    t_first = profilers[0][2]
    timeline = [timeline_segment(profiler, name=name, offset_s=start - t_first) for name, profiler, start in profilers]

    record = new_record("throughput", config, started=started)
    record.update(
        status="ok",
        finished=_now_iso(),
        model={"name": cell.model, "params": runner.count_params(model),
               "expected_params": spec.params if input_shape == tuple(spec.input_shape) else None,
               "input_shape": list(input_shape), "num_classes": dataset.num_classes},
        dataset={"name": "synthetic", "train": datasets.tasks.num_samples(dataset.x_train),
                 "batch_size": config.batch_size},
        timing={
            "first_step_s": first_step_s,
            "warmup_steps": config.warmup,
            "warmup_s": warmup_s,
            "steps_per_repeat": config.steps,
            "steady_step_s": summarize_or_none(on),
            "throughput_images_per_s": summarize_or_none(config.batch_size / s for s in on),
            "profiler_off_step_s": summarize_or_none(off),
            "compute_step_s": summarize_or_none(compute),  # compute windows: the train step alone
            "feed_step_s": summarize_or_none(feed),  # whole - compute of the windows run next to each other
            "repeats": repeats,
        },
        profiler_overhead=profiler_overhead(on, off, ratio_ci=ratio_ci, pairs=overhead_pairs(repeats)),
        # How many timed windows the machine was busy in (each repeat's own figures: repeats[].contention).
        contention=contention.run_summary([r.get("contention") for r in repeats], unavailable=contention.why_not()),
        settings=runner.describe(model),
        memory=memory_figures(runner.memory_stats(), profile),
        profile=profile,
        host_load={"before": load_before, "after": host_load()},
        environment=collect_environment(),
        launcher=launcher_of(runner),
        threads=census.finish(pools=runner.describe_threads(), requested=config.threads, cpus=cell.cpus,
                              sampler={"enabled": True, "interval_s": config.profile_interval_s,
                                       "windows": "profiler-on windows only (timing.repeats[].profiler)"}),
        timeline=timeline,  # moved to a sidecar by twinbench.records.write_record
    )
    slot = alternation_slot()
    if slot is not None:  # one process of an A,B,B,A sequence (twinbench.measuring.alternate): results pair it
        record["alternation"] = slot
    record["efficiency"] = mfu.run_efficiency(record, model_name=cell.model, input_shape=input_shape,
                                              num_classes=dataset.num_classes)
    return record


def _combine_profiles(profiles: list[tuple[str, dict]]) -> dict | None:
    """One summary of the per-window profilers that sampled: peaks over all, per-window energy and cost."""
    if not profiles:
        return None
    summaries = [summary for _, summary in profiles]
    fields = {}
    for field in summaries[0]["fields"]:
        peaks = [s["fields"][field]["peak"] for s in summaries if s["fields"][field]["peak"] is not None]
        n = sum(s["fields"][field]["n"] for s in summaries)
        means = [(s["fields"][field]["mean"], s["fields"][field]["n"]) for s in summaries
                 if s["fields"][field]["mean"] is not None]
        fields[field] = {"peak": max(peaks) if peaks else None,
                         "mean": sum(m * k for m, k in means) / n if means and n else None, "n": n}
    rss = [s["host_peak_rss_bytes"] for s in summaries if s["host_peak_rss_bytes"]]
    attributed = [s["attributed"] for s in summaries if s["attributed"] is not None]
    busy = [s["sampler_busy_fraction"] for s in summaries if s["sampler_busy_fraction"] is not None]
    last = summaries[-1]
    return {
        "source": last["source"],
        "fallback_reason": last["fallback_reason"],
        "interval_s": last["interval_s"],
        "gpu": last["gpu"],
        "attributed": any(attributed) if attributed else None,
        "unsupported_fields": last["unsupported_fields"],
        "fields": fields,
        "host_peak_rss_bytes": max(rss) if rss else None,
        "windows_profiled": [name for name, _ in profiles],
        "n_samples": sum(s["n_samples"] for s in summaries),
        "energy_j_per_window": [s["energy_j"] for s in summaries],
        "sampler_busy_fraction": {"median": sorted(busy)[len(busy) // 2] if busy else None,
                                  "max": max(busy) if busy else None},
        "sampler_errors": [s["sampler_error"] for s in summaries if s["sampler_error"]],
        "note": "one profiler per window; peaks are over all profiled windows, means weighted by samples",
    }
