"""A plain, hand-written timing loop per implementation: the cross-check of twinbench's numbers.

No profiler, no ``StepClock``, no ``Runner``, no records: each implementation is trained on plain arrays the way one
would time it by hand, and timed two ways in the same run. If twinbench's harness (step clock, callback, profiler,
input pipeline) distorted the timings, the ratios between implementations measured here would disagree with
``python -m twinbench throughput``'s.

- **step-only** (``step_only_s``): a stopwatch around the train step alone, summed over the ``--steps`` steps of a
  window (then per step). Compared with twinbench's compute-only windows (``decomposition(..., part="compute")``).
- **whole-loop** (``whole_loop_s``): windows of ``--steps`` steps, timed from the end of one window to the end of
  the next: everything (feeding the batch, the step, the callbacks, the loop itself). Compared with twinbench's
  whole windows.

The loops:

- PyTorch: the tutorial loop over pre-sliced tensors (a list of batches made once): ``.to(device)``, then
  ``perf_counter()`` before ``zero_grad`` and after ``optimizer.step()`` (after a ``torch.cuda.synchronize()`` on
  CUDA). Step-only is forward, loss, backward and the update; the ``.to(device)`` (a no-op on a CPU) and the list's
  iteration are whole-loop only.
- Keras 3 and tf.keras, ``--loop fit`` (the default): one ``fit(x, y, batch_size, shuffle=False)`` call on numpy
  arrays that hold every step's batch (warm-up + windows x steps, so one epoch and no between-epoch gap), with a
  stopwatch callback: ``perf_counter()`` in ``on_train_batch_begin`` and in ``on_train_batch_end`` once the step's
  loss was read (``float(logs["loss"])`` waits for the step). This syncs every step, which on a CPU costs little;
  without a sync the readings are meaningless for JAX, whose dispatch runs ahead of the computation. What falls
  between the two hooks differs by backend (keras 3.15's ``keras/src/backend/*/trainer.py``, tf_keras 2.21's
  ``engine/training.py``):

  - keras[torch]: the epoch iterator (a torch ``DataLoader`` over the arrays: slicing, ``convert_to_tensor``) yields
    the batch *before* ``on_train_batch_begin``; step-only is ``train_function(data)`` alone (forward, loss,
    backward, update), the feed is whole-loop only.
  - keras[tensorflow]: ``train_function(iterator)`` is a ``tf.function`` that calls ``iterator.get_next()``
    itself, so step-only includes taking the batch from the ``tf.data`` pipeline (prefetched, so usually ready).
  - keras[jax]: ``train_function(state, iterator)`` calls ``next(iterator)`` (the numpy batch) before the jitted
    step, so step-only includes fetching the batch and its transfer into the jitted call.
  - tf_keras: ``train_function(iterator)``'s ``step_function`` calls ``next(iterator)`` inside the ``tf.function``,
    as keras[tensorflow].

  Every Keras step-only also includes the callback list's dispatch between the hooks and the conversion of the
  step's logs that ``on_train_batch_end`` triggers.
- ``--loop train-on-batch``: ``model.train_on_batch`` once per batch, step-only around each call (it returns the
  loss as a number: a sync; tf.keras builds a one-batch dataset in every call).
- ``--loop fit-call``: whole ``fit`` calls of ``--steps`` batches timed from outside (whole-loop only): this includes
  what ``fit`` does before the first step and after the last (data adapter, input pipeline start and stop).

Free or pinned: ``--cpus 0`` (a list: ``0,1`` or ``0-1``) pins the process with ``os.sched_setaffinity`` before any
framework is imported; the result records ``cpus`` (as asked), ``affinity`` (as set) and ``layout`` (``free`` or
``cpus=0``), and ``--compare`` matches it with twinbench's records of the same ``--cpus`` (their cell's ``cpus``). One implementation per process (one Keras backend per process)::

    KERAS_BACKEND=torch      python tools/crosscheck/crosscheck.py --impl torch    --out results/crosscheck
    KERAS_BACKEND=torch      python tools/crosscheck/crosscheck.py --impl keras    --out results/crosscheck
    KERAS_BACKEND=tensorflow python tools/crosscheck/crosscheck.py --impl tf_keras --out results/crosscheck
    KERAS_BACKEND=tensorflow python tools/crosscheck/crosscheck.py --impl keras    --out results/crosscheck
    KERAS_BACKEND=jax        python tools/crosscheck/crosscheck.py --impl keras    --out results/crosscheck --cpus 0

    python tools/crosscheck/crosscheck.py --compare results/crosscheck results/throughput   # both sets of ratios

``--allocator tuned`` sets glibc's malloc to keep the memory it took (``twinbench.backends.allocator``, before any framework is
imported), as ``twinbench throughput --allocator tuned`` does; the result records it, and ``--compare --allocator X``
compares only the results and twinbench records of that setting. With glibc's defaults the page faults a step takes
differ between the two loops' allocation patterns and from process to process (docs/overhead.md, "Page faults").

``--paired`` answers the harness question without the 7-38% by which processes differ on a small machine: in one
process, the plain loop of ``--impl`` and twinbench's own runner for it (``twinbench throughput``'s ``train_steps`` with
``--feed arrays`` and ``compute_steps``, seeded, with canonical weights and its step clock) take turns window by
window, ``--repeats`` rounds in ABBA order after one discarded window of each; the result (``tool``:
``crosscheck-paired``) holds every window and, per round, twinbench compute / plain step-only and twinbench whole /
plain whole-loop, with the median's 95% CI. ``--compare`` shows these results too.

``--compare`` reads every result under both directories (subdirectories included), pools several runs of one cell
like ``python -m twinbench compare DIR [DIR ...]``, and prints the six ``DECOMPOSITION`` ratios per CPU layout twice:
plain step-only against twinbench compute-only, and plain whole-loop against twinbench whole. Agreement is the
hand ratio over twinbench's; the exit code is 1 when any is off by more than ``--tolerance`` (or nothing could be
compared). ``twinbench study run crosscheck`` runs both in interleaved rounds, free and pinned.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Neither imports a framework: --allocator and --cpus take effect before any framework is imported.
from twinbench.backends.allocator import ALLOCATORS, SYSTEM, apply_allocator, check_allocator  # noqa: E402
from twinbench.backends.base import FEEDS  # noqa: E402

# The timings of a result, and the twinbench part (``decomposition(..., part=...)``) each is compared with.
TIMINGS = (("step-only", "step_only_s", "compute"), ("whole-loop", "whole_loop_s", "whole"))
# The cell axis of a twinbench record that names the CPUs its process was pinned to ("0", "0,1"; absent or "free":
# not pinned).
LAYOUT_AXIS = "cpus"
# The cell axis of a twinbench record that names how its batches were fed (``twinbench.backends.base.FEEDS``). The plain loop
# feeds plain arrays, so by default it is compared with twinbench's ``--feed arrays`` records: with the native feed,
# TensorFlow's steps are slower in the whole process, not just while feeding (docs/overhead.md).
FEED_AXIS = "feed"
COMPARED_FEED = "arrays"
# The cell axis of a twinbench record that names the C allocator's settings (``twinbench.backends.allocator``); a plain-loop
# result names them in ``allocator``. Only results and records of one allocator are compared (``--allocator``).
ALLOCATOR_AXIS = "allocator"
TOLERANCE = 0.05


def set_threads(threads: int) -> None:
    """Cap the frameworks' CPU thread pools; must run before any framework is imported."""
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                      TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    if threads == 1:  # XLA has no thread-count flag (see twinbench.backends.limit_threads)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()


def parse_cpus(text: str) -> list[int]:
    """``"0"``, ``"0,1"`` or ``"0-3"`` (or a mix: ``"0,2-3"``) as a sorted list of CPU numbers."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise SystemExit(f"--cpus {text!r}: expected CPU numbers like 0 or 0,1 or 0-1")
        cpus.update(range(int(first), int(last or first) + 1))
    return sorted(cpus)


def pin(cpus: list[int]) -> list[int]:
    """Pin this process to ``cpus`` (before any framework starts its threads); returns the affinity now set."""
    available = sorted(os.sched_getaffinity(0))
    if not set(cpus) <= set(available):
        raise SystemExit(f"--cpus {','.join(map(str, cpus))}: this process may use CPUs {','.join(map(str, available))}")
    os.sched_setaffinity(0, cpus)
    return sorted(os.sched_getaffinity(0))


def synthetic(args, rng):
    """Every step's batch (warm-up + windows x steps) from ``--batches`` distinct batches of uniform images in
    [0, 1) and random labels, cycled: NHWC float32 images, int64 labels."""
    import numpy as np

    distinct = rng.random((args.batches * args.batch_size, *args.input_shape), dtype=np.float32)
    labels = rng.integers(0, 10, size=len(distinct), dtype=np.int64)
    total = (args.warmup + args.repeats * args.steps) * args.batch_size
    copies = -(-total // len(distinct))
    return np.tile(distinct, (copies, *[1] * len(args.input_shape)))[:total], np.tile(labels, copies)[:total]


class Windows:
    """Per-step seconds of each window, both ways: ``step(seconds)`` adds one step's stopwatch reading; ``edge()``
    (at the end of the warm-up and of every window) closes the whole-loop window."""

    def __init__(self, *, steps: int):
        self.steps = steps
        self.step_only, self.whole, self._sum, self._last_edge = [], [], 0.0, None

    def step(self, seconds: float) -> None:
        self._sum += seconds

    def edge(self, now: float) -> None:
        if self._last_edge is not None:
            self.whole.append((now - self._last_edge) / self.steps)
            self.step_only.append(self._sum / self.steps)
        self._sum, self._last_edge = 0.0, now


class TorchLoop:
    """The PyTorch tutorial loop's state (model, Adam, loss, pre-sliced batches made once) and its timed step."""

    def __init__(self, args, x, y):
        import torch

        from twinbench.models import build_model

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = build_model(args.model, "torch", input_shape=args.input_shape, num_classes=10).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-8)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        images, labels = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
        self.batches = list(zip(images.split(args.batch_size), labels.split(args.batch_size), strict=True))
        self.model.train()

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def step(self, images_batch, labels_batch) -> tuple[float, float]:
        """One step: the batch to the device, then the stopwatch around zero_grad, forward, loss, backward, step;
        returns the stopwatch's ``(start, end)``."""
        images_batch = images_batch.to(self.device, non_blocking=True)
        labels_batch = labels_batch.to(self.device, non_blocking=True)
        self.sync()
        start = time.perf_counter()
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(images_batch), labels_batch)
        loss.backward()
        self.optimizer.step()
        self.sync()
        return start, time.perf_counter()


def time_torch(args, x, y) -> Windows:
    """The PyTorch tutorial loop over pre-sliced tensors: zero_grad, forward, loss, backward, step."""
    loop = TorchLoop(args, x, y)
    windows = Windows(steps=args.steps)
    for index, batch in enumerate(loop.batches):
        start, end = loop.step(*batch)
        windows.step(end - start)
        if index + 1 >= args.warmup and (index + 1 - args.warmup) % args.steps == 0:
            windows.edge(end)
    return windows


def keras_stopwatch(module, windows: Windows, *, warmup: int, steps: int):
    """The ``fit`` loop's stopwatch callback: step-only from ``on_train_batch_begin`` to ``on_train_batch_end`` once
    the loss was read; a whole-loop edge after the ``warmup``-th batch and every ``steps`` batches after it."""

    class Stopwatch(module.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # the step's loss: waits until the step is done
            end = time.perf_counter()
            windows.step(end - self.start)
            if batch + 1 >= warmup and (batch + 1 - warmup) % steps == 0:
                windows.edge(end)

    return Stopwatch()


def compile_plain(model, module):
    """The shared training settings, as a user would write them."""
    model.compile(optimizer=module.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8),
                  loss=module.losses.SparseCategoricalCrossentropy(from_logits=True))


def time_keras(args, x, y, module, model) -> Windows:
    """Keras 3 or tf.keras: ``compile``, then ``--loop`` (see the module docstring)."""
    compile_plain(model, module)
    windows = Windows(steps=args.steps)
    warmup = args.warmup * args.batch_size

    if args.loop == "fit":
        model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=[keras_stopwatch(module, windows, warmup=args.warmup, steps=args.steps)])
    elif args.loop == "train-on-batch":
        for step, start in enumerate(range(0, len(x), args.batch_size), start=1):
            begin = time.perf_counter()
            model.train_on_batch(x[start : start + args.batch_size], y[start : start + args.batch_size])
            end = time.perf_counter()
            windows.step(end - begin)
            if step >= args.warmup and (step - args.warmup) % args.steps == 0:
                windows.edge(end)
    else:  # fit-call: whole fit calls of --steps batches, timed from outside
        def fit_call(first, last):
            history = model.fit(x[first:last], y[first:last], batch_size=args.batch_size, epochs=1, shuffle=False,
                                verbose=0)
            return float(history.history["loss"][-1])  # a Python float: fit waited for its last step

        if warmup:
            fit_call(0, warmup)
        windows.edge(time.perf_counter())
        size = args.steps * args.batch_size
        for first in range(warmup, len(x), size):
            fit_call(first, first + size)
            windows.edge(time.perf_counter())
        windows.step_only = None  # fit-call times whole calls only
    return windows


def keras_module(implementation: str):
    """``(module, backend)``: tf_keras on TensorFlow, or Keras 3 on ``KERAS_BACKEND``."""
    if implementation == "tf_keras":
        import tf_keras

        return tf_keras, "tensorflow"
    import keras

    return keras, keras.backend.backend()


def measure(args) -> dict:
    """Train ``--impl`` with the plain loop; the result (a JSON-able dict) with both lists of samples."""
    import numpy as np

    if args.threads:
        set_threads(args.threads)
    rng = np.random.default_rng(0)
    x, y = synthetic(args, rng)
    if args.impl == "torch":
        backend, loop = "torch", "loop"
        windows = time_torch(args, x, y)
    else:
        from twinbench.models import build_model

        loop = args.loop
        module, backend = keras_module(args.impl)
        model = build_model(args.model, args.impl, input_shape=args.input_shape, num_classes=10)
        windows = time_keras(args, x, y, module, model)
    return {"tool": "crosscheck", "model": args.model, "implementation": args.impl, "backend": backend,
            "loop": loop, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
            "windows": args.repeats, "threads": args.threads, "cpus": args.cpus, "affinity": args.affinity,
            "layout": layout_name(args.cpus), "allocator": args.allocator, "input_shape": list(args.input_shape),
            "step_only_s": windows.step_only, "whole_loop_s": windows.whole,
            "median_step_only_s": statistics.median(windows.step_only) if windows.step_only else None,
            "median_whole_loop_s": statistics.median(windows.whole),
            "python": platform.python_version()}


# ---------------------------------------------------------------------- one process: the plain loop beside twinbench

# Steps before each paired window (a fit call's or a loop's first steps), outside the window.
PAIRED_LEAD = 2
# What each paired round times, and the order of its second half (ABBA: drift cancels within a round pair).
PAIRED_PARTS = ("plain", "whole", "compute")


class PlainWindows:
    """The plain loop of ``--impl``, one window at a time: ``window()`` runs ``PAIRED_LEAD`` + ``--steps`` steps and
    returns the last ``--steps`` steps' ``(step-only, whole-loop)`` seconds per step. Keras: one ``fit(x, y)`` call
    per window, with the stopwatch callback; PyTorch: the tutorial loop over the pre-sliced batches."""

    def __init__(self, args, x, y):
        self.args, self.x, self.y = args, x, y
        if args.impl == "torch":
            self.torch = TorchLoop(args, x, y)
            self.backend = "torch"
        else:
            from twinbench.models import build_model

            self.module, self.backend = keras_module(args.impl)
            self.model = build_model(args.model, args.impl, input_shape=args.input_shape, num_classes=10)
            compile_plain(self.model, self.module)

    def window(self) -> tuple[float, float]:
        args = self.args
        windows = Windows(steps=args.steps)
        if args.impl == "torch":
            for index, batch in enumerate(self.torch.batches[:PAIRED_LEAD + args.steps]):
                start, end = self.torch.step(*batch)
                windows.step(end - start)  # the first edge drops the lead's steps
                if index + 1 in (PAIRED_LEAD, PAIRED_LEAD + args.steps):
                    windows.edge(end)
        else:
            stopwatch = keras_stopwatch(self.module, windows, warmup=PAIRED_LEAD, steps=args.steps)
            count = (PAIRED_LEAD + args.steps) * args.batch_size
            self.model.fit(self.x[:count], self.y[:count], batch_size=args.batch_size, epochs=1, shuffle=False,
                           verbose=0, callbacks=[stopwatch])
        return windows.step_only[0], windows.whole[0]


class TwinbenchWindows:
    """twinbench's own runner for ``--impl`` (``twinbench.measuring.throughput.prepare_synthetic``: seeded, canonical
    weights, the shared settings), one window at a time, as ``twinbench throughput`` times them: ``whole`` is
    ``runner.train_steps(..., feed="arrays")``, ``compute`` is ``runner.compute_steps``; a ``StepClock`` syncs at the
    window's edges only. Each call runs ``PAIRED_LEAD`` steps, the window's ``--steps`` and one more."""

    def __init__(self, args, backend: str):
        from twinbench.measuring.throughput import prepare_synthetic

        self.args = args
        self.runner, self.model, self.dataset, self.config = prepare_synthetic(
            args.model, args.impl, backend, batch_size=args.batch_size, seed=0, input_shape=args.input_shape,
            num_classes=10)

    def window(self, part: str) -> float:
        from twinbench.backends.base import StepClock

        # One step after the window, so that what fit does after its last step falls outside it (as it does in the
        # plain loop's windows, which end at a batch's end), and a clock edge after each part.
        steps, total = self.args.steps, PAIRED_LEAD + self.args.steps + 1
        clock = StepClock([0, PAIRED_LEAD, PAIRED_LEAD + steps, total], sync=lambda: self.runner.sync(self.model))
        if part == "whole":
            self.runner.train_steps(self.model, self.dataset, self.config, steps=total, clock=clock, feed="arrays")
        else:
            self.runner.compute_steps(self.model, self.dataset, self.config, steps=total, clock=clock)
        return clock.interval(PAIRED_LEAD, PAIRED_LEAD + steps) / steps


def measure_paired(args) -> dict:
    """``--paired``: the plain loop and twinbench's runner of one implementation in this one process, window by
    window (``--repeats`` rounds of ``PAIRED_PARTS``, every other round in reverse order), after one discarded window
    of each. The harness question without the process-to-process spread: per round, twinbench compute / plain
    step-only and twinbench whole / plain whole-loop."""
    import numpy as np

    from twinbench.stats import summarize

    if args.threads:
        set_threads(args.threads)
    x, y = synthetic(argparse.Namespace(**{**vars(args), "warmup": PAIRED_LEAD, "repeats": 1}),
                     np.random.default_rng(0))
    plain = PlainWindows(args, x, y)
    bench = TwinbenchWindows(args, plain.backend)
    run = {"plain": plain.window, "whole": lambda: bench.window("whole"), "compute": lambda: bench.window("compute")}
    for part in PAIRED_PARTS:  # each path warmed up (compiled, traced) before any window counts
        run[part]()
    samples = {"plain_step_only_s": [], "plain_whole_loop_s": [], "twinbench_whole_s": [], "twinbench_compute_s": []}
    for round_ in range(args.repeats):
        for part in PAIRED_PARTS if round_ % 2 == 0 else PAIRED_PARTS[::-1]:
            if part == "plain":
                step_only, whole = plain.window()
                samples["plain_step_only_s"].append(step_only)
                samples["plain_whole_loop_s"].append(whole)
            else:
                samples[f"twinbench_{part}_s"].append(run[part]())
    ratios = {
        "compute_vs_step_only": summarize([b / p for b, p in zip(samples["twinbench_compute_s"],
                                                                 samples["plain_step_only_s"], strict=True)]),
        "whole_vs_whole_loop": summarize([b / p for b, p in zip(samples["twinbench_whole_s"],
                                                                samples["plain_whole_loop_s"], strict=True)]),
    }
    return {"tool": "crosscheck-paired", "model": args.model, "implementation": args.impl, "backend": plain.backend,
            "batch_size": args.batch_size, "steps": args.steps, "lead": PAIRED_LEAD, "rounds": args.repeats,
            "threads": args.threads, "cpus": args.cpus, "affinity": args.affinity, "layout": layout_name(args.cpus),
            "allocator": args.allocator, "input_shape": list(args.input_shape), **samples, "ratios": ratios,
            "python": platform.python_version()}


def paired_line(result: dict) -> str:
    """One paired result in words: both ratios with their 95% CIs, and the medians behind them."""
    from twinbench.results.decompose import label

    def ratio(key):
        r = result["ratios"][key]
        return f"{r['median']:.3f} [{r['ci_low']:.3f}-{r['ci_high']:.3f}]"

    ms = {k: 1e3 * statistics.median(result[k]) for k in ("plain_step_only_s", "plain_whole_loop_s",
                                                          "twinbench_compute_s", "twinbench_whole_s")}
    return (f"{result['layout']:8s} {label((result['implementation'], result['backend'])):18s} "
            f"compute/step-only {ratio('compute_vs_step_only')} ({ms['twinbench_compute_s']:.1f} / "
            f"{ms['plain_step_only_s']:.1f} ms), whole/whole-loop {ratio('whole_vs_whole_loop')} "
            f"({ms['twinbench_whole_s']:.1f} / {ms['plain_whole_loop_s']:.1f} ms), {result['rounds']} rounds")


# ---------------------------------------------------------------------- comparing with twinbench


def layout_name(cpus) -> str:
    """A CPU layout in words: ``free`` (not pinned) or the CPUs pinned to, ``cpus=0`` or ``cpus=0,1``."""
    if cpus in (None, "", "free", []):
        return "free"
    numbers = parse_cpus(cpus) if isinstance(cpus, str) else sorted(cpus)
    return "cpus=" + ",".join(map(str, numbers))


def result_layout(result: dict) -> str:
    """A plain-loop result's CPU layout (``layout_name``; results from before ``--cpus`` are free)."""
    return layout_name(result.get("cpus"))


def record_layout(record: dict) -> str:
    """A twinbench record's CPU layout (``layout_name``) from its cell's ``LAYOUT_AXIS`` (absent: free)."""
    return layout_name((record.get("cell") or {}).get(LAYOUT_AXIS))


def result_allocator(result: dict) -> str:
    """A plain-loop result's allocator setting (results from before ``--allocator`` ran with the system's)."""
    return result.get(ALLOCATOR_AXIS, SYSTEM)


def load_hand(crosscheck_dir, allocator: str = SYSTEM) -> dict[tuple, dict]:
    """Every plain-loop result of ``allocator`` under ``crosscheck_dir`` (subdirectories included), several runs of
    one cell pooled,
    by ``(layout, model, batch_size, (implementation, backend))``. Each value: the first result's fields, and per
    timing key (``TIMINGS``) the pooled samples and ``runs_<key>``, the run each sample came from; ``runs``."""
    hand, loops = {}, set()
    for path in sorted(Path(crosscheck_dir).rglob("*.json")):
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or result.get("tool") != "crosscheck" or result_allocator(result) != allocator:
            continue  # a twinbench record or timeline, or another allocator's result
        if result["implementation"] != "torch":  # the PyTorch loop is always "loop"; Keras has three kinds
            loops.add(result.get("loop"))
        if "whole_loop_s" not in result:  # a result from before step-only: its windows were whole-loop ones
            result = {**result, "whole_loop_s": result.get("step_s"), "step_only_s": None}
        key = (result_layout(result), result["model"], result["batch_size"],
               (result["implementation"], result["backend"]))
        pooled = hand.setdefault(key, {**result, "runs": 0, **{k: [] for _, k, _ in TIMINGS},
                                       **{f"runs_{k}": [] for _, k, _ in TIMINGS}})
        for _, timing, _ in TIMINGS:
            samples = result.get(timing) or []
            pooled[timing] = pooled[timing] + samples
            pooled[f"runs_{timing}"] = pooled[f"runs_{timing}"] + [pooled["runs"]] * len(samples)
        pooled["runs"] += 1
    if len(loops) > 1:
        raise SystemExit(f"{crosscheck_dir} mixes --loop kinds {sorted(map(str, loops))}: compare one at a time")
    return hand


def load_paired(crosscheck_dir, allocator: str = SYSTEM) -> list[dict]:
    """Every ``--paired`` result of ``allocator`` under ``crosscheck_dir`` (subdirectories included), free layouts
    first."""
    results = []
    for path in sorted(Path(crosscheck_dir).rglob("*.json")):
        result = json.loads(path.read_text())
        if (isinstance(result, dict) and result.get("tool") == "crosscheck-paired"
                and result_allocator(result) == allocator):
            results.append(result)
    return sorted(results, key=lambda r: (r["layout"] != "free", r["layout"]))


def record_feed(record: dict) -> str:
    """A twinbench record's feed (its cell's ``FEED_AXIS``; absent: the native feed, twinbench's default)."""
    from twinbench.cell import AXES

    return (record.get("cell") or {}).get(FEED_AXIS, AXES[FEED_AXIS])


def record_allocator(record: dict) -> str:
    """A twinbench record's allocator setting (its cell's ``ALLOCATOR_AXIS``; absent: the system's)."""
    from twinbench.cell import AXES

    return (record.get("cell") or {}).get(ALLOCATOR_AXIS, AXES[ALLOCATOR_AXIS])


def twinbench_rows(records: list[dict], *, part: str, feed: str = COMPARED_FEED,
                   allocator: str = SYSTEM) -> dict[tuple, dict]:
    """The ``DECOMPOSITION`` rows of twinbench's throughput records fed by ``feed`` under ``allocator``, for ``part``
    (``"whole"`` or
    ``"compute"``), per CPU layout, by ``(layout, model, batch_size, numerator label, denominator label)``. Records in
    another mode give rows whose labels name their axes, which no plain-loop cell matches."""
    from twinbench.results.decompose import decomposition

    by_layout: dict[str, list[dict]] = {}
    for record in records:
        if (record.get("kind") == "throughput" and record_feed(record) == feed
                and record_allocator(record) == allocator):
            # Layout, feed and allocator are chosen apart, so they leave the cell: the ratio labels stay the plain ones.
            cell = {k: v for k, v in record["cell"].items() if k not in (LAYOUT_AXIS, FEED_AXIS, ALLOCATOR_AXIS)}
            by_layout.setdefault(record_layout(record), []).append({**record, "cell": cell})
    return {(layout, row["model"], row["batch_size"], row["numerator"], row["denominator"]): row
            for layout, group in by_layout.items() for row in decomposition(group, part=part)}


def agreement_rows(hand: dict, records: list[dict], *, tolerance: float = TOLERANCE,
                   feed: str = COMPARED_FEED, allocator: str = SYSTEM) -> list[dict]:
    """Every ratio both sides have, per timing and layout: ``timing, layout, model, batch_size, numerator,
    denominator, twinbench`` (its decomposition row), ``hand`` (``ratio_ci`` of the pooled plain-loop samples, runs
    resampled like twinbench's), ``agreement`` (hand ratio / twinbench ratio) and ``agree`` (within ``tolerance``).
    Only twinbench's records fed by ``feed``, and results and records under ``allocator``, take part. Cells missing on
    either side are skipped."""
    from twinbench.results.decompose import DECOMPOSITION, label
    from twinbench.stats import ratio_ci

    rows = []
    for timing, key, part in TIMINGS:
        theirs = twinbench_rows(records, part=part, feed=feed, allocator=allocator)
        for layout, model, batch in sorted({k[:3] for k in hand}, key=lambda k: (k[0] != "free", *k)):  # free first
            for numerator, denominator, _ in DECOMPOSITION:
                a, b = hand.get((layout, model, batch, numerator)), hand.get((layout, model, batch, denominator))
                ours = theirs.get((layout, model, batch, label(numerator), label(denominator)))
                if a is None or b is None or ours is None or len(a[key]) < 2 or len(b[key]) < 2:
                    continue
                if {result_allocator(a), result_allocator(b)} != {allocator}:
                    continue  # plain-loop results of another setting than the records
                mine = ratio_ci(a[key], b[key], runs_a=a[f"runs_{key}"], runs_b=b[f"runs_{key}"])
                agreement = mine["ratio"] / ours["ratio"]
                rows.append({"timing": timing, "layout": layout, "model": model, "batch_size": batch,
                             "numerator": label(numerator), "denominator": label(denominator), "twinbench": ours,
                             "hand": mine, "agreement": agreement, "agree": abs(agreement - 1) <= tolerance})
    return rows


def compare(crosscheck_dir, bench_dir, *, tolerance: float = TOLERANCE, feed: str = COMPARED_FEED,
            allocator: str = SYSTEM) -> tuple[str, bool]:
    """Both sets of ratios side by side, step-only and whole-loop, per layout, against twinbench's records fed by
    ``feed``, both sides under ``allocator``; True when at least one ratio was compared and every one agrees within
    ``tolerance``."""
    from twinbench.records import load_records
    from twinbench.results.decompose import label

    hand = load_hand(crosscheck_dir, allocator)
    rows = agreement_rows(hand, load_records(bench_dir)[0], tolerance=tolerance, feed=feed, allocator=allocator)
    lines = [f"twinbench's records with --feed {feed}; the plain loop feeds plain arrays; both with --allocator "
             f"{allocator}", ""]
    header = (f"{'layout':8s} {'model':10s} {'batch':>5s}  {'time ratio':33s} {'twinbench [95% CI]':>22s} "
              f"{'hand loop [95% CI]':>22s} {'hand/twinbench':>14s}  within {tolerance:.0%}")
    for timing, _, part in TIMINGS:
        lines += [f"Plain {timing} vs twinbench {part} (--feed {feed}):", header, "-" * len(header)]
        chosen = [row for row in rows if row["timing"] == timing]
        for row in chosen:
            ours, mine = row["twinbench"], row["hand"]
            lines.append(f"{row['layout']:8s} {row['model']:10s} {row['batch_size']:>5d}  "
                         f"{row['numerator'] + ' / ' + row['denominator']:33s} "
                         f"{ours['ratio']:6.3f} [{ours['ci_low']:.3f}-{ours['ci_high']:.3f}] "
                         f"{mine['ratio']:6.3f} [{mine['ci_low']:.3f}-{mine['ci_high']:.3f}] "
                         f"{row['agreement']:14.3f}  {'yes' if row['agree'] else 'NO'}")
        if not chosen:
            lines.append(f"(nothing to compare: no pair of cells with both plain {timing} samples and twinbench "
                         f"{part} windows of --feed {feed} in one layout)")
        lines.append("")
    paired = load_paired(crosscheck_dir, allocator)
    if paired:
        lines += [f"In one process, window by window (--paired): twinbench / plain loop, median of the rounds' "
                  f"ratios [95% CI]; within {tolerance:.0%} when both medians are"]
        for result in paired:
            within = all(abs(r["median"] - 1) <= tolerance for r in result["ratios"].values())
            lines.append(f"  {paired_line(result)}  {'yes' if within else 'NO'}")
        lines.append("")
    lines.append("Per implementation, median milliseconds per step (hand loop): step-only, whole-loop")
    for (layout, model, batch, cell), result in sorted(hand.items(), key=lambda item: (item[0][0] != "free", item[0])):
        medians = [f"{1e3 * statistics.median(result[k]):8.2f}" if result[k] else f"{'-':>8s}" for _, k, _ in TIMINGS]
        lines.append(f"  {layout:8s} {model} batch {batch} {label(cell):18s} {' '.join(medians)} "
                     f"({len(result['whole_loop_s'])} windows of {result['steps']} steps, {result['runs']} runs)")
    paired_agree = all(abs(r["median"] - 1) <= tolerance for result in paired for r in result["ratios"].values())
    return "\n".join(lines), bool(rows or paired) and all(row["agree"] for row in rows) and paired_agree


# ---------------------------------------------------------------------- under the same alternation (study)


def _round_of(path: Path, top: Path) -> str:
    """The folder of a file relative to the directory compared (``round-3``): the key that pairs a plain-loop result
    with twinbench's record of the same round."""
    return str(path.parent.relative_to(top))


def alternated_pairs(crosscheck_dir, bench_dir, *, feed: str = COMPARED_FEED,
                     allocator: str = SYSTEM) -> dict[tuple, list[tuple[float, float]]]:
    """``(twinbench, plain)`` median step times of the two processes of one implementation in one round, by
    ``(layout, model, batch_size, (implementation, backend))``: twinbench's whole windows (records of ``feed`` and
    ``allocator``, each cell alone in its process) against the plain loop's whole-loop windows (results of
    ``allocator``). ``twinbench study run crosscheck-alternated`` runs them next to each other, A,B in odd rounds
    and B,A in even ones, and writes round N under ``round-N`` on both sides: a round's folder pairs them."""
    from twinbench.records import load_records
    from twinbench.results.decompose import time_samples

    plain = {}
    top = Path(crosscheck_dir)
    for path in sorted(top.rglob("*.json")):
        result = json.loads(path.read_text())
        if (isinstance(result, dict) and result.get("tool") == "crosscheck" and result_allocator(result) == allocator
                and result.get("whole_loop_s")):
            key = (result_layout(result), result["model"], result["batch_size"],
                   (result["implementation"], result["backend"]))
            plain.setdefault(key, {})[_round_of(path, top)] = statistics.median(result["whole_loop_s"])
    ours = {}
    top = Path(bench_dir)
    records = load_records(bench_dir)[0]
    for record in records:
        cell = record.get("cell") or {}
        if (record.get("kind") != "throughput" or record.get("status") != "ok" or record_feed(record) != feed
                or record_allocator(record) != allocator or cell.get("process", "own") != "own"):
            continue
        folder = record.get("record_dir")  # load_records: the folder each record lies in
        round_name = str(Path(folder).relative_to(top)) if folder else None
        samples = time_samples(record)[0]
        if round_name is None or not samples:
            continue
        key = (record_layout(record), cell["model"], (record.get("config") or {}).get("batch_size"),
               (cell["implementation"], cell["backend"]))
        ours.setdefault(key, {})[round_name] = statistics.median(samples)
    return {key: [(ours[key][name], plain[key][name]) for name in sorted(set(ours[key]) & set(plain[key]))]
            for key in sorted(set(ours) & set(plain), key=lambda k: (k[0] != "free", k[0], k[1], k[2]))}


def alternated_rows(pairs: dict, *, tolerance: float = TOLERANCE, n_boot: int = 2000) -> list[dict]:
    """Per implementation: the agreement twinbench / plain loop (``paired_ratio_ci`` over the rounds' pairs), whether
    it is within ``tolerance`` (the ratio) and whether its whole 95% CI is; fewer than 2 rounds: no CI."""
    from twinbench.stats import paired_ratio_ci

    rows = []
    for (layout, model, batch, cell), found in pairs.items():
        row = {"layout": layout, "model": model, "batch_size": batch, "cell": cell, "rounds": len(found)}
        if len(found) >= 2:
            result = paired_ratio_ci(found, n_boot=n_boot)
            row.update(ratio=result["ratio"], ci_low=result["ci_low"], ci_high=result["ci_high"],
                       within=abs(result["ratio"] - 1) <= tolerance,
                       ci_within=1 - tolerance <= result["ci_low"] and result["ci_high"] <= 1 + tolerance)
        rows.append(row)
    return rows


def alternated_text(rows: list[dict], *, tolerance: float = TOLERANCE, feed: str = COMPARED_FEED,
                    allocator: str = SYSTEM) -> str:
    """The per-implementation agreement under the same alternation, one line each."""
    from twinbench.results.decompose import label

    lines = [f"Under the same alternation (each implementation's twinbench process and plain-loop process next to each "
             f"other, A,B then B,A; twinbench --feed {feed}, both --allocator {allocator}): twinbench whole / plain "
             f"whole-loop, median step per process, paired by round, 95% CI",
             f"{'layout':8s} {'model':10s} {'batch':>5s}  {'implementation':18s} {'rounds':>6s}  "
             f"{'twinbench / plain [95% CI]':>28s}  within {tolerance:.0%}  CI within {tolerance:.0%}"]
    for row in rows:
        name = label(row["cell"])
        if "ratio" not in row:
            lines.append(f"{row['layout']:8s} {row['model']:10s} {row['batch_size']:>5}  {name:18s} "
                         f"{row['rounds']:>6d}  (fewer than 2 rounds: no CI)")
            continue
        lines.append(f"{row['layout']:8s} {row['model']:10s} {row['batch_size']:>5}  {name:18s} {row['rounds']:>6d}  "
                     f"{row['ratio']:8.3f} [{row['ci_low']:.3f}-{row['ci_high']:.3f}]        "
                     f"{'yes' if row['within'] else 'NO':>3s}          {'yes' if row['ci_within'] else 'no':>3s}")
    if len(lines) == 2:
        lines.append("(nothing to pair: no round with both a twinbench record and a plain-loop result of one "
                     "implementation)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["torch", "tf_keras", "keras"])
    parser.add_argument("--model", default="cifar_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-shape", default="32x32x3")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed window")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10, help="timed windows")
    parser.add_argument("--batches", type=int, default=16, help="distinct synthetic batches, cycled")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpus", default=None, help="pin the process to these CPUs (0, 0,1 or 0-1) before any "
                                                      "framework is imported (default: free)")
    parser.add_argument("--loop", choices=["fit", "fit-call", "train-on-batch"], default="fit",
                        help="Keras: how steps are run and timed (see the module docstring)")
    parser.add_argument("--out", default="results/crosscheck")
    parser.add_argument("--paired", action="store_true",
                        help="time the plain loop and twinbench's runner of --impl in this one process, window by "
                             "window (--repeats rounds)")
    parser.add_argument("--compare", nargs=2, metavar=("CROSSCHECK_DIR", "BENCH_DIR"))
    parser.add_argument("--alternated", nargs=2, metavar=("CROSSCHECK_DIR", "BENCH_DIR"),
                        help="per implementation, twinbench / plain loop from processes run next to each other, "
                             "paired by round folder (twinbench study run crosscheck-alternated)")
    parser.add_argument("--feed", choices=FEEDS, default=COMPARED_FEED,
                        help="--compare: twinbench's records of this feed (default: arrays, as the plain loop feeds)")
    parser.add_argument("--allocator", choices=ALLOCATORS, default=SYSTEM,
                        help="the C allocator's settings (backends/allocator.py), set before any framework is "
                             "imported; --compare: the results and records of this setting (default system)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"--compare: largest relative difference of two ratios that agree (default {TOLERANCE})")
    args = parser.parse_args(argv)
    if args.alternated:
        rows = alternated_rows(alternated_pairs(*args.alternated, feed=args.feed, allocator=args.allocator),
                               tolerance=args.tolerance)
        print(alternated_text(rows, tolerance=args.tolerance, feed=args.feed, allocator=args.allocator))
        return 0 if rows and all(row.get("within") for row in rows) else 1
    if args.compare:
        text, agree = compare(*args.compare, tolerance=args.tolerance, feed=args.feed, allocator=args.allocator)
        print(text)
        return 0 if agree else 1
    if args.impl is None:
        parser.error("--impl is required unless --compare is given")
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1 (the warm-up's end starts the first window)")
    try:
        apply_allocator(check_allocator(args.allocator))  # before any framework, as --cpus
    except ValueError as err:
        parser.error(str(err))
    args.cpus = parse_cpus(args.cpus) if args.cpus else None
    args.affinity = pin(args.cpus) if args.cpus else sorted(os.sched_getaffinity(0))  # before any framework
    args.input_shape = tuple(int(p) for p in args.input_shape.split("x"))
    result = measure_paired(args) if args.paired else measure(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layout = "free" if args.cpus is None else "cpus" + "-".join(map(str, args.cpus))
    layout += "" if args.allocator == SYSTEM else f"__allocator-{args.allocator}"  # no result replaces another's
    if args.paired:
        name = f"{args.model}__{result['implementation']}__{result['backend']}__b{args.batch_size}__paired__{layout}.json"
        (out / name).write_text(json.dumps(result, indent=2) + "\n")
        print(paired_line(result))
        return 0
    name = f"{args.model}__{result['implementation']}__{result['backend']}__b{args.batch_size}__{result['loop']}__{layout}.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    step_only = result["median_step_only_s"]
    print(f"{name}: median {1e3 * step_only:.2f} ms/step step-only, " if step_only is not None else f"{name}: ",
          f"{1e3 * result['median_whole_loop_s']:.2f} ms/step whole-loop over {args.repeats} windows of "
          f"{args.steps} steps", sep="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
