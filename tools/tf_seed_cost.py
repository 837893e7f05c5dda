"""What seeding costs TensorFlow: one plain tf.keras ``fit`` of cifar_cnn timed in a fresh process, after TF32 is
switched off, and after ``tf_keras.utils.set_random_seed`` (what twinbench's runners do in ``setup``).

The plain-loop cross-check (docs/overhead.md) found twinbench's TensorFlow steps twice as long as a hand-written loop's;
this script isolates the cause. Run it in the tensorflow environment, on an idle machine::

    KERAS_BACKEND=tensorflow .nox/tests-tensorflow/bin/python tools/tf_seed_cost.py
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from models import build_model  # noqa: E402

BATCH, BATCHES = 64, 8


def time_fit(label, x, y):
    """A fresh model, one warm-up epoch, then the mean step of two epochs (``fit`` on numpy arrays)."""
    model = build_model("cifar_cnn", "tf_keras", input_shape=(32, 32, 3), num_classes=10)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3, epsilon=1e-8),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, shuffle=False)
    print(f"{label}: {1e3 * (time.perf_counter() - start) / (2 * BATCHES):.1f} ms/step", flush=True)


def main():
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * BATCHES, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    time_fit("fresh process", x, y)
    tf.config.experimental.enable_tensor_float_32_execution(False)
    time_fit("after enable_tensor_float_32_execution(False)", x, y)
    tf_keras.utils.set_random_seed(0)
    time_fit("after tf_keras.utils.set_random_seed(0)", x, y)


if __name__ == "__main__":
    main()
