"""What the step clock's callback costs ``fit`` per step, measured on the callback machinery alone.

Keras 3 and tf.keras call their callbacks around every training step. twinbench's
``StepClockCallback`` defines ``on_train_batch_begin`` (it must, to take a timestamp before a step
without touching the step itself). This script times the per-step hook calls ``fit`` makes,
``on_train_batch_begin`` + ``on_train_batch_end`` through a ``CallbackList``, with and without that
callback (its clock has no edge in the loop, as on every step between two window edges), and reports
the difference per step: the price of the clock between edges, to set against a step's milliseconds.

    KERAS_BACKEND=torch      python tools/investigations/callback_cost.py --impl keras
    KERAS_BACKEND=tensorflow python tools/investigations/callback_cost.py --impl tf_keras
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def per_step_hook_time(callback_list, logs, steps: int) -> float:
    """Seconds per step spent in the batch hooks that fit calls around each step."""
    callback_list.on_train_begin()
    start = time.perf_counter()
    for step in range(steps):
        callback_list.on_train_batch_begin(step)
        callback_list.on_train_batch_end(step, logs)
    callback_list.on_epoch_end(0, {"loss": 1.0})  # flushes Keras 3's asynchronous batch-end hooks
    elapsed = time.perf_counter() - start
    callback_list.on_train_end()
    return elapsed / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["keras", "tf_keras"], required=True)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from twinbench.backends import get_runner
    from twinbench.backends.base import StepClock

    runner = get_runner(args.impl)
    model = runner.prepare("mnist_cnn", input_shape=(12, 12, 1), num_classes=10)
    if args.impl == "tf_keras":
        import tensorflow as tf
        import tf_keras as module

        from twinbench.backends.tf_keras_runner import StepClockCallback

        logs = {"loss": tf.constant(1.0)}
    else:
        import keras as module

        from twinbench.backends.keras_runner import StepClockCallback

        logs = {"loss": module.ops.convert_to_tensor(1.0)}

    def callback_list(with_clock: bool):
        clock = StepClock([args.steps + 1], sync=lambda: None)  # no edge inside the loop
        callbacks = [StepClockCallback(runner, clock=clock)] if with_clock else []
        return module.callbacks.CallbackList(callbacks, add_history=True, model=model)

    without, with_clock = [], []
    for _ in range(args.repeats):
        without.append(per_step_hook_time(callback_list(False), logs, args.steps))
        with_clock.append(per_step_hook_time(callback_list(True), logs, args.steps))
    base, clock = statistics.median(without), statistics.median(with_clock)
    print(f"{args.impl} ({runner.backend}): batch hooks per step {1e6 * base:.1f} us without the clock callback, "
          f"{1e6 * clock:.1f} us with it: +{1e6 * (clock - base):.1f} us per step "
          f"(median of {args.repeats} x {args.steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
