"""The native tf.keras implementation (Keras 2, package ``tf-keras``): ``compile`` + ``fit`` on TensorFlow.

It shares its process with Keras 3 on the TensorFlow backend (both live in the tensorflow environment);
Keras 3 is used only to draw the canonical initial weights. Batches come from a ``tf_keras.utils.Sequence``
that follows twinbench's shared per-epoch order.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf
import tf_keras

import data as datasets
from backends.base import EpochResult, NullEvents, Runner, StepClock, TrainConfig, cycled_batches, epoch_edges
from backends.keras_runner import compile_model
from models.weights import WeightMismatchError


class EpochBatches(tf_keras.utils.Sequence):
    """Training batches in the shared order; ``on_epoch_end`` moves to the next epoch's permutation."""

    def __init__(self, x, y, batch_size, *, seed):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = 0
        self._batches = datasets.batch_indices(len(x), batch_size, epoch=0, seed=seed)

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        idx = self._batches[index]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self._batches = datasets.batch_indices(len(self.x), self.batch_size, epoch=self.epoch, seed=self.seed)


class FixedBatches(tf_keras.utils.Sequence):
    """A fixed list of index batches, one epoch long (the throughput benchmark's ``cycled_batches``)."""

    def __init__(self, x, y, batches):
        self.x, self.y, self.batches = x, y, batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        idx = self.batches[index]
        return self.x[idx], self.y[idx]


class StepClockCallback(tf_keras.callbacks.Callback):
    """Drives a ``StepClock`` from ``fit``: ``before_step`` at each batch's beginning, ``finish`` at epoch end.

    Defining a batch hook makes tf.keras call the batch hooks of every callback each step, and it would
    convert the logs to numpy (a sync per step) unless each callback with batch hooks declares that it
    accepts tensors; ``_supports_tf_logs = True`` is that declaration (this callback never reads them).
    """

    _supports_tf_logs = True

    def __init__(self, runner, *, clock=None, steps=None):
        super().__init__()
        self.runner, self.clock, self.steps = runner, clock, steps

    def on_train_batch_begin(self, batch, logs=None):
        if self.clock is not None:
            self.clock.before_step(batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.clock is not None and self.steps is not None:
            self.clock.finish(self.steps)


class _EpochTimer(StepClockCallback):
    """Synchronised epoch timestamps, steady-state windows, test accuracy after each epoch, profiler markers."""

    def __init__(self, runner, dataset, config, events):
        super().__init__(runner)
        self.dataset, self.config, self.events = dataset, config, events
        self.results = []
        n, batch_size = len(dataset.x_train), config.batch_size
        self.steps = math.ceil(n / batch_size)
        self.edges = epoch_edges(self.steps, config.timing_window, last_batch_partial=n % batch_size != 0)

    def on_epoch_begin(self, epoch, logs=None):
        # Syncs (and timestamps) only before step 0, after step 1 and every `timing_window` steps.
        self.clock = StepClock(self.edges, sync=lambda: self.runner.sync(self.model))
        self.clock.before_step(0)
        self.started = self.clock.arrived[0]
        self.events.mark("epoch_begin", epoch=epoch)
        self._window = self.events.window(f"train-epoch-{epoch}", epoch=epoch, phase="train")
        self._window.__enter__()

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs["loss"])  # tf.keras' mean over samples; fetching it waits for the last step
        trained = self.clock.finish(self.steps)
        self._window.__exit__(None, None, None)
        with self.events.window(f"eval-epoch-{epoch}", epoch=epoch, phase="eval"):
            test_accuracy = self.runner.evaluate(self.model, self.dataset.x_test, self.dataset.y_test,
                                                 batch_size=self.config.eval_batch_size)
        ended = self.runner.now()
        if self.config.progress:
            print(f"  test accuracy {test_accuracy:.4f}")
        self.events.mark("epoch_end", epoch=epoch, loss=loss, test_accuracy=test_accuracy)
        self.results.append(EpochResult(epoch=epoch, loss=loss, test_accuracy=test_accuracy,
                                        train_time_s=trained - self.started, eval_time_s=ended - trained,
                                        steps=self.steps, started_at=self.started, ended_at=ended, trained_at=trained,
                                        **self.clock.epoch_figures(self.config.timing_window)))


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def neutral_variables(model) -> dict[str, tf.Variable]:
    """Neutral name (``layer/variable``, Keras 3 spelling) -> tf.keras variable."""
    variables = {}
    for layer in _leaf_layers(model):
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            if name == "depthwise_kernel":  # Keras 3 calls it plain "kernel"
                name = "kernel"
            variables[f"{layer.name}/{name}"] = weight
    return variables


class TfKerasRunner(Runner):
    implementation = "tf_keras"
    backend = "tensorflow"

    def setup(self, *, seed: int = 0) -> None:
        tf_keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_tensor_float_32_execution(False)

    # -- weights -------------------------------------------------------------------------------------------
    def weight_shapes(self, model):
        return {name: tuple(v.shape) for name, v in neutral_variables(model).items()}

    def get_weights(self, model):
        return {name: v.numpy() for name, v in neutral_variables(model).items()}

    def set_weights(self, model, weights):
        for name, variable in neutral_variables(model).items():
            if name not in weights:
                raise WeightMismatchError(f"Weight {name!r} is missing from the mapping.")
            variable.assign(np.asarray(weights[name], dtype=np.float32))

    def count_params(self, model) -> int:
        return int(sum(np.prod(v.shape) for name, v in neutral_variables(model).items()
                       if not name.endswith(("moving_mean", "moving_variance"))))

    # -- forward, gradients, one step ----------------------------------------------------------------------
    def predict(self, model, x, *, batch_size=256):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)

    def loss_and_grads(self, model, x, y):
        loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        names = {id(v): n for n, v in neutral_variables(model).items()}
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        return float(loss), {names[id(v)]: g.numpy() for v, g in zip(model.trainable_variables, grads, strict=True)}

    def train_step(self, model, x, y, config):
        if model.optimizer is None:
            compile_model(model, config, module=tf_keras)
        return float(model.train_on_batch(x, y))

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, model, dataset, config: TrainConfig, *, events=None):
        compile_model(model, config, module=tf_keras)
        timer = _EpochTimer(self, dataset, config, events or NullEvents())
        batches = EpochBatches(dataset.x_train, dataset.y_train, config.batch_size, seed=config.seed)
        model.fit(batches, epochs=config.epochs, shuffle=False, verbose=1 if config.progress else 0,
                  callbacks=[timer])
        return timer.results

    def train_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock):
        """One ``fit`` epoch over ``steps`` full batches, the clock driven by a callback."""
        if model.optimizer is None:
            compile_model(model, config, module=tf_keras)
        batches = FixedBatches(dataset.x_train, dataset.y_train,
                               cycled_batches(len(dataset.x_train), config.batch_size, steps, seed=config.seed))
        model.fit(batches, epochs=1, shuffle=False, verbose=0,
                  callbacks=[StepClockCallback(self, clock=clock, steps=steps)])

    # -- device ----------------------------------------------------------------------------------------------
    def sync(self, model=None):
        """Reading a variable waits for every pending write to it: the step counter is written by each step."""
        if model is not None and getattr(model, "optimizer", None) is not None:
            model.optimizer.iterations.numpy()

    def memory_stats(self):
        if tf.config.list_physical_devices("GPU"):
            info = tf.config.experimental.get_memory_info("GPU:0")
            return {"allocator": "tensorflow", "peak_bytes": int(info["peak"])}
        return {}

    def describe(self, model=None):
        return {
            "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
            "keras_backend": "tensorflow (tf_keras, Keras 2)",
            # tf.keras' default is jit_compile=None: plain tf.function graphs, no XLA.
            "jit_compile": bool(model.jit_compile) if model is not None and model.optimizer is not None else None,
            "run_eagerly": bool(model.run_eagerly) if model is not None and model.optimizer is not None else None,
            "precision_policy": tf_keras.mixed_precision.global_policy().name,
            "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
            # 0 means "TensorFlow chooses" (from TF_NUM_*_THREADS or the number of cores).
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                        "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
                        "TF_NUM_INTEROP_THREADS": os.environ.get("TF_NUM_INTEROP_THREADS")},
        }
