"""The native PyTorch implementation: an ``nn.Module`` trained by the explicit loop PyTorch users write.

Images arrive channels last (N, H, W, C) like every twinbench array and are turned channels first
(N, C, H, W) once, before training. The loop (``train``) is the tutorial loop: ``zero_grad`` -> forward -> loss ->
``backward`` -> ``step`` over a ``DataLoader``, then the test accuracy (``evaluate``). twinbench measures it from
outside, the way a Keras callback measures ``fit``: ``LoopHooks`` is called around every step and epoch (the step
clock, the epoch loss accumulated on the device and reported as the mean over samples, like Keras reports it, the
progress bar, the profiler's markers), so the loop that runs is the loop the teaching pages show.

The mode (``twinbench.backends.modes.Mode``) is applied the way PyTorch users do it: ``--jit on`` trains
``torch.compile(model)``; mixed precision runs the forward pass and the loss under ``torch.autocast`` and, for
float16, scales the loss with a ``GradScaler`` (PyTorch's AMP recipe; the scaler is a pass-through otherwise);
``--memory-format channels_last`` moves the weights and every batch to ``torch.channels_last``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from twinbench import data as datasets
from twinbench.backends.base import (
    COMPUTE_BATCHES,
    EpochResult,
    NullEvents,
    Runner,
    StepClock,
    TrainConfig,
    check_compile_mode_here,
    check_feed,
    cycled_batches,
    epoch_edges,
)
from twinbench.backends.distributed import TorchDDP
from twinbench.backends.keras_shapes import shapes_only
from twinbench.backends.process import BackendError, check_mode_here, framework_threads
from twinbench.backends.recurrent import torch_lstm_kernels, watch_lstms
from twinbench.backends.torch_compile import compile_stats
from twinbench.data.tasks import DEFAULT_TASK, PAD, num_samples, take
from twinbench.models import build_model
from twinbench.models._registry import _resolve
from twinbench.models.weights import default_torch_key, from_torch_state, to_torch_state, torch_layout


class EpochBatchSampler(Sampler):
    """Yields whole batches of indices in twinbench's shared per-epoch order (``twinbench.data.batch_indices``).

    ``shard`` picks this process's share of each batch (torch DDP: the rank's consecutive slice), ``drop_last`` leaves
    out a partial last batch; ``samples`` is how many samples this process sees per epoch.
    """

    def __init__(self, n, batch_size, *, seed, drop_last=False, shard=None):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0
        self.drop_last, self.shard = drop_last, shard or (lambda batch: batch)
        self.samples = sum(len(self.shard(b)) for b in self._batches())

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _batches(self):
        return datasets.batch_indices(self.n, self.batch_size, epoch=self.epoch, seed=self.seed, drop_last=self.drop_last)

    def __iter__(self):
        yield from (self.shard(batch) for batch in self._batches())

    def __len__(self):
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class ArraysDataset(Dataset):
    """twinbench's arrays as tensors, sliced a whole index batch at a time: ``(inputs, labels)`` per batch.

    ``inputs`` is one tensor (images, NCHW) or a tuple of them (token and id tensors, in the order the model takes
    them: ``twinbench.data.tasks``). ``set_epoch`` swaps in the epoch's arrays of a dataset that resamples (NCF's fresh
    negatives, ``data.Dataset.resample``); for every other dataset it does nothing.
    """

    def __init__(self, x, y, *, resample=None):
        self.resample = resample
        self.inputs, self.labels = to_torch_inputs(x), torch.from_numpy(y)

    def set_epoch(self, epoch):
        if self.resample is not None and epoch > 0:
            x, y = self.resample(epoch)
            self.inputs, self.labels = to_torch_inputs(x), torch.from_numpy(y)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        inputs = tuple(t[idx] for t in self.inputs) if isinstance(self.inputs, tuple) else self.inputs[idx]
        return inputs, self.labels[idx]


def shard_inputs(x, shard):
    """``shard`` applied to one array or to each array of a tuple."""
    return tuple(shard(a) for a in x) if isinstance(x, tuple) else shard(x)


def to_device(inputs, device, memory_format=torch.contiguous_format):
    """A batch on the device: images in the mode's memory format, token and id tensors (or a tuple of them) as they are."""
    if isinstance(inputs, (tuple, list)):  # a DataLoader hands a tuple of tensors on as a list
        return tuple(to_device(t, device) for t in inputs)
    if not inputs.is_floating_point():
        return inputs.to(device, non_blocking=True)
    return inputs.to(device, non_blocking=True, memory_format=memory_format)


def to_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def to_torch_inputs(x):
    """twinbench inputs as the module takes them: images NCHW; token and id arrays (tuples of them) as int64."""
    if isinstance(x, tuple):
        return tuple(to_torch_inputs(a) for a in x)
    if np.issubdtype(x.dtype, np.integer):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
    return to_nchw(x)


def forward(network, inputs):
    """``network(*inputs)`` for a tuple of inputs (``forward(source, decoder_input)``), else ``network(inputs)``;
    the logits of a Hugging Face model's output object."""
    outputs = network(*inputs) if isinstance(inputs, tuple) else network(inputs)
    return getattr(outputs, "logits", outputs)


def _same_layout_weights(module, layout) -> frozenset[str]:
    """Neutral paths loaded into a Hugging Face ``Conv1D`` weight (stored ``(in, out)`` like a Keras kernel;
    ``nn.Linear`` stores ``(out, in)``) or an ``nn.Embedding`` table: never transposed."""
    kinds = {name: type(sub).__name__ for name, sub in module.named_modules()}
    return frozenset(path for path, key in layout.keys.items()
                     if key.endswith(".weight") and kinds.get(key.rsplit(".", 1)[0]) in ("Conv1D", "Embedding"))


class TokenCrossEntropy(nn.Module):
    """Softmax cross-entropy of ``(N, T, V)`` logits, mean over the labelled tokens (PAD labels ignored)."""

    def forward(self, logits, labels):
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=PAD)


def task_loss(task: str) -> nn.Module:
    """The task's loss (``twinbench.data.tasks``) as PyTorch spells it."""
    if task == "recommendation":
        return nn.BCEWithLogitsLoss()
    if task in ("seq2seq", "language_model"):
        return TokenCrossEntropy()
    return nn.CrossEntropyLoss()


def _device_type(inputs) -> str:
    return (inputs[0] if isinstance(inputs, tuple) else inputs).device.type


# --precision as PyTorch spells it: the dtype torch.autocast computes in (None: no autocast, full float32).
AUTOCAST_DTYPES = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}


def train_step(model, optimizer, loss_fn, images, labels, *, scaler, autocast_dtype=None):
    """One step of the classic loop (PyTorch's AMP recipe under mixed precision); returns the (device) batch loss."""
    optimizer.zero_grad()
    with torch.autocast(_device_type(images), dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = forward(model, images)
        loss = loss_fn(logits, labels)
    scaler.scale(loss).backward()  # the GradScaler scales only for float16; otherwise it passes the loss through
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def evaluate(model, loader, *, device, autocast_dtype=None, memory_format=torch.contiguous_format):
    """Test accuracy: the share of images whose largest logit is their label."""
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        for images, labels in loader:
            logits = model(images.to(device, memory_format=memory_format))
            correct += (logits.argmax(dim=1) == labels.to(device)).sum()
    return int(correct) / len(loader.dataset)


def train(model, loader, test_loader, optimizer, loss_fn, *, epochs, device, hooks=None, scaler=None,
          autocast_dtype=None, memory_format=torch.contiguous_format):
    """The classic PyTorch loop: ``epochs`` passes over ``loader``, then the test accuracy after each.

    ``hooks`` measure it from outside, the way Keras callbacks measure ``fit`` (``LoopHooks``: the step clock,
    the epoch loss, the progress bar, the profiler's markers); without them this is the tutorial loop. A model of
    another task than images (``twinbench.data.tasks``) takes a tuple of inputs and has no ``test_loader``: its metrics
    (token accuracy, HR@10) are computed from its test logits by ``twinbench.data.tasks.metrics``.
    """
    hooks = hooks or LoopHooks.NONE
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # the next epoch's shuffle
        loader.dataset.set_epoch(epoch)  # the next epoch's arrays (only NCF's change: fresh negatives)
        model.train()
        hooks.on_epoch_begin(epoch)
        for step, (inputs, labels) in enumerate(loader):
            hooks.on_train_batch_begin(step)
            inputs = to_device(inputs, device, memory_format)
            labels = labels.to(device, non_blocking=True)
            loss = train_step(model, optimizer, loss_fn, inputs, labels, scaler=scaler, autocast_dtype=autocast_dtype)
            hooks.on_train_batch_end(step, loss, len(labels))
        hooks.on_test_begin(epoch)
        test_accuracy = None if test_loader is None else evaluate(
            model, test_loader, device=device, autocast_dtype=autocast_dtype, memory_format=memory_format)
        hooks.on_epoch_end(epoch, test_accuracy)


class LoopHooks:
    """twinbench's measurement of the PyTorch loop, attached from outside like Keras' ``_EpochTimer`` callback.

    ``train`` calls these methods around every step and epoch: synchronised timestamps at the ``StepClock``'s
    edges only (before step 0, after step 1, every ``timing_window`` steps, at the end), the epoch loss summed on
    the device (no per-step ``.item()`` sync) and reported as the mean over samples, the Keras-style progress
    bar, the profiler's markers and windows, and one ``EpochResult`` per epoch in ``results``. Between epochs it
    notes when each part of the gap begins (``EpochResult.gap_events``): evaluation at the last synchronised step,
    callbacks (this loop's own epoch end) when the evaluation ends, reshuffle when ``on_epoch_end`` returns (the
    loop's ``set_epoch`` of sampler and dataset, ``model.train()``), other on entering the next ``on_epoch_begin``;
    the sampler's permutation itself is drawn when the next epoch's iterator is made, after the synchronised start
    (``first_batch_at``).
    """

    NONE: LoopHooks  # hooks that do nothing (set below)

    def __init__(self, runner, model, *, dataset, n, steps, config: TrainConfig, events=None):
        self.runner, self.model, self.dataset, self.n, self.steps, self.config = runner, model, dataset, n, steps, config
        self.events = events or NullEvents()
        # n: the samples this process trains per epoch (its shards on several replicas, full batches only).
        self.edges = epoch_edges(steps, config.timing_window,
                                 last_batch_partial=n % config.batch_size != 0 and not config.drop_last)
        self.results: list[EpochResult] = []

    def on_epoch_begin(self, epoch):
        self.begin_entered = time.perf_counter()
        self.first_batch_at = None
        self.bar = ProgressBar(epoch=epoch, epochs=self.config.epochs, steps=self.steps, samples=self.n,
                               batch_size=self.config.batch_size) if self.config.progress else None
        self.clock = StepClock(self.edges, sync=self.runner.sync)
        self.clock.before_step(0)
        self.started = self.clock.arrived[0]
        self.events.mark("epoch_begin", epoch=epoch)
        self.window = self.events.window(f"train-epoch-{epoch}", epoch=epoch, phase="train")
        self.window.__enter__()
        self.total_loss = torch.zeros((), device=self.runner.device)
        self.done = 0

    def on_train_batch_begin(self, step):
        if step == 0:
            self.first_batch_at = time.perf_counter()  # the iterator made, the first batch fetched
        self.clock.before_step(step)

    def on_train_batch_end(self, step, loss, batch_size):
        self.total_loss += loss * batch_size
        self.done = step + 1
        if self.bar:
            self.bar.update(self.done, self.total_loss)

    def on_test_begin(self, epoch):
        self.trained = self.clock.finish(self.done)
        self.window.__exit__(None, None, None)
        self.window = self.events.window(f"eval-epoch-{epoch}", epoch=epoch, phase="eval")
        self.window.__enter__()

    def on_epoch_end(self, epoch, test_accuracy):
        test_metrics = None
        if test_accuracy is None:  # another task than images: its metrics from the test logits (twinbench.data.tasks)
            test_accuracy, test_metrics = self.runner.epoch_metrics(self.model, self.dataset,
                                                                    batch_size=self.config.eval_batch_size)
        self.window.__exit__(None, None, None)
        ended = self.runner.now()
        loss = float(self.runner.replicas.mean(self.total_loss / self.n))  # equal shards: the mean of the means
        if self.config.progress:
            print(f"  test accuracy {test_accuracy:.4f}")  # as the Keras runners print it
        self.events.mark("epoch_end", epoch=epoch, loss=loss, test_accuracy=test_accuracy)
        self.results.append(EpochResult(epoch=epoch, loss=loss, test_accuracy=test_accuracy,
                                        train_time_s=self.trained - self.started, eval_time_s=ended - self.trained,
                                        steps=self.done, started_at=self.started, ended_at=ended,
                                        trained_at=self.trained, test_metrics=test_metrics,
                                        gap_events=[["callbacks", ended]], begin_entered_at=self.begin_entered,
                                        first_batch_at=self.first_batch_at,
                                        **self.clock.epoch_figures(self.config.timing_window)))
        self.results[-1].gap_events.append(["reshuffle", time.perf_counter()])  # what the loop does next


class _NoHooks:
    """The plain loop: every hook does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


LoopHooks.NONE = _NoHooks()


class TorchRunner(Runner):
    implementation = "torch"
    backend = "torch"

    def setup(self, *, seed: int = 0) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if isinstance(self.replicas, TorchDDP):
            self.device = self.replicas.device()  # one GPU per rank
        check_mode_here(self.mode, who="PyTorch", gpu=self.device.type == "cuda", compiler=self.device.type == "cpu")
        tf32 = self.mode.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        self.autocast_dtype = AUTOCAST_DTYPES.get(self.mode.precision)
        self.memory_format = (torch.channels_last if self.mode.memory_format == "channels_last"
                              else torch.contiguous_format)
        self._compiled = {}  # id(model) -> torch.compile(model), made once
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def _device(self):
        if not hasattr(self, "device"):
            self.setup()
        return self.device

    # -- model and weights -----------------------------------------------------------------------------
    def build(self, model_name, *, input_shape, num_classes, **options):
        module = build_model(model_name, "torch", input_shape=input_shape, num_classes=num_classes, **options)
        self._attach_layout(module, model_name, input_shape=input_shape, num_classes=num_classes, **options)
        watch_lstms(module)  # which kernel each nn.LSTM runs, recorded at its first call (describe)
        return module.to(self._device(), memory_format=self.memory_format)

    def build_shapes(self, model_name, *, input_shape, num_classes, **options):
        """The twin on PyTorch's meta device: parameters with shapes and no storage, initialisation a no-op; its
        weight layout attached as ``build`` attaches it, but it cannot hold weights or run on data."""
        with torch.device("meta"):
            module = build_model(model_name, "torch", input_shape=input_shape, num_classes=num_classes, **options)
        self._attach_layout(module, model_name, input_shape=input_shape, num_classes=num_classes, **options)
        return module

    def _attach_layout(self, module, model_name, *, input_shape, num_classes, **options) -> None:
        """How the neutral (Keras) names and layouts line up with this module's state_dict, read from the Keras
        definition built with deferred weights (its names, shapes and graph: no Keras weight is drawn)."""
        with shapes_only():
            reference = build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes, **options)
        spec = self.spec(model_name)
        key_fn = _resolve(spec.torch_keys) if spec.torch_keys else default_torch_key
        module.twinbench_layout = torch_layout(reference, key_fn=key_fn)
        module.twinbench_layout.same_layout |= _same_layout_weights(module, module.twinbench_layout)
        module.twinbench_shapes = {v.path: tuple(v.shape) for v in reference.weights}

    def network(self, model):
        """What the loop calls: ``model`` itself, or ``torch.compile(model)`` under ``--jit on`` (made once; it
        shares the parameters, so weights are still read and written through ``model``)."""
        if self.mode.jit != "on":
            return model
        if id(model) not in self._compiled:
            self._compiled[id(model)] = torch.compile(model)
        return self._compiled[id(model)]

    def train_network(self, model):
        """What the training loop calls: ``network(model)``, on several replicas around ``DDP(model)``."""
        return self.network(self.replicas.wrap(model))

    def autocast(self):
        """``torch.autocast`` in the mode's precision (nothing under float32 and tf32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device().type, dtype=self.autocast_dtype)

    def to_device(self, inputs):
        """A batch on this runner's device, images in the mode's memory format (``to_device``)."""
        return to_device(inputs, self.device, self.memory_format)

    def weight_shapes(self, model):
        return dict(model.twinbench_shapes)

    def get_weights(self, model):
        state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}  # copy: CPU tensors share memory
        return from_torch_state(state, model.twinbench_layout, model.twinbench_shapes)

    def set_weights(self, model, weights):
        torch_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        state = to_torch_state(weights, model.twinbench_layout, torch_shapes)
        tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        loaded = {model.get_parameter(k) for k in tensors if k in dict(model.named_parameters(remove_duplicate=False))}
        tied = {k for k, p in model.named_parameters(remove_duplicate=False) if p in loaded}  # GPT-2's lm_head
        missing = [k for k in model.state_dict() if k not in tensors and k not in tied
                   and not k.endswith("num_batches_tracked")]
        if missing:
            from twinbench.models.weights import WeightMismatchError

            raise WeightMismatchError(f"PyTorch tensor {missing[0]!r} has no counterpart in the Keras definition.")
        model.load_state_dict(tensors, strict=False)

    def count_params(self, model) -> int:
        # Trainable ones: GNMT's frozen second LSTM bias (b_hh = 0, models/gnmt/torch_model.py) is no parameter of Keras'.
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def prepare_float64(self, model_name, *, input_shape, num_classes, weights, options=None):
        model = self.prepare(model_name, input_shape=input_shape, num_classes=num_classes, weights=weights,
                             options=options)
        model = model.double()  # float64 inputs follow: to_nchw keeps the array's dtype
        model.twinbench_task = self.spec(model_name).task
        return model

    # -- forward, gradients, one step --------------------------------------------------------------------
    def predict(self, model, x, *, batch_size=256):
        model.eval()
        network = self.network(model)
        outputs = []
        with torch.no_grad(), self.autocast():
            for idx in datasets.eval_batches(num_samples(x), batch_size):
                outputs.append(forward(network, self.to_device(to_torch_inputs(take(x, idx)))).cpu())
        logits = torch.cat(outputs)
        return (logits.float() if self.autocast_dtype is not None else logits).numpy()  # bfloat16 has no numpy

    def inference_call(self, model, x, *, style="call", compile_mode="default"):
        """``model.eval()`` once, then each call ``model(x)`` under ``torch.inference_mode()`` (``torch.compile(model)``
        under ``--jit on``, ``torch.compile(model, mode=compile_mode)`` for another mode), the batch on the device
        already; ``torch.cuda.synchronize()`` after it on a GPU."""
        model.eval()
        check_compile_mode_here(compile_mode, gpu=self.device.type == "cuda")
        if compile_mode == "default" or self.mode.jit != "on":
            network = self.network(model)
        else:  # made once per model and mode
            key = (id(model), compile_mode)
            if key not in self._compiled:
                self._compiled[key] = torch.compile(model, mode=compile_mode)
            network = self._compiled[key]
        inputs = self.to_device(to_torch_inputs(x))
        cuda = self.device.type == "cuda"

        def call():
            with torch.inference_mode(), self.autocast():
                forward(network, inputs)
            if cuda:
                torch.cuda.synchronize()

        return call

    def loss_and_grads(self, model, x, y):
        model.train()
        model.zero_grad()
        with self.autocast():
            loss = task_loss(self.task_of(model))(forward(self.network(model), self.to_device(to_torch_inputs(x))),
                                                  torch.from_numpy(y).to(self.device))
        loss.backward()
        grads = {name: p.grad.detach().cpu().to_dense().numpy().copy() for name, p in model.named_parameters()
                 if p.requires_grad}
        # Same conversion as the weights; non-trainable tensors (BN statistics) have no gradient. A Keras LSTM bias's
        # gradient is that of bias_ih (bias_hh, frozen, has none: the two are not summed here).
        layout = model.twinbench_layout
        trainable = {path: key for path, key in layout.keys.items() if key in grads}
        shapes = {path: model.twinbench_shapes[path] for path in trainable}
        sub_layout = type(layout)(keys=trainable, flatten_inputs=layout.flatten_inputs, same_layout=layout.same_layout)
        return float(loss.detach()), from_torch_state(grads, sub_layout, shapes)

    def _optimizer(self, model, config):
        """The model's Adam and its GradScaler (enabled under float16 only), made once."""
        if not hasattr(model, "twinbench_optimizer"):
            model.twinbench_optimizer = torch.optim.Adam(
                model.parameters(), lr=config.learning_rate, eps=config.adam_epsilon
            )
            model.twinbench_scaler = torch.amp.GradScaler(self._device().type,
                                                          enabled=self.mode.precision == "mixed_float16")
        return model.twinbench_optimizer, model.twinbench_scaler

    def train_step(self, model, x, y, config):
        model.train()
        optimizer, scaler = self._optimizer(model, config)
        x, y = shard_inputs(x, self.replicas.shard), self.replicas.shard(y)  # this rank's share of the global batch
        loss = train_step(self.train_network(model), optimizer, task_loss(self.task_of(model)),
                          self.to_device(to_torch_inputs(x)), torch.from_numpy(y).to(self.device), scaler=scaler,
                          autocast_dtype=self.autocast_dtype)
        return float(self.replicas.mean(loss))

    # -- training ----------------------------------------------------------------------------------------
    def fit(self, model, dataset, config: TrainConfig, *, events=None):
        train_set = ArraysDataset(dataset.x_train, dataset.y_train, resample=dataset.resample)
        sampler = EpochBatchSampler(len(train_set), config.batch_size, seed=config.seed, drop_last=config.drop_last,
                                    shard=self.replicas.shard)
        # batch_size=None: the sampler yields whole index batches and ArraysDataset slices them in one go.
        loader = DataLoader(train_set, sampler=sampler, batch_size=None, pin_memory=self.device.type == "cuda")
        test_loader = None  # another task than images: LoopHooks computes its metrics (twinbench.data.tasks)
        if self.task_of(model) == DEFAULT_TASK:
            test_set = TensorDataset(to_nchw(dataset.x_test), torch.from_numpy(dataset.y_test))
            test_loader = DataLoader(test_set, batch_size=config.eval_batch_size)
        optimizer, scaler = self._optimizer(model, config)
        hooks = LoopHooks(self, model, dataset=dataset, n=sampler.samples, steps=len(loader), config=config,
                          events=events)
        # torch.compile(model) under --jit on; DDP(model) on several replicas
        train(self.train_network(model), loader, test_loader, optimizer, task_loss(self.task_of(model)),
              epochs=config.epochs, device=self.device, hooks=hooks, scaler=scaler, autocast_dtype=self.autocast_dtype,
              memory_format=self.memory_format)
        return hooks.results

    def train_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock, feed="native"):
        """The same loop as ``fit`` over ``steps`` full batches, with no epochs and no evaluation.

        ``feed="native"``: a ``DataLoader`` over the index batches, as in ``fit``; ``"arrays"``: the batches sliced
        into a list of tensors beforehand (no DataLoader), each moved to the device in the loop.
        """
        check_feed(feed)
        device = self.device
        train_set = ArraysDataset(dataset.x_train, dataset.y_train)
        batches = [self.replicas.shard(b) for b in cycled_batches(len(train_set), config.batch_size, steps,
                                                                  seed=config.seed)]
        if feed == "arrays":
            loader = [train_set[b] for b in batches]
        else:
            loader = DataLoader(train_set, sampler=batches, batch_size=None, pin_memory=device.type == "cuda")
        optimizer, scaler = self._optimizer(model, config)
        loss_fn = task_loss(self.task_of(model))
        network = self.train_network(model)
        model.train()
        for step, (inputs, labels) in enumerate(loader):
            clock.before_step(step)
            inputs = self.to_device(inputs)
            labels = labels.to(device, non_blocking=True)
            train_step(network, optimizer, loss_fn, inputs, labels, scaler=scaler, autocast_dtype=self.autocast_dtype)
        clock.finish(steps)

    def compute_steps(self, model, dataset, config: TrainConfig, *, steps: int, clock: StepClock):
        """``train_step`` alone (``Runner.compute_steps``) on ``COMPUTE_BATCHES`` batches already on the device.

        Includes what the loop of ``train_steps`` runs per step after the batch is on the device: ``zero_grad``,
        the forward pass (under ``torch.compile`` and autocast as the mode says), the loss, ``backward`` and the
        optimizer step (through the GradScaler). Excludes the DataLoader (index slicing, collation), the
        conversion to tensors and the copy to the device (and the memory-format conversion).
        """
        if self.replicas.world_size > 1:
            raise BackendError("compute_steps runs on one replica only: use --compute-repeats 0 with --replicas.")
        train_set = ArraysDataset(dataset.x_train, dataset.y_train)
        indices = cycled_batches(len(train_set), config.batch_size, min(steps, COMPUTE_BATCHES), seed=config.seed)
        batches = [(self.to_device(inputs), labels.to(self.device)) for inputs, labels in (train_set[b] for b in indices)]
        optimizer, scaler = self._optimizer(model, config)
        loss_fn = task_loss(self.task_of(model))
        network = self.train_network(model)
        model.train()
        for step in range(steps):
            clock.before_step(step)
            inputs, labels = batches[step % len(batches)]
            train_step(network, optimizer, loss_fn, inputs, labels, scaler=scaler, autocast_dtype=self.autocast_dtype)
        clock.finish(steps)

    # -- device ------------------------------------------------------------------------------------------
    def sync(self, model=None):
        if self._device().type == "cuda":
            torch.cuda.synchronize()

    def memory_stats(self):
        if self._device().type != "cuda":
            return {}
        return {"allocator": "torch.cuda", "peak_bytes": int(torch.cuda.max_memory_allocated()),
                "current_bytes": int(torch.cuda.memory_allocated())}

    def describe_threads(self):
        # The DataLoaders of fit and train_steps load in this process (num_workers=0, PyTorch's default).
        return {**framework_threads("torch"), "input": {"dataloader_num_workers": 0}}

    def describe(self, model=None):
        device = self._device()
        return {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
            "jit_compile": self.mode.jit == "on",  # torch.compile(model); default and off: eager PyTorch
            "jit": "torch.compile (inductor)" if self.mode.jit == "on" else "eager",
            "torch_compile": compile_stats() if self.mode.jit == "on" else None,
            "precision_policy": self.mode.precision if self.autocast_dtype is not None else "float32",
            "compute_dtype": str(self.autocast_dtype or torch.float32).removeprefix("torch."),
            "variable_dtype": str(next(model.parameters()).dtype).removeprefix("torch.") if model is not None else None,
            "loss_scaling": _loss_scaling(model),
            "memory_format": self.mode.memory_format,
            **embedding_gradients(model),
            "replicas": self.replicas.describe(),
            "recurrent": torch_lstm_kernels(model) if model is not None else None,  # backends/recurrent.py
        }


def embedding_gradients(model) -> dict:
    """For a model with ``nn.Embedding`` layers: whether their gradients are dense or sparse tensors."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)] if model is not None else []
    if not embeddings:
        return {}
    return {"embedding_gradients": "sparse" if all(m.sparse for m in embeddings) else "dense"}


def _loss_scaling(model):
    """The GradScaler's state (float16 only), or None."""
    scaler = getattr(model, "twinbench_scaler", None)
    if scaler is None or not scaler.is_enabled():
        return None
    return {"scaler": "torch.amp.GradScaler", "scale": float(scaler.get_scale())}


class ProgressBar:
    """Keras-style progress for one epoch of the PyTorch loop, so the three styles read alike::

        Epoch 1/5
        45/45 [==============================] - 3s 60ms/step - loss: 0.4321

    On a terminal the line is redrawn in place while the epoch runs (with the time left, ``ETA``); in a log
    or a pipe only the final line of each epoch is printed, as Keras does. The loss shown is the running mean
    over the samples seen so far. Reading it copies a value from the device, which waits for the GPU to
    finish the queued steps (a sync), so the bar redraws at most every ``interval_s`` seconds and the steps
    in between stay asynchronous. It is opt-in (``--progress``); benchmark runs leave it off.
    """

    width = 30  # characters between the brackets, as in Keras

    def __init__(self, *, epoch, epochs, steps, samples, batch_size, interval_s=0.1, stream=None):
        self.steps, self.samples, self.batch_size, self.interval_s = steps, samples, batch_size, interval_s
        self.stream = stream or sys.stdout
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_drawn = -math.inf
        self.drawn_width = 0
        print(f"Epoch {epoch + 1}/{epochs}", file=self.stream, flush=True)
        self.started = time.perf_counter()

    def update(self, step, total_loss):
        """After ``step`` steps; ``total_loss`` (summed over samples, on the device) is read only to redraw."""
        now = time.perf_counter()
        final = step >= self.steps
        if not final and (not self.dynamic or now - self.last_drawn < self.interval_s):
            return
        self.last_drawn = now
        loss = float(total_loss) / min(step * self.batch_size, self.samples)  # float(): the sync
        elapsed = now - self.started
        if final:
            timing = f"{_duration(elapsed)} {_per_step(elapsed / step)}"
        else:
            timing = f"ETA: {_duration(elapsed / step * (self.steps - step))}"
        line = f"{step:>{len(str(self.steps))}}/{self.steps} [{self._bar(step)}] - {timing} - loss: {loss:.4f}"
        if self.dynamic:  # overwrite the previous line, padding over what was longer
            line = "\r" + line.ljust(self.drawn_width)
            self.drawn_width = len(line) - 1
        print(line, end="\n" if final else "", file=self.stream, flush=True)

    def _bar(self, step):
        done = int(self.width * step / self.steps)
        if step >= self.steps:
            return "=" * self.width
        return "=" * done + ">" + "." * (self.width - done - 1)


def _duration(seconds):
    """Keras' way: ``3s``, ``1:05``, ``1:02:05``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"
