"""``python -m twinbench latency``: inference latency of one cell at a sweep of batch sizes, on synthetic data.

What it measures, in one process (one Keras backend per process), for each batch size in turn:

1. The first call on its own: it traces and compiles (``tf.function``, XLA, ``jax.jit``, ``torch.compile``), and a
   new batch size may trace again, so every batch size has its own ``first_call_s``, never averaged into the
   steady state.
2. ``warmup`` calls in all (the first one included), reported as one figure.
With ``artifact`` (``--artifact onnx``, ...), each call runs the model exported in that format in the format's own
runtime (``twinbench.backends.export.exported_model``: exported once, checked against the model's logits, loaded into
its runtime; numpy in, numpy out, as a server calls it).

3. ``repeats`` windows of ``calls`` calls each. Every call is synchronised (``Runner.inference_call``: the call as
   the implementation's users write it, in the cell's ``style``, returning when the device has finished), and
   timed on its own with ``time.perf_counter()``: a latency is one call's time, so here the sync after each call is
   the point, not a perturbation. The kernel's counts of contention (``twinbench.measuring.contention``) are taken
   at each window's edges, as throughput takes them, so the verdict rules (``twinbench.results.verdict``) can
   refuse a ratio measured on a busy machine.

Per batch size the record holds every call's seconds (``calls_s``: the comparison pools them over runs), the
percentiles p50, p90 and p99 with distribution-free confidence intervals (``twinbench.stats.quantile_ci``), the
throughput (samples per second) of each window, summarized over windows, and the peak host memory (``getrusage``)
and framework allocator figures reached by the end of that batch size (peaks so far: they never go down).

The model is prepared once (the canonical weights) and the batch sizes run from the smallest up. This module never
imports a framework itself; it goes through ``twinbench.backends.get_runner``.
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass

from twinbench.backends.base import check_compile_mode, check_style
from twinbench.backends.export import artifact_inputs, check_format, exported_model
from twinbench.cell import CellConfig
from twinbench.data.tasks import take
from twinbench.measuring import contention
from twinbench.measuring.environment import collect_environment, launcher_of
from twinbench.measuring.profiler import host_peak_rss
from twinbench.measuring.threads import ThreadCensus
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.measuring.timing import host_load, memory_figures, summarize_or_none
from twinbench.models import get_model_spec
from twinbench.records import new_record
from twinbench.records import now_iso as _now_iso  # a module name of its own: tests pin the clock here
from twinbench.stats import quantile_ci

DEFAULT_BATCH_SIZES = (1, 4, 16, 64)
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}  # what single-stream latency reports give


def check_batch_sizes(batch_sizes) -> tuple[int, ...]:
    """``batch_sizes`` as a tuple, sorted; raise ``ValueError`` (one line) unless each is a positive integer."""
    sizes = tuple(batch_sizes)
    if not sizes or any(not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"--batch-sizes must be positive integers, e.g. 1,4,16,64. Received: {list(sizes)}.")
    return tuple(sorted(set(sizes)))


@dataclass(frozen=True)
class LatencyConfig(CellConfig):
    """Everything that defines one latency run: the cell (its axes included: ``style``, the mode, ``cpus``,
    ``allocator``) and how it is timed; recorded verbatim (``CellConfig.as_dict``)."""

    command = "latency"
    dataset = "synthetic"

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    calls: int = 20  # timed calls per window
    repeats: int = 5  # windows per batch size
    warmup: int = 5  # calls before the first window, the first (tracing) call included
    seed: int = 0
    input_shape: tuple[int, ...] | None = None  # default: the model's own
    num_classes: int | None = None
    threads: int | None = None  # CPU threads per framework pool (twinbench.backends.limit_threads); None: defaults


def time_calls(call, count: int) -> list[float]:
    """Seconds of each of ``count`` calls of ``call`` (which returns when the device has finished)."""
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def batch_figures(batch_size: int, *, first_call_s: float, warmup_s: float, windows: list[dict]) -> dict:
    """One batch size's entry of ``timing.batches``: its first call, warm-up, windows, every call, percentiles with
    CIs, per-call summary and throughput over windows."""
    calls = [seconds for window in windows for seconds in window["calls_s"]]
    return {
        "batch_size": batch_size,
        "first_call_s": first_call_s,
        "warmup_s": warmup_s,
        "calls_s": calls,
        "percentiles_s": {name: quantile_ci(calls, q) for name, q in PERCENTILES.items()},
        "call_s": summarize_or_none(calls),
        "throughput_samples_per_s": summarize_or_none(
            batch_size * len(w["calls_s"]) / sum(w["calls_s"]) for w in windows),
        "windows": [{key: value for key, value in w.items() if key != "calls_s"} for w in windows],
    }


def process_fields(runner, model, census, load_before, *, threads, cpus) -> dict:
    """The record fields of an in-process inference run (latency, generate), taken as it ends: the runner's settings,
    memory (framework allocator and host peak), host load before and after, environment, launcher and threads."""
    return {"settings": runner.describe(model),
            "memory": {**memory_figures(runner.memory_stats(), None), "host_peak_rss_bytes": host_peak_rss()},
            "host_load": {"before": load_before, "after": host_load()},
            "environment": collect_environment(),
            "launcher": launcher_of(runner),
            "threads": census.finish(pools=runner.describe_threads(), requested=threads, cpus=cpus,
                                     sampler={"enabled": False, "interval_s": None})}


def execute_latency(config: LatencyConfig) -> dict:
    """Run the benchmark and return its record (status ``ok``); exceptions propagate to the caller."""
    cell = config.cell
    if config.warmup < 1 or config.calls < 1 or config.repeats < 1:
        raise ValueError("warmup, calls and repeats must be at least 1.")
    batch_sizes = check_batch_sizes(config.batch_sizes)
    check_style(cell.implementation, cell.style, cell.jit, cell.artifact)
    check_compile_mode(cell.compile_mode, cell.jit)
    if cell.artifact != "none":
        check_format(cell.implementation, cell.backend, cell.artifact)
    started = _now_iso()
    load_before = host_load()
    census = ThreadCensus().start()
    runner, model, dataset, _ = prepare_synthetic(
        cell.model, cell.implementation, cell.backend, batch_size=max(batch_sizes), seed=config.seed,
        input_shape=config.input_shape, num_classes=config.num_classes, synthetic_train=max(batch_sizes),
        mode=cell.mode)

    exported = None  # the exported artifact's runtime, for --artifact (written to a directory that goes with the run)
    if cell.artifact != "none":
        with tempfile.TemporaryDirectory(prefix="twinbench-latency-") as directory:
            exported = exported_model(runner, model, cell.artifact, dataset.x_train, directory=directory)
    batches, all_windows = [], []
    for batch_size in batch_sizes:
        x = take(dataset.x_train, slice(0, batch_size))
        if exported is None:
            call = runner.inference_call(model, x, style=cell.style, compile_mode=cell.compile_mode)
        else:
            inputs = artifact_inputs(runner, x)
            call = functools.partial(exported, inputs)
        first_call_s = time_calls(call, 1)[0]
        warmup_s = first_call_s + sum(time_calls(call, config.warmup - 1))
        windows = []
        for index in range(config.repeats):
            before = contention.snapshot()
            census.sample()
            seconds = time_calls(call, config.calls)
            windows.append({"window": index, "calls": len(seconds), "calls_s": seconds, "seconds": sum(seconds),
                            "contention": contention.window(before, contention.snapshot())})
        entry = batch_figures(batch_size, first_call_s=first_call_s, warmup_s=warmup_s, windows=windows)
        entry["memory"] = {"host_peak_rss_bytes": host_peak_rss(), "allocator": runner.memory_stats() or None}
        batches.append(entry)
        all_windows += entry["windows"]

    spec = get_model_spec(cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    record = new_record("latency", config, started=started)
    record.update(
        status="ok",
        finished=_now_iso(),
        model={"name": cell.model, "params": runner.count_params(model),
               "expected_params": spec.params if input_shape == tuple(spec.input_shape) else None,
               "input_shape": list(input_shape), "num_classes": dataset.num_classes},
        dataset={"name": "synthetic", "batch_sizes": list(batch_sizes)},
        timing={"style": cell.style, "calls_per_window": config.calls, "windows_per_batch": config.repeats,
                "warmup_calls": config.warmup, "batches": batches},
        # How many timed windows the machine was busy in (each window's own figures: timing.batches[].windows[]).
        contention=contention.run_summary([w.get("contention") for w in all_windows],
                                          unavailable=contention.why_not()),
        **process_fields(runner, model, census, load_before, threads=config.threads, cpus=cell.cpus),
    )
    return record
