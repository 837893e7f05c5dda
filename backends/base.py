"""The one small interface ``bench/`` uses to run any implementation.

A ``Runner`` knows one framework. ``bench`` calls, in order::

    runner.setup(seed=0)
    model = runner.prepare("cifar_cnn", input_shape=(32, 32, 3), num_classes=10, seed=0)
    accuracy = runner.evaluate(model, x_test, y_test, batch_size=256)
    epochs = runner.fit(model, dataset, config, events=profiler)

and, for the throughput benchmark, ``runner.train_steps(model, dataset, config, steps=N, clock=clock)`` (the whole
step: the input pipeline and the train step) and ``runner.compute_steps(...)`` (the same train step alone, on a few
batches already on the device).

Every figure a runner returns is framework-neutral (floats, numpy arrays, the neutral weight mapping).

Timing: time is taken with ``time.perf_counter()`` after the framework's sync, and the first step
(tracing/compilation) is kept apart from the steady state. A ``StepClock`` takes timestamps at a few chosen
step boundaries ("edges") and synchronises the device only there, so asynchronous frameworks (CUDA streams,
JAX's asynchronous dispatch) are not serialised by a sync after every step. Each training loop calls
``clock.before_step(i)`` before step ``i`` and ``clock.finish(n)`` after the last one.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from twinbench import data as datasets
from twinbench.backends.distributed import Replicas
from twinbench.backends.keras_shapes import keras_definition_shapes
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.backends.process import BackendError
from twinbench.data import tasks
from twinbench.models import build_model, get_model_spec
from twinbench.models.weights import canonical_weights, check_weights


@dataclass(frozen=True)
class TrainConfig:
    """The training settings every implementation shares (same optimizer, loss, batches, epochs)."""

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam
    adam_epsilon: float = 1e-8  # PyTorch's default; Keras' own default is 1e-7, so it is set explicitly
    eval_batch_size: int = 256
    seed: int = 0  # shuffle order and framework RNGs
    progress: bool = False  # a per-epoch progress line/bar in the framework's own style
    timing_window: int = 10  # steps per steady-state timing window (device sync at window edges only); 0: none
    drop_last: bool = False  # train full batches only (data-parallel cells: a batch splits evenly over replicas)


class NullEvents:
    """What ``fit`` reports to when nobody listens (the shared profiler implements the same two methods)."""

    def mark(self, name, **info):
        pass

    def window(self, name, **info):
        return contextlib.nullcontext()


@dataclass
class EpochResult:
    """One epoch, measured the same way in every implementation (seconds from ``perf_counter`` after a sync)."""

    epoch: int
    loss: float  # mean training loss over the epoch's samples
    test_accuracy: float  # the task's primary metric (twinbench.data.tasks): accuracy, token accuracy, HR@10
    train_time_s: float  # first batch to last optimizer step, synchronised
    eval_time_s: float  # test-set predictions after the epoch
    steps: int
    started_at: float  # perf_counter at the synchronised start of the epoch
    ended_at: float  # perf_counter after evaluation
    trained_at: float | None = None  # perf_counter after the last optimizer step, synchronised
    first_step_s: float | None = None  # the epoch's first step (epoch 0: includes tracing/compilation)
    window_steps: int = 0  # steps per steady-state window
    window_times_s: list[float] = field(default_factory=list)  # full windows only, in order
    test_metrics: dict | None = None  # every metric of a task other than image classification (twinbench.data.tasks)
    # Where the time between this epoch and the next goes (twinbench.measuring.timing.gap_parts): ``[part, t]`` pairs,
    # each the perf_counter at which ``part`` (one of ``GAP_PARTS``) begins, after the last synchronised step.
    gap_events: list = field(default_factory=list)
    begin_entered_at: float | None = None  # perf_counter on entering the epoch's begin hook, before its sync
    first_batch_at: float | None = None  # perf_counter when the first batch was in hand (iterator made, batch fetched)

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "test_metrics" or v is not None}


# The parts of the time between two epochs (``EpochResult.gap_events``), in the order they usually come:
# evaluation (the test predictions), callbacks (epoch-end bookkeeping: other callbacks, logs, History; the PyTorch
# loop's own epoch end), reshuffle (the data's next permutation: a PyDataset's ``on_epoch_end``, the sampler's
# ``set_epoch``), iterator (re-creating the epoch's iterator and the loop's own bookkeeping up to the next epoch's begin
# hook), other (the rest: the next epoch's begin hook and its sync).
GAP_PARTS = ("evaluation", "callbacks", "reshuffle", "iterator", "other")


def epoch_edges(steps: int, window: int, *, last_batch_partial: bool = False) -> list[int]:
    """Where an epoch's ``StepClock`` syncs: before step 0, after step 1, every ``window`` steps, at the end.

    The first step is timed on its own (it traces/compiles in epoch 0). When the epoch's last batch is
    smaller than the others, an edge is also put before it, so that step (which may trace again for the
    new shape) never falls inside a full window.

    >>> epoch_edges(10, 3)
    [0, 1, 4, 7, 10]
    >>> epoch_edges(10, 3, last_batch_partial=True)
    [0, 1, 4, 7, 9, 10]
    """
    edges = {0, 1, steps}
    if window > 0:
        edges.update(range(1 + window, steps + 1, window))
    if last_batch_partial and steps > 1:
        edges.add(steps - 1)
    return sorted(e for e in edges if 0 <= e <= steps)


class StepClock:
    """Timestamps at chosen step boundaries ("edges"), with a device sync only there.

    An edge ``i`` means "after ``i`` steps". The training loop calls ``before_step(i)`` before step ``i``
    (0-based) and ``finish(n)`` after its last step; at an edge the clock calls ``sync()`` (wait for the
    device), takes ``perf_counter()``, runs ``on_edge(i)`` if given (e.g. start or stop a profiler), and
    takes ``perf_counter()`` again, so whatever ``on_edge`` does is outside every window.

    Args:
        edges: step counts at which to sync and take the time.
        sync: waits until the device has finished the steps dispatched so far.
        on_edge: optional callable run at each edge, between the two timestamps.
    """

    def __init__(self, edges, *, sync, on_edge=None):
        self.edges = sorted(set(int(e) for e in edges))
        self._pending = set(self.edges)
        self.sync = sync
        self.on_edge = on_edge
        self.arrived: dict[int, float] = {}  # edge -> time right after the sync
        self.left: dict[int, float] = {}  # edge -> time the next window started (after on_edge)

    def before_step(self, step: int) -> None:
        """Call before step ``step`` (0-based); does nothing unless ``step`` is an edge."""
        if step in self._pending:
            self._edge(step)

    def finish(self, steps: int) -> float:
        """Call after the last step; syncs and returns the time (also when ``steps`` is not an edge)."""
        if steps not in self.arrived:
            self._edge(steps)
        return self.arrived[steps]

    def _edge(self, step: int) -> None:
        self._pending.discard(step)
        self.sync()
        self.arrived[step] = time.perf_counter()
        if self.on_edge is not None:
            self.on_edge(step)
        self.left[step] = time.perf_counter()

    def interval(self, start: int, end: int) -> float:
        """Seconds from leaving edge ``start`` to arriving at edge ``end``."""
        return self.arrived[end] - self.left[start]

    def windows(self) -> list[tuple[int, int, float]]:
        """``(start_edge, end_edge, seconds)`` for each pair of consecutive edges reached."""
        reached = sorted(self.arrived)
        return [(a, b, self.interval(a, b)) for a, b in zip(reached, reached[1:], strict=False)]

    def epoch_figures(self, window: int) -> dict:
        """``first_step_s`` (edge 0 to 1) and ``window_times_s`` (windows of exactly ``window`` steps after it)."""
        first = self.interval(0, 1) if 0 in self.left and 1 in self.arrived else None
        full = [seconds for a, b, seconds in self.windows() if a >= 1 and window > 0 and b - a == window]
        return {"first_step_s": first, "window_steps": window, "window_times_s": full}


def cycled_batches(n: int, batch_size: int, steps: int, *, seed: int) -> list[np.ndarray]:
    """``steps`` full batches of indices for a throughput run: the shared epoch orders, one after another.

    Only full batches are used (a partial last batch is skipped), so every timed step has the same shape.
    (A dataset that resamples every epoch, ``Dataset.resample``, is timed on its epoch-0 arrays.)
    """
    if n < batch_size:
        raise ValueError(f"A throughput run needs at least one full batch: {n} samples < batch_size={batch_size}.")
    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < steps:
        batches += [b for b in datasets.batch_indices(n, batch_size, epoch=epoch, seed=seed) if len(b) == batch_size]
        epoch += 1
    return batches[:steps]


# How a throughput run feeds its batches (``--feed``; the cell axis ``feed``):
# native  what each implementation's users write (a DataLoader over a batch sampler; Keras' and tf.keras' fit over a
#         PyDataset/Sequence), twinbench's default;
# arrays  plain arrays: the PyTorch loop over pre-sliced tensors in a list (no DataLoader); fit(x, y, batch_size=...,
#         shuffle=False) on numpy arrays already in the shared cycled order.
FEEDS = ("native", "arrays")
# How an inference call is written (``--style``; the cell axis ``style``), as each implementation's users write it:
# call              ``model(x, training=False)`` (Keras, tf.keras); the PyTorch twin: ``model.eval()`` once, then
#                   ``model(x)`` under ``torch.inference_mode()`` (its only style);
# predict_on_batch  Keras' and tf.keras' ``model.predict_on_batch(x)``: one batch through the compiled predict function;
# predict           ``model.predict(x, batch_size=len(x), verbose=0)``: the same through the fit-style loop (an
#                   iterator, callbacks), the batch whole so that the batch size is the one measured.
# ``--jit`` compiles what the style runs: torch.compile(model) for the PyTorch twin, ``compile(jit_compile=...)`` for
# the predict methods; Keras' eager call has no such switch (``check_style``).
STYLES = ("call", "predict_on_batch", "predict")
COMPILED_STYLES = {"torch": ("call",), "keras": ("predict_on_batch", "predict"),
                   "tf_keras": ("predict_on_batch", "predict")}


def check_style(implementation: str, style: str, jit: str, artifact: str = "none") -> None:
    """Raise ``ValueError`` (one line) where ``--jit on`` asks to compile a style that runs eagerly, or a style or
    compilation is asked of an exported artifact (it runs in its format's own runtime, called one way)."""
    if artifact != "none" and (style != "call" or jit != "default"):
        raise ValueError(f"--artifact {artifact} runs in its format's own runtime: --style and --jit do not apply. "
                         f"Received: style={style!r}, jit={jit!r}.")
    compiled = COMPILED_STYLES[implementation]
    if jit == "on" and style not in compiled:
        raise ValueError(f"--jit on compiles {' and '.join(compiled)} for {implementation}; --style {style} runs the "
                         f"model eagerly. Valid styles with --jit on: {', '.join(compiled)}. Received: style={style!r}.")


# torch.compile's modes (``--compile-mode``, the cell axis ``compile_mode``), under ``--jit on``: ``default``;
# ``max-autotune`` (kernels chosen by benchmarking candidates, longer compiles); ``reduce-overhead`` (the compiled
# graph replayed as a CUDA graph: one launch per call, so GPU only). The PyTorch twin's only: Keras' own
# ``jit_compile=True`` on torch calls ``torch.compile`` without a mode (keras/src/backend/torch/trainer.py).
COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")


def check_compile_mode(compile_mode: str, jit: str) -> None:
    """Raise ``ValueError`` (one line, naming the valid choices) for an unknown mode or a mode without ``--jit on``."""
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"Unknown compile-mode {compile_mode!r}. Valid choices: {', '.join(COMPILE_MODES)}.")
    if compile_mode != "default" and jit != "on":
        raise ValueError(f"--compile-mode {compile_mode} is a torch.compile mode: it needs --jit on. Received: "
                         f"jit={jit!r}. Valid without --jit on: --compile-mode default.")


def check_compile_mode_here(compile_mode: str, *, gpu: bool) -> None:
    """Raise ``BackendError`` (one line) for ``reduce-overhead`` where no GPU runs the model."""
    if compile_mode == "reduce-overhead" and not gpu:
        raise BackendError("--compile-mode reduce-overhead replays CUDA graphs: a GPU only, and none runs the model "
                         "here. Valid here: default, max-autotune.")


# Distinct batches a compute run cycles through (``Runner.compute_steps``).
COMPUTE_BATCHES = 4


def check_feed(feed: str) -> None:
    """Raise ``ValueError`` (one line) unless ``feed`` is one of ``FEEDS``."""
    if feed not in FEEDS:
        raise ValueError(f"--feed must be one of {', '.join(FEEDS)}. Received: feed={feed!r}.")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose largest logit is the true class."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


class Runner:
    """Base class: the parts every framework does the same way. Subclasses fill in the framework parts."""

    implementation: str = ""
    backend: str = ""
    mode: Mode = DEFAULT_MODE  # how it runs: compilation, precision, layout (set by ``twinbench.backends.get_runner``)
    replicas: Replicas = Replicas()  # on how many replicas (``twinbench.backends.distributed``; set by ``twinbench.backends.get_runner``)

    # -- framework hooks ---------------------------------------------------------------------------------
    def setup(self, *, seed: int = 0) -> None:
        """Seed every RNG, pick the device, apply the mode's precision (TF32 off unless ``tf32``).

        Raises ``BackendError`` (one line, before any training) if this machine cannot run the mode.
        """
        raise NotImplementedError

    def build(self, model_name, *, input_shape, num_classes, **options):
        """Build the model; ``options`` are extra builder arguments (e.g. ``dropout=0.0``)."""
        return build_model(model_name, self.implementation, input_shape=input_shape, num_classes=num_classes,
                           **options)

    def build_shapes(self, model_name, *, input_shape, num_classes, **options):
        """The model with the shapes of its weights but no values drawn: enough to count parameters
        (``count_params``) and read layer shapes, at full size in a fraction of a full build's time and memory.
        Not for running. By default a full build (tf.keras: a graph-mode build names its layers otherwise)."""
        return self.build(model_name, input_shape=input_shape, num_classes=num_classes, **options)

    def weight_shapes(self, model) -> dict[str, tuple]:
        """Neutral name -> Keras-layout shape of every weight the model has."""
        raise NotImplementedError

    def get_weights(self, model) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_weights(self, model, weights: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def count_params(self, model) -> int:
        """All parameters, trainable or not, excluding BatchNorm running statistics and counters."""
        raise NotImplementedError

    def predict(self, model, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Logits in inference mode, as float32 numpy."""
        raise NotImplementedError

    def loss_and_grads(self, model, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The task's loss (``twinbench.data.tasks``; images: mean cross-entropy) in training mode and its gradients
        (neutral names, Keras layout). ``x`` is one array or, for some tasks, a tuple of arrays."""
        raise NotImplementedError

    def train_step(self, model, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> float:
        """One optimizer step through the implementation's real training path; returns the batch loss."""
        raise NotImplementedError

    def fit(self, model, dataset, config: TrainConfig, *, events=None) -> list[EpochResult]:
        raise NotImplementedError

    def train_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock,
                    feed: str = "native") -> None:
        """Train exactly ``steps`` optimizer steps on ``cycled_batches`` through the real training path.

        For the throughput benchmark: no evaluation, no epochs; ``clock.before_step(i)`` before step ``i``
        and ``clock.finish(steps)`` after the last step. ``feed`` (``FEEDS``): how the batches arrive.
        """
        raise NotImplementedError

    def compute_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock) -> None:
        """Train ``steps`` optimizer steps with the implementation's *own* train-step function, no input pipeline.

        The same compiled (or eager) step, in the same mode, that ``train_steps`` runs, called the way the
        implementation's loop calls it, on ``COMPUTE_BATCHES`` batches of ``cycled_batches`` converted and put on
        the device once before ``clock``'s first edge and then cycled. What "compute" leaves out is the input
        pipeline: slicing, collating, converting and copying a batch, and the pipeline's own threads. Each
        implementation's docstring says exactly what it includes. Raises ``BackendError`` on several replicas.
        """
        raise NotImplementedError

    def inference_call(self, model, x, *, style: str = "call", compile_mode: str = "default"):
        """A callable that runs one synchronised inference call of ``model`` on the batch ``x``, in ``style``
        (``compile_mode``: torch.compile's mode under ``--jit on``, the PyTorch twin's; ``check_compile_mode``).

        For the latency benchmark (``twinbench.measuring.latency``): the call is written the way the
        implementation's users write it (``STYLES``), in the runner's mode (``--jit``, ``--precision``), and returns
        only when the device has finished (the framework's sync: ``torch.cuda.synchronize()``, JAX's
        ``block_until_ready``, fetching TensorFlow's result), so the time around it is the call's latency. ``x`` is
        a numpy batch (a tuple of arrays for token tasks); whatever it must become (a tensor on the device) it
        becomes once, here, outside every call.
        """
        raise NotImplementedError

    def sync(self, model=None) -> None:
        """Wait until the device has finished all queued work (``model``: the one being trained, if any)."""

    def memory_stats(self) -> dict:
        """Framework allocator figures (bytes); empty on CPU where the framework keeps none."""
        return {}

    def describe_threads(self) -> dict:
        """The framework's thread pools and the input pipeline's workers, as the framework reports them after
        ``setup`` (``twinbench.backends.process.framework_threads``); the record's ``threads`` (``twinbench.measuring.threads``)."""
        return {}

    def describe(self, model=None) -> dict:
        """Device and settings that belong in the result record (``model``: to resolve ``jit_compile``)."""
        return {}

    # -- shared logic ----------------------------------------------------------------------------------
    def prepare(self, model_name, *, input_shape, num_classes, seed: int = 0, weights=None, options=None):
        """Build the model and load the canonical initial weights of the Keras definition (or ``weights``).

        ``options`` are extra builder arguments shared by every implementation (e.g. ``{"dropout": 0.0}``).
        """
        options = dict(options or {})
        model = self.build(model_name, input_shape=input_shape, num_classes=num_classes, **options)
        model.twinbench_task = self.spec(model_name).task  # what evaluate and the loss read (task_of)
        if weights is None:
            weights = self.canonical_weights(model_name, input_shape=input_shape, num_classes=num_classes, seed=seed,
                                             options=options)
        check_weights(weights, self.weight_shapes(model))
        self.set_weights(model, weights)
        return model

    def float64(self):
        """A context in which float64 arrays exist (JAX needs x64 switched on); build and run float64 models in it."""
        return contextlib.nullcontext()

    def prepare_float64(self, model_name, *, input_shape, num_classes, weights, options=None):
        """``prepare`` with every weight and every computation in float64: the twin check's exact reference.

        Only implementations whose arithmetic really is float64 end to end offer it (``twinbench.twins.parity``); call it
        and run the model inside ``with runner.float64():``.
        """
        raise NotImplementedError(f"{self.implementation}[{self.backend}] cannot compute in float64; "
                                  "the twin check takes its reference from the PyTorch twin or Keras on TensorFlow")

    def canonical_weights(self, model_name, *, input_shape, num_classes, seed: int = 0, options=None):
        """The Keras definition's initial weights, drawn with NumPy: identical in every process. They are drawn for
        its weights' shapes and initializers alone (``keras_definition_shapes``): Keras draws none of its own."""
        reference = keras_definition_shapes(model_name, input_shape=input_shape, num_classes=num_classes,
                                            **dict(options or {}))
        return canonical_weights(reference, seed=seed)

    @staticmethod
    def task_of(model) -> str:
        """The task of a model made by ``prepare`` (``twinbench.data.tasks``)."""
        return getattr(model, "twinbench_task", tasks.DEFAULT_TASK)

    def evaluate(self, model, x, y, *, batch_size: int = 256) -> float:
        """The task's primary metric on ``(x, y)`` (images: accuracy)."""
        if self.task_of(model) == tasks.DEFAULT_TASK:
            return accuracy(self.predict(model, x, batch_size=batch_size), y)
        return next(iter(self.evaluate_metrics(model, x, y, batch_size=batch_size).values()))

    def evaluate_metrics(self, model, x, y, *, batch_size: int = 256) -> dict[str, float]:
        """Every metric of the model's task on ``(x, y)``, computed in NumPy from the outputs (``twinbench.data.tasks``)."""
        return tasks.metrics(self.task_of(model), self.predict(model, x, batch_size=batch_size), y)

    def epoch_metrics(self, model, dataset, *, batch_size: int) -> tuple[float, dict | None]:
        """After an epoch: the primary metric on the test set and, for tasks other than images, all of them."""
        if self.task_of(model) == tasks.DEFAULT_TASK:
            return self.evaluate(model, dataset.x_test, dataset.y_test, batch_size=batch_size), None
        values = self.evaluate_metrics(model, dataset.x_test, dataset.y_test, batch_size=batch_size)
        return next(iter(values.values())), values

    def spec(self, model_name):
        return get_model_spec(model_name)

    @staticmethod
    def now() -> float:
        return time.perf_counter()
