"""``python -m twinbench breakdown``: a training step's or an inference call's Python time, by cause, under a kept
Python profiler.

One process, one cell: ``warmup`` steps (the first, compiling one included), then ``repeats`` pairs of windows of
``steps`` steady-state steps of the real training path (``Runner.train_steps``, as ``twinbench throughput`` runs it):
in each pair one window unprofiled (the step's own time), then one under the profiler. A ``StepClock`` syncs at the
windows' edges and starts and stops the profiler there, outside the windows' timestamps. With the cell's
``phase="infer"`` (``--phase infer``), a step is one inference call as ``twinbench latency`` makes it
(``Runner.inference_call`` in the cell's ``--style``: synchronised, on a batch of ``batch_size``; batch 1 is the
latency cells' size), in the same pairs of windows.

With the cell's ``what_if`` (``--what-if NAME``, ``twinbench.backends.what_if``), one Keras internal is
short-circuited for the run, after a proof that it changes nothing: the model's outputs (``predict``), its loss and
its gradients on one batch, with the patch and without, identical to the bit (the record's ``what_if``); else the run
fails. The twin checks compare the unpatched model with its twins, so an identical patched model passes them too.

Each profiled window's functions are folded into the named groups of ``twinbench.causes`` (layer-call machinery and
its parts, op dispatch, tensor conversion, layout transposes, optimizer, loss and metrics, callbacks, data adapter;
nn.Module calls, autograd and the optimizer for the native twins; the native ops themselves); the record (kind
``breakdown``) holds each group's ms per step over the windows (median, CI: ``twinbench.stats.summarize``), its top
functions, and the layer calls and backend ops per step (``twinbench.causes.COUNTERS``).

Why cProfile, of the four candidates:

- **cProfile** (chosen): deterministic, so every call is seen and counted exactly: layer calls and backend ops per
  step are counts, not estimates, and an injected delay x its calls is a prediction the breakdown can be held to
  (tests/test_breakdown.py). It records, per caller, the time and calls each callee took from it, which is what lets
  a function of no group of its own (``inspect.Signature.bind``, ``contextlib``) be charged to the Keras internal that
  called it. It is in the standard library: no dependency, in every environment.
- pyinstrument and py-spy sample the stack: they cannot count calls, and a function of a few microseconds, called
  thousands of times a step (exactly the per-call machinery wanted here), is seen only statistically. py-spy also
  runs as a separate process that needs ptrace rights, which containers often withhold.
- yappi is deterministic too and follows threads, but is a compiled third-party package; the training steps measured
  here run their Python on the calling thread (threads a framework starts run C++), so cProfile sees all of it.

Its price: a deterministic profiler adds a fixed cost to every Python and C function call it sees, so it inflates
functions that are called often and do little, which is exactly Keras' per-call machinery. That cost is measured,
not assumed (``profiler_cost_per_call``: a trivial function called with and without the profiler on, in paired
repeats), recorded with its CI, and multiplied by the profiled calls per step: the record says how much of the
profiled step is the profiler's own (``profiler.estimated_ms_per_step``), beside the unprofiled step time.

This module never imports a framework itself; it goes through ``backends``.
"""

from __future__ import annotations

import cProfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinbench import backends as _backends
from twinbench import data as _data
from twinbench import models as _models
from twinbench.backends.base import StepClock, check_style
from twinbench.backends.what_if import NONE, WHAT_IFS, apply_what_if
from twinbench.causes import Function, count, family_of, fold, function_name, module_name
from twinbench.cell import CellConfig
from twinbench.data.tasks import take
from twinbench.measuring.environment import collect_environment
from twinbench.measuring.throughput import prepare_synthetic
from twinbench.models import get_model_spec
from twinbench.records import new_record, now_iso
from twinbench.stats import summarize

PROFILER = "cProfile"
# The package's folders, so that its own files are named as its modules are (twinbench/measuring/...).
ROOTS = {str(Path(__file__).parents[1]): "twinbench", str(Path(_models.__file__).parent): "twinbench/models",
         str(Path(_data.__file__).parent): "twinbench/data", str(Path(_backends.__file__).parent): "twinbench/backends"}


@dataclass(frozen=True)
class BreakdownConfig(CellConfig):
    """Everything that defines one breakdown run: the cell and its windows; recorded verbatim."""

    command = "breakdown"
    dataset = "synthetic"

    batch_size: int = 64
    steps: int = 5  # steps (inference calls, for phase infer) per window
    repeats: int = 6  # pairs of windows: one unprofiled, one profiled
    warmup: int = 5  # steps before the first window, the first (compiling) step included
    seed: int = 0
    learning_rate: float = 1e-3
    input_shape: tuple[int, ...] | None = None  # default: the model's own
    num_classes: int | None = None
    threads: int | None = None


def functions_of(profile: cProfile.Profile) -> list[Function]:
    """A finished profile's functions, named as ``twinbench.causes`` names them, with their callers as indices."""
    profile.create_stats()
    keys = list(profile.stats)
    index = {key: i for i, key in enumerate(keys)}
    functions = []
    for key in keys:
        filename, line, name = key
        _, calls, self_s, _, callers = profile.stats[key]
        functions.append(Function(
            module=module_name(filename, ROOTS), function=function_name(filename, line, name), self_s=self_s,
            calls=calls, callers={index[c]: (value[2], value[0]) for c, value in callers.items() if c in index}))
    return functions


class _ProfiledWindows:
    """The clock's ``on_edge``: starts a fresh profiler where a profiled window begins, and keeps its functions
    where it ends."""

    def __init__(self, profiled: dict[int, int]):
        self.profiled = profiled  # begin edge -> end edge
        self.ends = {end: begin for begin, end in profiled.items()}
        self.profile = None
        self.windows: list[list[Function]] = []

    def __call__(self, edge: int) -> None:
        if edge in self.ends and self.profile is not None:
            self.profile.disable()
            self.windows.append(functions_of(self.profile))
            self.profile = None
        if edge in self.profiled:
            self.profile = cProfile.Profile()
            self.profile.enable()


def _trivial():
    return None


def _loop_s(calls: int, *, profiled: bool) -> float:
    """Seconds of ``calls`` calls of an empty function, with the profiler on or off."""
    profile = cProfile.Profile() if profiled else None
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    for _ in range(calls):
        _trivial()
    seconds = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    return seconds


def profiler_cost_per_call(*, calls: int = 20_000, repeats: int = 10) -> dict:
    """The profiler's own cost per call of a Python function, in µs (``summarize``d over ``repeats``): ``calls``
    calls of an empty function with the profiler on, minus the same without it, in the order off, on, on, off
    (a drift of the machine's speed during a repeat cancels). On a busy machine a sample can come out negative:
    it is kept, as measured."""
    samples = []
    for _ in range(repeats):
        off = _loop_s(calls, profiled=False)
        on = _loop_s(calls, profiled=True) + _loop_s(calls, profiled=True)
        off += _loop_s(calls, profiled=False)
        samples.append(1e6 * (on - off) / (2 * calls))
    return summarize(samples)


def breakdown_table(windows: list[list[Function]], *, steps: int) -> tuple[dict, dict, int]:
    """``(groups, counts, calls)`` over the profiled ``windows`` (each ``steps`` steps): each group's family, ms per
    step (summarized over the windows), calls per step and top functions (of its median window); the counters per step;
    the profiled calls per step (median over the windows)."""
    folded = [fold(functions) for functions in windows]
    names = sorted({name for window in folded for name in window})
    groups = {}
    for name in names:
        per_step = [1e3 * window.get(name, {"s": 0.0})["s"] / steps for window in folded]
        # Calls and top functions from the window at the group's median (a window with a rare recompile or a
        # garbage collection would misrepresent it).
        typical = folded[sorted(range(len(folded)), key=per_step.__getitem__)[len(folded) // 2]]
        typical = typical.get(name, {"calls": 0, "top": []})
        groups[name] = {"family": family_of(name), "ms_per_step": summarize(per_step),
                        "calls_per_step": typical["calls"] / steps,
                        "top": [{"function": label, "ms_per_step": 1e3 * s / steps} for label, s in typical["top"]]}
    counts = [count(functions) for functions in windows]
    per_step = {name: sorted(c[name] for c in counts)[len(counts) // 2] / steps for name in counts[0]}
    calls = sorted(sum(f.calls for f in functions) for functions in windows)[len(windows) // 2] // steps
    return groups, per_step, calls


class WhatIfChangedOutputs(RuntimeError):
    """A what-if changed what the model computes: its time says nothing about the unpatched model's."""


def _outputs(runner, model, x, y) -> dict:
    """What a patch must leave unchanged: the outputs, the loss and the gradients on one batch (numpy)."""
    loss, grads = runner.loss_and_grads(model, x, y)
    return {"outputs": np.asarray(runner.predict(model, x)), "loss": np.asarray(loss), **{
        f"grad {name}": np.asarray(value) for name, value in sorted(grads.items())}}


def prove_unchanged(runner, model, dataset, name: str, *, samples: int = 8):
    """Apply what-if ``name`` (``twinbench.backends.what_if``) and return ``(undo, proof)``: ``proof`` says the model's
    outputs, loss and gradients on ``samples`` samples were identical to the bit with the patch and without (the
    weights, moving statistics included, restored around each); raise ``WhatIfChangedOutputs`` (after undoing it)
    where they were not."""
    what = WHAT_IFS[name]
    x, y = take(dataset.x_train, slice(0, samples)), take(dataset.y_train, slice(0, samples))
    weights = runner.get_weights(model)
    before = _outputs(runner, model, x, y)
    runner.set_weights(model, weights)
    undo = apply_what_if(name)
    try:
        after = _outputs(runner, model, x, y)
    except BaseException:
        undo()  # a patch that breaks the model is never left in place
        raise
    runner.set_weights(model, weights)
    differing = [key for key in before if not np.array_equal(before[key], after[key])]
    diff = max(float(np.max(np.abs(before[k].astype(np.float64) - after[k].astype(np.float64)), initial=0.0))
               for k in before)
    proof = {"name": name, "group": what.group, "short_circuits": what.short_circuits, "samples": samples,
             "compared": sorted(before), "identical": not differing, "max_abs_diff": diff}
    if differing:
        undo()
        raise WhatIfChangedOutputs(f"what-if {name} changed {', '.join(differing[:3])} (max |diff| {diff:.3g}); "
                                   "its timing would say nothing about the unpatched model")
    return undo, proof


def _inference_windows(call, config, profiled_windows: _ProfiledWindows) -> tuple[float, list, list]:
    """``(first call s, unprofiled s per call per window, profiled s per call per window)``: ``warmup`` calls (the
    first timed on its own), then ``repeats`` pairs of windows of ``steps`` calls, the second of each profiled
    (the profiler started and stopped outside the window's timestamps)."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    for _ in range(config.warmup - 1):
        call()
    plain, traced = [], []
    for index in range(config.repeats):
        for seconds, profiled in ((plain, False), (traced, True)):
            if profiled:
                profiled_windows(2 * index)
            started = time.perf_counter()
            for _ in range(config.steps):
                call()
            seconds.append((time.perf_counter() - started) / config.steps)
            if profiled:
                profiled_windows(2 * index + 1)
    return first, plain, traced


def execute_breakdown(config: BreakdownConfig) -> dict:
    """Run the windows and return the record (status ``ok``); exceptions propagate to the caller."""
    if config.warmup < 1 or config.steps < 1 or config.repeats < 1:
        raise ValueError("warmup, steps and repeats must be at least 1.")
    cell = config.cell
    infer = cell.phase == "infer"
    if infer:
        check_style(cell.implementation, cell.style, cell.jit, cell.artifact)
    started = now_iso()
    spec = get_model_spec(cell.model)
    input_shape = tuple(config.input_shape or spec.input_shape)
    runner, model, dataset, train_config = prepare_synthetic(
        cell.model, cell.implementation, cell.backend, batch_size=config.batch_size, seed=config.seed,
        input_shape=input_shape, num_classes=config.num_classes, learning_rate=config.learning_rate,
        mode=cell.mode, replication=cell.replication)
    undo, proof = (lambda: None), None
    if cell.what_if != NONE:
        undo, proof = prove_unchanged(runner, model, dataset, cell.what_if)
    try:
        if infer:
            windows = _ProfiledWindows({2 * i: 2 * i + 1 for i in range(config.repeats)})
            call = runner.inference_call(model, take(dataset.x_train, slice(0, config.batch_size)), style=cell.style)
            first_s, plain, traced = _inference_windows(call, config, windows)
        else:
            edges = [0, 1, *(config.warmup + i * config.steps for i in range(2 * config.repeats + 1))]
            profiled = {edges[2 + 2 * i + 1]: edges[2 + 2 * i + 2] for i in range(config.repeats)}  # each pair's 2nd
            windows = _ProfiledWindows(profiled)
            clock = StepClock(edges, sync=lambda: runner.sync(model), on_edge=windows)
            runner.train_steps(model, dataset, train_config, steps=edges[-1], clock=clock)
            plain = [clock.interval(begin - config.steps, begin) / config.steps for begin in profiled]
            traced = [clock.interval(begin, end) / config.steps for begin, end in profiled.items()]
            first_s = clock.interval(0, 1)
    finally:
        undo()

    groups, counts, calls = breakdown_table(windows.windows, steps=config.steps)
    cost = profiler_cost_per_call()
    record = new_record("breakdown", config, started=started)
    record.update(
        status="ok",
        finished=now_iso(),
        model={"name": cell.model, "params": runner.count_params(model), "input_shape": list(input_shape),
               "num_classes": dataset.num_classes},
        dataset={"name": "synthetic", "batch_size": config.batch_size},
        # A step is a training step, or for phase infer one inference call (its style: the cell's).
        timing={"phase": cell.phase, "first_step_s": first_s, "warmup_steps": config.warmup,
                "window_steps": config.steps, "step_s": summarize(plain), "profiled_step_s": summarize(traced)},
        breakdown={"groups": groups, "counts_per_step": counts},
        profiler={"name": PROFILER, "cost_per_call_us": cost, "profiled_calls_per_step": calls,
                  "estimated_ms_per_step": 1e-3 * cost["median"] * calls},
        settings=runner.describe(model),
        environment=collect_environment(),
    )
    if proof is not None:
        record["what_if"] = proof
    return record
