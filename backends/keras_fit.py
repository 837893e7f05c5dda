"""The ``fit`` machinery the Keras 3 and tf.keras runners share, written once for either Keras module.

Keras 3 (``keras``) and Keras 2 (``tf_keras``) train the same way, ``compile`` + ``fit`` over a dataset
object with callbacks, so one piece of code serves both; only the module differs. ``fit_classes(keras)``
and ``fit_classes(tf_keras)`` make, on that module's own base classes:

- ``EpochBatches``       the training batches in twinbench's shared per-epoch order;
- ``FixedBatches``       a fixed list of index batches, one epoch long (the throughput benchmark's
  ``cycled_batches``);
- ``StepClockCallback``  drives a ``StepClock`` from ``fit``;
- ``EpochTimer``         synchronised epoch timestamps, steady-state windows, test accuracy after each
  epoch (the same work the PyTorch loop does after each epoch), profiler markers.

``compile_model`` compiles a model with the shared training settings and ``mixed_policy`` builds one under a mixed
dtype policy, in either module. ``KerasFitRunner`` is the runners' common base: prediction, one optimizer step and
the throughput benchmark's steps, through ``fit`` of the runner's ``keras_module``. Each runner keeps its own ``fit``
(what the teaching pages show). Neither Keras module is imported here: each runner passes its own.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from twinbench import data as datasets
from twinbench.backends.base import (
    COMPUTE_BATCHES,
    STYLES,
    EpochResult,
    Runner,
    StepClock,
    TrainConfig,
    check_feed,
    cycled_batches,
    epoch_edges,
)
from twinbench.backends.process import BackendError
from twinbench.data.tasks import num_samples, take


@dataclass(frozen=True)
class FitClasses:
    """The batches and callbacks of one Keras module (see the module docstring)."""

    EpochBatches: type
    FixedBatches: type
    StepClockCallback: type
    EpochTimer: type


@functools.cache
def fit_classes(module: ModuleType) -> FitClasses:
    """The batches and callbacks for the Keras module ``module`` (``keras`` or ``tf_keras``), made once each."""

    # Keras 3's PyDataset is exported under the Keras 2 name Sequence too, so one base serves both modules.
    class EpochBatches(module.utils.Sequence):
        """Training batches in the shared order; ``on_epoch_end`` moves to the next epoch's permutation (and, for a
        dataset that resamples, ``resample(epoch)``, to the next epoch's arrays)."""

        def __init__(self, x, y, batch_size, *, seed, resample=None, drop_last=False):
            super().__init__()
            self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
            self.resample, self.drop_last = resample, drop_last
            self.epoch = 0
            self.reshuffles = []  # (begin, end) perf_counter of each on_epoch_end: the epoch timer reads them
            self._batches = datasets.batch_indices(num_samples(x), batch_size, epoch=0, seed=seed, drop_last=drop_last)

        def __len__(self):
            return len(self._batches)

        def __getitem__(self, index):
            idx = self._batches[index]
            return take(self.x, idx), self.y[idx]

        def on_epoch_end(self):
            begin = time.perf_counter()
            self.epoch += 1
            if self.resample is not None:
                self.x, self.y = self.resample(self.epoch)
            self._batches = datasets.batch_indices(num_samples(self.x), self.batch_size, epoch=self.epoch,
                                                   seed=self.seed, drop_last=self.drop_last)
            self.reshuffles.append((begin, time.perf_counter()))

    class FixedBatches(module.utils.Sequence):
        """A fixed list of index batches, one epoch long (the throughput benchmark's ``cycled_batches``)."""

        def __init__(self, x, y, batches):
            super().__init__()
            self.x, self.y, self.batches = x, y, batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            idx = self.batches[index]
            return take(self.x, idx), self.y[idx]

    class StepClockCallback(module.callbacks.Callback):
        """Drives a ``StepClock`` from ``fit``: ``before_step`` at each batch's beginning, ``finish`` at epoch end.

        A batch hook must not cost a sync per step. Keras 3 dispatches ``on_train_batch_end`` hooks to a
        background thread unless a callback overrides them, and converting the logs there would sync every
        step, so this callback overrides ``on_train_batch_begin`` only: it runs on the training thread and
        does nothing except at the clock's edges. tf.keras calls the batch hooks of every callback once
        one defines a batch hook, and would convert the logs to numpy (a sync per step) unless each
        callback with batch hooks declares that it accepts tensors: ``_supports_tf_logs = True`` is that
        declaration (this callback never reads them; Keras 3 has no such attribute and ignores it).
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

    class EpochTimer(StepClockCallback):
        """Synchronised epoch timestamps, steady-state windows, test accuracy after each epoch, profiler markers.

        Between epochs it notes when each part of the gap begins (``EpochResult.gap_events``): evaluation at the
        last synchronised step, callbacks when the evaluation ends (this callback runs first; the others, History,
        the progress bar and ``fit``'s own epoch end follow), reshuffle and iterator from ``data`` (the
        ``EpochBatches``: its ``on_epoch_end``), other on entering the next epoch's begin hook.
        """

        def __init__(self, runner, dataset, config, events, *, data=None):
            super().__init__(runner)
            self.dataset, self.config, self.events, self.data = dataset, config, events, data
            self.first_batch_at = None
            self.results = []
            self._window = None
            n, batch_size = num_samples(dataset.x_train), config.batch_size
            partial = n % batch_size != 0 and not config.drop_last
            self.steps = math.ceil(n / batch_size) if partial else n // batch_size
            self.edges = epoch_edges(self.steps, config.timing_window, last_batch_partial=partial)

        def on_epoch_begin(self, epoch, logs=None):
            self.begin_entered = time.perf_counter()
            reshuffles = getattr(self.data, "reshuffles", [])
            if self.results:  # the data's re-shuffle since the last epoch's end (Keras 3: before its last sync)
                for begin, end in reshuffles:
                    self.results[-1].gap_events += [["reshuffle", begin], ["iterator", end]]
            reshuffles.clear()
            self.first_batch_at = None
            # Syncs (and timestamps) only before step 0, after step 1 and every `timing_window` steps.
            self.clock = StepClock(self.edges, sync=lambda: self.runner.sync(self.model))
            self.clock.before_step(0)
            self.started = self.clock.arrived[0]
            self.events.mark("epoch_begin", epoch=epoch)
            self._window = self.events.window(f"train-epoch-{epoch}", epoch=epoch, phase="train")
            self._window.__enter__()

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.first_batch_at = time.perf_counter()  # tf.keras: the batch is fetched inside the step
            super().on_train_batch_begin(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            loss = float(logs["loss"])  # the mean over samples; fetching it waits for the last step
            trained = self.clock.finish(self.steps)
            self._window.__exit__(None, None, None)
            with self.events.window(f"eval-epoch-{epoch}", epoch=epoch, phase="eval"):
                test_accuracy, test_metrics = self.runner.epoch_metrics(self.model, self.dataset,
                                                                        batch_size=self.config.eval_batch_size)
            ended = self.runner.now()
            if self.config.progress:
                print(f"  test accuracy {test_accuracy:.4f}")
            self.events.mark("epoch_end", epoch=epoch, loss=loss, test_accuracy=test_accuracy)
            self.results.append(EpochResult(epoch=epoch, loss=loss, test_accuracy=test_accuracy,
                                            train_time_s=trained - self.started, eval_time_s=ended - trained,
                                            steps=self.steps, started_at=self.started, ended_at=ended,
                                            trained_at=trained, test_metrics=test_metrics,
                                            gap_events=[["callbacks", ended]], begin_entered_at=self.begin_entered,
                                            first_batch_at=self.first_batch_at,
                                            **self.clock.epoch_figures(self.config.timing_window)))

    return FitClasses(EpochBatches=EpochBatches, FixedBatches=FixedBatches, StepClockCallback=StepClockCallback,
                      EpochTimer=EpochTimer)


def compile_model(model, config: TrainConfig, *, module: ModuleType, loss, jit_compile="auto",
                  adam: type | None = None) -> None:
    """The shared training settings in Keras terms, written once for both Keras modules (``keras``, ``tf_keras``):
    Adam with ``config``'s learning rate and epsilon (``adam``: the module's own Adam unless the runner gives
    another), the task's ``loss`` (the runner's ``task_loss``)."""
    adam = adam or module.optimizers.Adam
    model.compile(
        optimizer=adam(learning_rate=config.learning_rate, epsilon=config.adam_epsilon),
        loss=loss,
        jit_compile=jit_compile,
    )


@contextlib.contextmanager
def mixed_policy(module, precision: str):
    """Under ``mixed_bfloat16``/``mixed_float16``, make it the global dtype policy of ``module`` (``keras`` or
    ``tf_keras``) while the model is built; the process keeps its own policy outside."""
    if not precision.startswith("mixed"):
        yield
        return
    mixed_precision = module.mixed_precision
    before = mixed_precision.global_policy()
    mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        mixed_precision.set_global_policy(before)


class KerasFitRunner(Runner):
    """What the Keras 3 and tf.keras runners do alike, through ``fit`` of their ``keras_module``.

    Subclasses set ``keras_module`` and define ``ensure_compiled`` (each module says differently whether a
    model is compiled) and ``fit``.
    """

    keras_module: ModuleType
    JIT_COMPILE: dict  # --jit -> the compile(jit_compile=...) argument of this Keras module

    @property
    def jit_compile(self):
        """The ``compile(jit_compile=...)`` argument the mode asks for."""
        return self.JIT_COMPILE[self.mode.jit]

    def model_inputs(self, x):
        """Images as the model takes them (channels last unless a subclass builds channels first)."""
        return x

    def ensure_compiled(self, model, config: TrainConfig) -> None:
        """Compile ``model`` with the shared training settings unless it is compiled already."""
        raise NotImplementedError

    def predict(self, model, x, *, batch_size=256):
        logits = np.asarray(model.predict(self.model_inputs(x), batch_size=batch_size, verbose=0))
        return logits if logits.dtype == np.float64 else logits.astype(np.float32)  # float64: prepare_float64

    def inference_call(self, model, x, *, style="call", compile_mode="default"):
        """``model(x, training=False)`` on the batch converted to a tensor once, the result waited for
        (``wait_for``); or ``predict_on_batch(x)`` / ``predict(x, batch_size=len(x))`` on the numpy batch as users
        pass it, compiled with the mode's ``jit_compile`` (both return numpy: the device has finished)."""
        inputs = self.model_inputs(x)
        if style == "call":
            tensors = tuple(map(self.to_tensor, inputs)) if isinstance(inputs, tuple) else self.to_tensor(inputs)

            def call():
                self.wait_for(model(tensors, training=False))

            return call
        self.ensure_compiled(model, TrainConfig())  # the mode's jit_compile, as fit would have compiled it
        if style == "predict_on_batch":
            return lambda: model.predict_on_batch(inputs)
        if style == "predict":
            return lambda: model.predict(inputs, batch_size=num_samples(inputs), verbose=0)
        raise ValueError(f"--style must be one of {', '.join(STYLES)}. Received: style={style!r}.")

    def to_tensor(self, array):
        """A numpy array as the backend's tensor (on the device), made once before the timed calls."""
        raise NotImplementedError

    def wait_for(self, outputs) -> None:
        """Return when ``outputs`` are computed: TensorFlow's are fetched (reading a value waits for it)."""
        for output in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
            np.asarray(output)

    def train_step(self, model, x, y, config):
        self.ensure_compiled(model, config)
        if self.replicas.world_size > 1:
            # Keras 3's train_on_batch under a tf.distribute strategy hands every replica the whole batch (its data is
            # not a distributed dataset); fit splits it, as it does in training.
            history = model.fit(self.model_inputs(x), y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
            return float(history.history["loss"][0])
        return float(model.train_on_batch(self.model_inputs(x), y))

    def train_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock, feed="native"):
        """One ``fit`` epoch over ``steps`` full batches, the clock driven by a callback.

        ``feed="native"``: ``fit`` over a ``FixedBatches`` Sequence (PyDataset), as in ``fit``; ``"arrays"``:
        ``fit(x, y, batch_size=..., shuffle=False)`` on numpy arrays already in the cycled order (``steps`` batches
        of samples, gathered before the call).
        """
        check_feed(feed)
        self.ensure_compiled(model, config)
        classes = fit_classes(self.keras_module)
        x = self.model_inputs(dataset.x_train)
        batches = cycled_batches(num_samples(dataset.x_train), config.batch_size, steps, seed=config.seed)
        callbacks = [classes.StepClockCallback(self, clock=clock, steps=steps)]
        if feed == "arrays":
            order = np.concatenate(batches)
            model.fit(take(x, order), dataset.y_train[order], batch_size=config.batch_size, epochs=1, shuffle=False,
                      verbose=0, callbacks=callbacks)
        else:
            model.fit(classes.FixedBatches(x, dataset.y_train, batches), epochs=1, shuffle=False, verbose=0,
                      callbacks=callbacks)

    def compute_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock):
        """``model.train_function``, the step ``fit`` calls (``Runner.compute_steps``), without ``fit``'s loop.

        Common to both Keras modules: ``COMPUTE_BATCHES`` batches of the cycled order in the model's layout, and
        ``make_train_function()`` (cached: the very function ``fit`` made, compiled as the mode says); each
        runner's ``run_train_function`` calls it the way its ``fit`` does and says what that includes. Left out
        either way: the data adapter and ``PyDataset`` (slicing, collation, conversion), callbacks and ``fit``'s
        per-epoch work.
        """
        if self.replicas.world_size > 1:
            raise BackendError("compute_steps runs on one replica only: use --compute-repeats 0 with --replicas.")
        self.ensure_compiled(model, config)
        x = self.model_inputs(dataset.x_train)
        indices = cycled_batches(num_samples(dataset.x_train), config.batch_size, min(steps, COMPUTE_BATCHES),
                                 seed=config.seed)
        self.run_train_function(model, [(take(x, b), dataset.y_train[b]) for b in indices], steps=steps, clock=clock)

    def run_train_function(self, model, batches, *, steps: int, clock: StepClock) -> None:
        """``steps`` calls of ``model.train_function`` on ``batches`` (numpy ``(x, y)``), cycled; the clock as in
        ``train_steps``."""
        raise NotImplementedError


def tf_data_iterator(batches):
    """An iterator over a ``tf.data.Dataset`` of the ``(x, y)`` batches, held in memory and repeated without end:
    what a TensorFlow ``train_function`` takes (no map, no prefetch, no worker threads)."""
    import tensorflow as tf

    dataset = functools.reduce(lambda a, b: a.concatenate(b), [tf.data.Dataset.from_tensors(b) for b in batches])
    return iter(dataset.repeat())
