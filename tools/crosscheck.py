"""A plain, hand-written timing loop per implementation: the cross-check of twinbench's numbers.

No profiler, no ``StepClock``, no ``Runner``, no records: each implementation is trained the way one
would time it by hand. Build the model, warm up, then time ``--steps`` training steps between two
``time.perf_counter()`` calls with a device sync before each; repeat. If twinbench's harness (step
clock, callback, profiler) distorted the timings, the ratios between implementations measured here
would disagree with ``python -m bench throughput``.

- PyTorch: the tutorial loop over a ``DataLoader`` of a ``TensorDataset`` (``zero_grad``, forward,
  loss, ``backward``, ``step``).
- Keras 3 and tf.keras, ``--loop fit`` (the default): one ``model.fit`` call over a ``PyDataset`` /
  ``Sequence`` of warm-up + repeats x steps batches, and a ten-line stopwatch callback that reads
  ``perf_counter()`` after the last step of each window, once the step's loss has been read (which waits
  for it). Defining ``on_train_batch_end`` makes Keras convert the logs after every step, so unlike
  twinbench this syncs every step; on a CPU that costs little. Without any sync the readings are
  meaningless for JAX, whose dispatch runs ahead of the computation (we tried: windows of 10 steps read
  from 0.15 to 10 ms per step).
- ``--loop fit-call``: time whole ``fit`` calls of ``--steps`` batches from outside. This includes what
  ``fit`` does before the first step and after the last (data adapter, input pipeline start and stop),
  which steady-state windows leave out by design.
- ``--loop train-on-batch``: ``model.train_on_batch`` once per batch; every call returns the loss as a
  number (a sync), and tf.keras builds a one-batch dataset in every call.

One implementation per process (one Keras backend per process)::

    KERAS_BACKEND=torch      python tools/crosscheck.py --impl torch    --out results/crosscheck
    KERAS_BACKEND=torch      python tools/crosscheck.py --impl keras    --out results/crosscheck
    KERAS_BACKEND=tensorflow python tools/crosscheck.py --impl tf_keras --out results/crosscheck
    KERAS_BACKEND=tensorflow python tools/crosscheck.py --impl keras    --out results/crosscheck
    KERAS_BACKEND=jax        python tools/crosscheck.py --impl keras    --out results/crosscheck

    python tools/crosscheck.py --compare results/crosscheck results/throughput   # both sets of ratios

``--compare`` reads every result under both directories (subdirectories included) and pools several
runs of one cell, like ``python -m bench compare DIR [DIR ...]``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def set_threads(threads: int) -> None:
    """Cap the frameworks' CPU thread pools; must run before any framework is imported."""
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                      TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    if threads == 1:  # XLA has no thread-count flag (see backends.limit_threads)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()


def synthetic(args, rng):
    """Uniform images in [0, 1) and random labels: ``batches`` distinct batches, NHWC float32."""
    import numpy as np

    x = rng.random((args.batches * args.batch_size, *args.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, size=len(x), dtype=np.int64)
    return x, y


def time_torch(args, x, y):
    """The PyTorch loop: zero_grad, forward, loss, backward, step; timed N steps at a time."""
    import torch

    from models import build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.model, "torch", input_shape=args.input_shape, num_classes=10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    images, labels = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                         batch_size=args.batch_size, shuffle=False)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def batches(n):
        """``n`` batches, going round the data as often as needed."""
        while n > 0:
            for batch in loader:
                if n == 0:
                    return
                n -= 1
                yield batch

    def steps(n):
        for images_batch, labels_batch in batches(n):
            images_batch = images_batch.to(device, non_blocking=True)
            labels_batch = labels_batch.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = loss_fn(model(images_batch), labels_batch)
            loss.backward()
            optimizer.step()

    model.train()
    steps(args.warmup)
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        steps(args.steps)
        sync()
        times.append((time.perf_counter() - start) / args.steps)
    return times


def time_keras_fit(args, x, y, module, model):
    """Keras 3 or tf.keras: ``compile`` + one ``fit`` call of N steps, timed from outside."""

    model.compile(optimizer=module.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8),
                  loss=module.losses.SparseCategoricalCrossentropy(from_logits=True))
    def batch(index):
        start = index % args.batches * args.batch_size
        return x[start : start + args.batch_size], y[start : start + args.batch_size]

    base = module.utils.PyDataset if hasattr(module.utils, "PyDataset") else module.utils.Sequence

    class Batches(base):
        """``steps`` batches of ``batch_size``, going round the data as often as needed."""

        def __init__(self, steps):
            super().__init__()
            self.steps = steps

        def __len__(self):
            return self.steps

        def __getitem__(self, index):
            return batch(index)

    def fit_call(n):
        history = model.fit(Batches(n), epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])  # a Python float: fit waited for its last step

    def train_on_batch(n):
        for index in range(n):
            loss = model.train_on_batch(*batch(index))  # returns a number: waits for the step
        return float(loss)

    if args.loop == "fit":
        # One fit call; window k ends after `warmup + k * steps` steps (window 0's end is the start of window 1).
        edges = [args.warmup + k * args.steps for k in range(args.repeats + 1)]

        class Stopwatch(module.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = {}

            def on_train_batch_end(self, batch, logs=None):
                if batch + 1 in edges:
                    float(logs["loss"])  # the step's loss: waits until the step is done
                    self.times[batch + 1] = time.perf_counter()

        stopwatch = Stopwatch()
        model.fit(Batches(edges[-1]), epochs=1, shuffle=False, verbose=0, callbacks=[stopwatch])
        return [(stopwatch.times[b] - stopwatch.times[a]) / args.steps for a, b in zip(edges, edges[1:], strict=False)]

    steps = fit_call if args.loop == "fit-call" else train_on_batch
    steps(args.warmup)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        steps(args.steps)
        times.append((time.perf_counter() - start) / args.steps)
    return times


def measure(args) -> dict:
    import numpy as np

    if args.threads:
        set_threads(args.threads)
    rng = np.random.default_rng(0)
    x, y = synthetic(args, rng)
    backend = os.environ.get("KERAS_BACKEND")
    if args.impl == "torch":
        backend = "torch"
        times = time_torch(args, x, y)
    elif args.impl == "tf_keras":
        import tf_keras

        from models import build_model

        backend = "tensorflow"
        times = time_keras_fit(args, x, y, tf_keras, build_model(args.model, "tf_keras", input_shape=args.input_shape,
                                                                 num_classes=10))
    else:
        import keras

        from models import build_model

        backend = keras.backend.backend()
        times = time_keras_fit(args, x, y, keras, build_model(args.model, "keras", input_shape=args.input_shape,
                                                              num_classes=10))
    return {"tool": "crosscheck", "model": args.model, "implementation": args.impl, "backend": backend,
            "loop": "loop" if args.impl == "torch" else args.loop, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "threads": args.threads,
            "input_shape": list(args.input_shape), "step_s": times, "median_step_s": statistics.median(times),
            "python": platform.python_version()}


# ---------------------------------------------------------------------- comparing with twinbench


def compare(crosscheck_dir, bench_dir, *, tolerance=0.15) -> tuple[str, bool]:
    """Both sets of ratios side by side; True when every ratio agrees within ``tolerance``."""
    from bench.records import load_records
    from bench.results.decompose import DECOMPOSITION, decomposition, label
    from bench.results.stats import ratio_ci

    # Every result under the directories, subdirectories included; several runs of one cell are pooled.
    hand, loops = {}, set()
    for path in sorted(Path(crosscheck_dir).rglob("*.json")):
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or result.get("tool") != "crosscheck":
            continue  # a twinbench record or timeline
        if result["implementation"] != "torch":  # the PyTorch loop is always "loop"; Keras has three kinds
            loops.add(result.get("loop"))
        key = (result["model"], result["batch_size"], (result["implementation"], result["backend"]))
        pooled = hand.setdefault(key, {**result, "step_s": [], "run_of_sample": [], "runs": 0})
        pooled["step_s"] = pooled["step_s"] + result["step_s"]
        pooled["run_of_sample"] = pooled["run_of_sample"] + [pooled["runs"]] * len(result["step_s"])
        pooled["runs"] += 1
    if len(loops) > 1:
        raise SystemExit(f"{crosscheck_dir} mixes --loop kinds {sorted(map(str, loops))}: compare one at a time")
    for result in hand.values():
        result["median_step_s"] = statistics.median(result["step_s"])
    records = load_records(bench_dir)[0]
    harness = {(r["numerator"], r["denominator"], r["model"], r["batch_size"]): r
               for r in decomposition([r for r in records if r.get("kind") == "throughput"])}
    lines, all_agree = [], True
    header = (f"{'model':10s} {'batch':>5s}  {'time ratio':33s} {'twinbench [95% CI]':>22s} "
              f"{'hand loop [95% CI]':>22s} {'hand/twinbench':>14s}  within {tolerance:.0%}")
    lines += [header, "-" * len(header)]
    models = sorted({(model, batch) for model, batch, _ in hand})
    for model, batch in models:
        for numerator, denominator, _ in DECOMPOSITION:
            a, b = hand.get((model, batch, numerator)), hand.get((model, batch, denominator))
            ours = harness.get((label(numerator), label(denominator), model, batch))
            if a is None or b is None or ours is None:
                continue
            # Runs resampled too, like twinbench's decomposition (bench.results.stats.ratio_ci).
            theirs = ratio_ci(a["step_s"], b["step_s"], runs_a=a["run_of_sample"], runs_b=b["run_of_sample"])
            agreement = theirs["ratio"] / ours["ratio"]
            agree = abs(agreement - 1) <= tolerance
            all_agree &= agree
            lines.append(f"{model:10s} {batch:>5d}  {label(numerator) + ' / ' + label(denominator):33s} "
                         f"{ours['ratio']:6.3f} [{ours['ci_low']:.3f}-{ours['ci_high']:.3f}] "
                         f"{theirs['ratio']:6.3f} [{theirs['ci_low']:.3f}-{theirs['ci_high']:.3f}] "
                         f"{agreement:14.3f}  {'yes' if agree else 'NO'}")
    lines.append("")
    lines.append("Per implementation, median seconds per step (hand loop):")
    for (model, batch, cell), result in sorted(hand.items()):
        lines.append(f"  {model} batch {batch} {label(cell):18s} {1e3 * result['median_step_s']:8.2f} ms "
                     f"({len(result['step_s'])} repeats of {result['steps']} steps, {result['runs']} runs)")
    return "\n".join(lines), all_agree


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["torch", "tf_keras", "keras"])
    parser.add_argument("--model", default="cifar_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-shape", default="32x32x3")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batches", type=int, default=16, help="distinct synthetic batches, cycled")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loop", choices=["fit", "fit-call", "train-on-batch"], default="fit",
                        help="Keras: how steps are run and timed (see the module docstring)")
    parser.add_argument("--out", default="results/crosscheck")
    parser.add_argument("--compare", nargs=2, metavar=("CROSSCHECK_DIR", "BENCH_DIR"))
    args = parser.parse_args(argv)
    if args.compare:
        text, agree = compare(*args.compare)
        print(text)
        return 0 if agree else 1
    if args.impl is None:
        parser.error("--impl is required unless --compare is given")
    args.input_shape = tuple(int(p) for p in args.input_shape.split("x"))
    result = measure(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.model}__{result['implementation']}__{result['backend']}__b{args.batch_size}__{result['loop']}.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{name}: median {1e3 * result['median_step_s']:.2f} ms/step over {args.repeats} repeats of {args.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
