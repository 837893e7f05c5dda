"""``python -m twinbench calls``: what one call of each layer type costs, in µs, in one implementation.

One process, one implementation (``keras`` on this process's backend, ``torch``, ``tf_keras``): for each layer type
(``twinbench.backends.layer_calls.LAYERS``: Conv2D, Dense, BatchNormalization, LayerNormalization, attention,
Embedding, LSTM, pooling, activation), each pass (``forward``; ``backward``: forward, the sum and its gradients) and
each variant (eager; ``compiled`` where this implementation compiles here), the layer is called at a sweep of sizes:
``tiny`` (batch 1, a handful of features: the kernel negligible, so the call is its fixed cost) and the models'
feature sizes at each batch of ``batches``. At each point: ``warmup`` calls, then ``repeats`` samples, each
``calls`` calls between two syncs (``calls`` chosen so that a sample takes at least ``sample_s``), in µs per call
(``twinbench.stats.summarize``). A straight line through the points against the input's elements
(``twinbench.stats.linear_fit``) separates the fixed cost per call (its intercept) from the cost per element (its
slope), each with its CI.

The record (kind ``calls``) has the cell ``layers x implementation x backend``; ``compare`` and ``report`` set its rows
beside the other implementations' (``twinbench.results.calls``).

This module never imports a framework itself; it goes through ``backends``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twinbench.backends.layer_calls import LAYERS, PASSES, make_call
from twinbench.cell import CellConfig
from twinbench.measuring.environment import collect_environment
from twinbench.records import new_record, now_iso
from twinbench.stats import linear_fit, summarize

MODEL = "layers"  # the cell's model: the layers alone, no registered model
# Where the backend compiles a layer call here (twinbench.backends.layer_calls).
COMPILES = {("keras", "jax"), ("keras", "tensorflow"), ("tf_keras", "tensorflow")}


@dataclass(frozen=True)
class CallsConfig(CellConfig):
    """Everything that defines one calls run: the implementation (the cell), the layers, sizes and samples."""

    command = "calls"
    dataset = "synthetic"

    layers: tuple[str, ...] = tuple(LAYERS)
    sizes: tuple[str, ...] = ("tiny", "model")
    batches: tuple[int, ...] = (1, 8, 32)  # batches of the models' size (the sweep); tiny is batch 1
    passes: tuple[str, ...] = PASSES
    compiled: bool = False  # also the compiled variant, where this implementation has one here
    repeats: int = 7
    warmup: int = 3
    sample_s: float = 0.005  # a sample lasts at least this long
    max_calls: int = 1000  # calls per sample at most
    threads: int | None = None  # CPU threads per framework pool (applied before the framework starts); None: defaults


def points_of(config: CallsConfig) -> list[tuple[str, int]]:
    """The sweep: ``(size, batch)`` of every point."""
    points = [("tiny", 1)] if "tiny" in config.sizes else []
    return points + ([("model", batch) for batch in config.batches] if "model" in config.sizes else [])


def time_call(layer_call, *, repeats: int, warmup: int, sample_s: float, max_calls: int) -> tuple[list[float], int]:
    """``(µs per call of each sample, calls per sample)``: ``warmup`` calls, then calls per sample chosen from one
    timed call so that a sample lasts ``sample_s`` (at most ``max_calls``), then ``repeats`` synced samples."""
    for _ in range(warmup):
        layer_call.sync(layer_call.call())
    started = time.perf_counter()
    layer_call.sync(layer_call.call())
    one = max(time.perf_counter() - started, 1e-7)
    calls = max(1, min(max_calls, int(sample_s / one)))
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            result = layer_call.call()
        layer_call.sync(result)
        samples.append(1e6 * (time.perf_counter() - started) / calls)
    return samples, calls


def execute_calls(config: CallsConfig) -> dict:
    """Time every layer, pass, variant and point; return the record (status ``ok``)."""
    cell = config.cell
    started = now_iso()
    unknown = sorted(set(config.layers) - set(LAYERS))
    if unknown:
        raise ValueError(f"Unknown layer(s) {', '.join(unknown)}. Valid choices: {', '.join(LAYERS)}.")
    variants = [False] + ([True] if config.compiled and (cell.implementation, cell.backend) in COMPILES else [])
    rows, fits = [], []
    for layer in config.layers:
        for pass_ in config.passes:
            for compiled in variants:
                measured = []
                for size, batch in points_of(config):
                    layer_call = make_call(cell.implementation, cell.backend, layer, size=size, batch=batch,
                                           backward=pass_ == "backward", compiled=compiled)
                    samples, calls = time_call(layer_call, repeats=config.repeats, warmup=config.warmup,
                                               sample_s=config.sample_s, max_calls=config.max_calls)
                    measured.append((layer_call.elements, samples))
                    rows.append({"layer": layer, "pass": pass_, "compiled": compiled, "size": size, "batch": batch,
                                 "elements": layer_call.elements, "calls_per_sample": calls,
                                 "us_per_call": summarize(samples)})
                if len({elements for elements, _ in measured}) >= 2:
                    fits.append({"layer": layer, "pass": pass_, "compiled": compiled, **linear_fit(measured)})
    record = new_record("calls", config, started=started)
    record.update(status="ok", finished=now_iso(), rows=rows, fits=fits,
                  note=("compiled: not run for this implementation here (torch.compile per layer shape takes "
                        "minutes)") if config.compiled and not variants[1:] else None,
                  environment=collect_environment())
    return record
