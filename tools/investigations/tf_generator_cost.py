"""What ``tf.data.Dataset.from_generator`` costs TensorFlow's train step on a CPU, beyond feeding batches.

The plain-loop cross-check (docs/crosscheck.md) found twinbench's TensorFlow steps twice as long as a hand-written
``fit(x, y)`` loop's, in its compute-only windows too, where no input pipeline runs. The cause is the feed that ran
before them: tf.keras' ``Sequence`` and Keras 3's ``PyDataset`` reach TensorFlow through ``from_generator``, and once a
``from_generator`` iterator has produced one element, every later train step in that process is slower, even one
on constant tensors with the iterator deleted. This script shows it in isolation, with the page faults per step
(``getrusage``): twinbench's native-feed TensorFlow cells fault ~17,000 fresh pages in per step
(twinbench study run malloc), because glibc's malloc hands TensorFlow's buffers back to the OS; run it with ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736
MALLOC_TOP_PAD_=536870912`` set (the study malloc) to see the allocator told to keep them.

Each condition runs in a fresh process (``--condition``, the worker mode): cifar_cnn (tf.keras) at batch 64, its
train step as a ``tf.function`` on constant tensors, ``WARMUP`` steps, then ``WINDOWS`` windows of ``STEPS`` steps;
before the warm-up, the condition does its one thing:

    constant             nothing (the reference)
    tensor-slices        one element from a from_tensor_slices dataset (tf.data without Python)
    numpy-function       one element from a dataset that maps a tf.numpy_function (Python inside tf.data)
    generator            one element from a from_generator dataset, the iterator kept
    generator-deleted    the same, then the iterator and dataset deleted and garbage-collected
    sequence-fit         one tf.keras fit step over a tf_keras.utils.Sequence (what twinbench's native feed does)

The conditions alternate in every round (``--rounds``), each process alone on the machine. Run it in the tensorflow
environment, on an idle machine::

    .nox/tests-tensorflow/bin/python tools/investigations/tf_generator_cost.py --rounds 3 --out results/tf-generator-cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONDITIONS = ("constant", "tensor-slices", "numpy-function", "generator", "generator-deleted", "sequence-fit")
BATCH, WARMUP, STEPS, WINDOWS = 64, 5, 20, 3


def worker(condition: str) -> dict:
    """One fresh process: the condition's one thing, then the timed steps; returns ms per step of each window."""
    import gc

    import numpy as np
    import tensorflow as tf
    import tf_keras

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from twinbench.measuring.threads import minor_page_faults
    from twinbench.models import build_model

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    model = build_model("cifar_cnn", "tf_keras", input_shape=(32, 32, 3), num_classes=10)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3, epsilon=1e-8),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    signature = (tf.TensorSpec((BATCH, 32, 32, 3), tf.float32), tf.TensorSpec((BATCH,), tf.int64))
    keep = None
    if condition == "tensor-slices":
        keep = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH))
        next(keep)
    elif condition == "numpy-function":
        keep = iter(tf.data.Dataset.range(3).map(lambda i: tf.numpy_function(lambda a: a, [i], tf.int64)))
        next(keep)
    elif condition in ("generator", "generator-deleted"):
        keep = iter(tf.data.Dataset.from_generator(lambda: iter([(x, y)] * 2), output_signature=signature))
        next(keep)
        if condition == "generator-deleted":
            keep = None
            gc.collect()
    elif condition == "sequence-fit":
        class OneBatch(tf_keras.utils.Sequence):
            def __len__(self):
                return 1

            def __getitem__(self, index):
                return x, y

        model.fit(OneBatch(), epochs=1, verbose=0, shuffle=False)
    elif condition != "constant":
        raise ValueError(f"--condition must be one of {', '.join(CONDITIONS)}. Received: {condition!r}.")
    step = tf.function(model.train_step)
    data = (tf.constant(x), tf.constant(y))
    for _ in range(WARMUP):
        step(data)
    model.optimizer.iterations.numpy()
    windows, faults = [], []
    for _ in range(WINDOWS):
        faults_before = minor_page_faults()
        start = time.perf_counter()
        for _ in range(STEPS):
            step(data)
        model.optimizer.iterations.numpy()  # waits for the last step's update
        windows.append(1e3 * (time.perf_counter() - start) / STEPS)
        faults.append((minor_page_faults() - faults_before) / STEPS)
    del keep
    return {"condition": condition, "ms_per_step": windows, "page_faults_per_step": faults}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--condition", choices=CONDITIONS, help="worker mode: run one condition in this process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every condition runs once a round")
    parser.add_argument("--out", type=Path, help="write the runs and the summary as JSON here")
    args = parser.parse_args(argv)
    if args.condition:
        print(json.dumps(worker(args.condition)))
        return 0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = []
    for round_ in range(1, args.rounds + 1):
        for condition in CONDITIONS:
            done = subprocess.run([sys.executable, __file__, "--condition", condition], env=env, check=True,
                                  capture_output=True, text=True)
            run = {**json.loads(done.stdout.strip().splitlines()[-1]), "round": round_}
            runs.append(run)
            print(f"round {round_} {condition:18s} " + " ".join(f"{ms:6.1f}" for ms in run["ms_per_step"])
                  + f"  ms/step; {statistics.median(run['page_faults_per_step']):.0f} page faults/step", flush=True)
    summary = {}
    constant = statistics.median(ms for r in runs if r["condition"] == "constant" for ms in r["ms_per_step"])
    print(f"\nmedian ms/step over {args.rounds} rounds x {WINDOWS} windows of {STEPS} steps (cifar_cnn, batch {BATCH})")
    for condition in CONDITIONS:
        values = [ms for r in runs if r["condition"] == condition for ms in r["ms_per_step"]]
        median = statistics.median(values)
        faults = statistics.median(f for r in runs if r["condition"] == condition for f in r["page_faults_per_step"])
        summary[condition] = {"median_ms": median, "min_ms": min(values), "max_ms": max(values),
                              "vs_constant": median / constant, "page_faults_per_step": faults}
        print(f"  {condition:18s} {median:6.1f} ms  [{min(values):.1f}-{max(values):.1f}]  "
              f"{median / constant:.2f}x constant  {faults:7.0f} page faults/step")
    if args.out:
        import tensorflow as tf

        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        from twinbench.measuring.environment import ALLOCATOR_VARS

        allocator = {name: os.environ.get(name) for name in ALLOCATOR_VARS}
        tmp.write_text(json.dumps({"tensorflow": tf.__version__, "allocator": allocator, "batch": BATCH, "warmup": WARMUP, "steps": STEPS,
                                   "windows": WINDOWS, "rounds": args.rounds, "runs": runs, "summary": summary},
                                  indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
