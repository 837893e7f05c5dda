"""The Keras 3 implementation: the single definition, trained with ``compile`` + ``fit`` on any backend.

The backend was chosen before ``keras`` was imported (``twinbench.backends.select_keras_backend``). Batches come
from a ``keras.utils.PyDataset`` that follows twinbench's shared per-epoch order, so Keras sees exactly
the batches the PyTorch loop sees. Test accuracy is measured after each epoch by a callback that predicts
the test set, the same work the PyTorch loop does after each epoch.

The mode (``twinbench.backends.modes.Mode``) is applied the way Keras users do it: ``compile(jit_compile=...)``, a global
dtype policy (``mixed_bfloat16``, ``mixed_float16``: ``compile`` then wraps the optimizer in a
``LossScaleOptimizer``) and ``keras.config.set_image_data_format`` while the model is built. twinbench's arrays
stay channels last: a channels-first model gets its batches transposed once. Its weights are the neutral ones
as they are: Keras kernels are HWIO in either layout, and Keras' ``Flatten`` turns a channels-first map channels
last before flattening (so that weights survive a change of layout), which the graph records
(``twinbench.models.weights.flatten_inputs``).
"""

from __future__ import annotations

import contextlib
import itertools

import keras
import numpy as np

from twinbench.backends.base import NullEvents, TrainConfig
from twinbench.backends.keras_fit import (
    KerasFitRunner,
    compile_model,
    fit_classes,
    mixed_policy,
    tf_data_iterator,
)
from twinbench.backends.keras_shapes import shapes_only
from twinbench.backends.process import (
    BackendError,
    check_mode_here,
    framework_threads,
    keras_callback_threads,
)
from twinbench.backends.recurrent import keras_lstm_kernels
from twinbench.backends.torch_compile import compile_stats
from twinbench.data.tasks import PAD
from twinbench.models import build_model
from twinbench.models.weights import WeightMismatchError, leaf_layers

# The batches and callbacks fit uses, shared with tf.keras (backends/keras_fit.py), made for Keras 3.
_classes = fit_classes(keras)
EpochBatches, _EpochTimer = _classes.EpochBatches, _classes.EpochTimer
StepClockCallback = _classes.StepClockCallback  # tools/investigations/callback_cost.py times it alone


class TokenCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy of ``(N, T, V)`` logits, mean over the labelled tokens (PAD labels ignored).

    ``__call__`` itself is overridden: the mean over labelled tokens is the whole reduction (Keras' own
    reductions divide by every position, PAD included), and a Keras mask on the logits must not apply twice.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        labels = keras.ops.cast(y_true, "int32")
        mask = keras.ops.cast(keras.ops.not_equal(labels, PAD), "float32")
        losses = keras.losses.sparse_categorical_crossentropy(labels, keras.ops.cast(y_pred, "float32"),
                                                              from_logits=True)
        return keras.ops.sum(losses * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)


def task_loss(task: str):
    """The task's loss (``twinbench.data.tasks``) as Keras 3 spells it."""
    if task == "recommendation":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if task in ("seq2seq", "language_model"):
        return TokenCrossEntropy()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class SummedRowsAdam(keras.optimizers.Adam):
    """Keras 3's Adam, given an embedding's sparse gradient with each row once (TensorFlow backend only).

    On TensorFlow the gradient of an embedding lookup is a ``tf.IndexedSlices``: one row per *occurrence* of an
    index in the batch, so a user who appears twice brings two rows. Keras 3.15's Adam applies such a gradient
    occurrence by occurrence, so its second moment receives ``g1**2 + g2**2`` instead of ``(g1 + g2)**2``: another
    update than dense Adam (PyTorch, Keras on torch and JAX) and tf.keras' Adam (which sums duplicates first), for
    every row that occurs more than once (``tests/test_nonimage.py`` shows it). This optimizer sums the duplicate
    rows first, as tf.keras does; the gradient stays sparse.
    """

    def apply(self, grads, trainable_variables=None):
        import tensorflow as tf

        def summed(grad):
            if not isinstance(grad, tf.IndexedSlices):
                return grad
            rows, positions = tf.unique(grad.indices)
            values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(rows)[0])
            return tf.IndexedSlices(values, rows, grad.dense_shape)

        return super().apply([summed(g) for g in grads], trainable_variables)


def adam_class() -> type:
    """Keras 3's Adam for the shared settings (``compile_model``): ``SummedRowsAdam`` on TensorFlow, Keras' own
    elsewhere."""
    return SummedRowsAdam if keras.backend.backend() == "tensorflow" else keras.optimizers.Adam


@contextlib.contextmanager
def image_data_format(data_format: str):
    """Build Keras layers in ``data_format``; the process keeps channels last (twinbench's arrays) outside."""
    before = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        yield
    finally:
        keras.config.set_image_data_format(before)


class KerasRunner(KerasFitRunner):
    implementation = "keras"
    keras_module = keras
    JIT_COMPILE = {"default": "auto", "off": False, "on": True}  # --jit -> compile(jit_compile=...)

    def __init__(self, backend: str):
        self.backend = backend

    def setup(self, *, seed: int = 0) -> None:
        device = _keras_device(self.backend)
        check_mode_here(self.mode, who=f"Keras on {self.backend}", gpu=device in ("cuda", "gpu"),
                        compiler=self.backend == "torch" and device == "cpu")
        if self.backend == "tensorflow" and device == "cpu" and self.mode.data_format == "channels_first":
            from tensorflow.python.util import _pywrap_util_port

            if not _pywrap_util_port.IsMklEnabled():  # TensorFlow's own CPU Conv2D is NHWC only
                raise BackendError("--data-format channels_first cannot run here: TensorFlow's CPU convolutions take "
                                   "channels_first only through its oneDNN kernels, which TF_ENABLE_ONEDNN_OPTS=0 "
                                   "switched off. Available here: channels_last.")
        keras.utils.set_random_seed(seed)
        tf32 = self.mode.precision == "tf32"
        if self.backend == "torch":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        elif self.backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_tensor_float_32_execution(tf32)
        elif self.backend == "jax":
            import jax

            jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")

    # -- model, layout -------------------------------------------------------------------------------------
    def build(self, model_name, *, input_shape, num_classes, **options):
        """The definition built in the mode's layout and, under mixed precision, its dtype policy (variables
        float32, computations in bfloat16/float16), as ``keras.config.set_dtype_policy`` would make it."""
        with image_data_format(self.mode.data_format), mixed_policy(keras, self.mode.precision), self.replicas.scope():
            model = build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes, **options)
        self.replicas.after_build(model)  # --sync-batchnorm
        return model

    def build_shapes(self, model_name, *, input_shape, num_classes, **options):
        """The definition with deferred variables (``shapes_only``); built in full where it creates a variable that
        Keras cannot defer (keras-hub's ViT makes one outside ``add_weight``)."""
        try:
            with shapes_only():
                return self.build(model_name, input_shape=input_shape, num_classes=num_classes, **options)
        except ValueError as error:
            if "while in a stateless scope" not in str(error):
                raise
        return self.build(model_name, input_shape=input_shape, num_classes=num_classes, **options)

    def model_inputs(self, x):
        """Channels-last images as the model takes them: transposed once to (N, C, H, W) when it is channels first."""
        if isinstance(x, tuple):  # token or id arrays: no layout
            return x
        if self.mode.data_format == "channels_first" and np.ndim(x) == 4:
            return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
        return x

    # -- weights -------------------------------------------------------------------------------------------
    def weight_shapes(self, model):
        return {v.path: tuple(v.shape) for v in model.weights}

    def get_weights(self, model):
        return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}

    def set_weights(self, model, weights):
        for variable in model.weights:
            if variable.path not in weights:
                raise WeightMismatchError(f"Weight {variable.path!r} is missing from the mapping.")
            variable.assign(np.asarray(weights[variable.path], dtype=variable.dtype))

    def count_params(self, model) -> int:
        return int(sum(np.prod(v.shape) for v in model.trainable_weights)) + _bn_free_non_trainable(model)

    def float64(self):
        if self.backend == "jax":
            import jax

            return jax.enable_x64(True)
        return super().float64()

    def prepare_float64(self, model_name, *, input_shape, num_classes, weights, options=None):
        """The Keras definition built under the float64 dtype policy (TensorFlow, or JAX inside ``float64()``;
        on the torch backend some Keras reductions stay float32)."""
        if self.backend == "torch" or (self.backend == "jax" and not _jax_x64()):
            return super().prepare_float64(model_name, input_shape=input_shape, num_classes=num_classes,
                                           weights=weights, options=options)
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float64")
        try:
            return self.prepare(model_name, input_shape=input_shape, num_classes=num_classes, weights=weights,
                                options=options)
        finally:
            keras.config.set_dtype_policy(policy)

    # -- gradients, one step -------------------------------------------------------------------------------
    def loss_and_grads(self, model, x, y):
        loss_fn = task_loss(self.task_of(model))
        x = self.model_inputs(x)
        variables = model.trainable_variables
        if self.backend == "torch":
            for v in variables:
                v.value.grad = None
            inputs = tuple(map(keras.ops.convert_to_tensor, x)) if isinstance(x, tuple) else keras.ops.convert_to_tensor(x)
            loss = loss_fn(keras.ops.convert_to_tensor(y), model(inputs, training=True))
            loss.backward()
            grads = [v.value.grad.detach().cpu().numpy() for v in variables]
            loss_value = float(loss.detach().cpu())
        elif self.backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            # An embedding's gradient is a tf.IndexedSlices (sparse rows): made dense to compare.
            grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
            loss_value = float(loss)
        else:
            import jax

            trainable = [v.value for v in variables]
            non_trainable = [v.value for v in model.non_trainable_variables]

            def compute(trainable_values):
                logits, new_non_trainable = model.stateless_call(trainable_values, non_trainable, x, training=True)
                return loss_fn(y, logits), new_non_trainable

            # Compiled once, as a train step is (op by op, a deep model's first gradient takes ~35x longer), unless
            # the mode asks for op-by-op execution.
            gradient = jax.value_and_grad(compute, has_aux=True)
            (loss, new_non_trainable), jax_grads = (gradient if self.mode.jit == "off" else jax.jit(gradient))(trainable)
            # A training-mode forward updates BatchNorm's moving statistics on every other backend (and in
            # PyTorch); JAX returns the new state instead, so assign it to behave the same.
            for variable, value in zip(model.non_trainable_variables, new_non_trainable, strict=True):
                variable.assign(value)
            grads = [np.asarray(g) for g in jax_grads]
            loss_value = float(loss)
        return loss_value, {v.path: g for v, g in zip(variables, grads, strict=True)}

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, model, dataset, config: TrainConfig, *, events=None):
        with self.replicas.scope():  # the optimizer's variables too are made on every replica
            compile_model(model, config, module=keras, loss=task_loss(self.task_of(model)),
                          jit_compile=self.jit_compile, adam=adam_class())
        batches = EpochBatches(self.model_inputs(dataset.x_train), dataset.y_train, config.batch_size, seed=config.seed,
                               resample=dataset.resample, drop_last=config.drop_last)
        timer = _EpochTimer(self, dataset, config, events or NullEvents(), data=batches)
        model.fit(batches, epochs=config.epochs, shuffle=False, verbose=1 if config.progress else 0,
                  callbacks=[timer])
        return timer.results

    def ensure_compiled(self, model, config: TrainConfig) -> None:
        if not getattr(model, "compiled", False):
            with self.replicas.scope():
                compile_model(model, config, module=keras, loss=task_loss(self.task_of(model)),
                              jit_compile=self.jit_compile, adam=adam_class())

    def run_train_function(self, model, batches, *, steps, clock):
        """``model.train_function`` called as this backend's ``fit`` calls it (keras/src/backend/<backend>/trainer.py).

        torch: the batches as torch tensors on Keras' device; ``train_function([batch])`` (``train_step``: forward,
        loss, backward, optimizer; under ``torch.compile`` where ``jit_compile`` resolved to it) after
        ``model.train()``. jax: the batches as JAX arrays on the device; the stateless
        ``logs, state = train_function(state, iterator)`` (``jax.jit`` unless eager), the state handed from step
        to step and written back to the variables once at the end (``jax_state_sync``), as ``fit`` does per
        epoch. tensorflow: ``train_function(iterator)`` over ``tf_data_iterator`` (the ``tf.function`` that
        ``fit`` runs, its ``iterator.get_next()`` included; on a GPU the batch is copied from host memory inside
        it). Left out: ``fit``'s epoch iterator and data adapter, callbacks, ``on_train_batch_end`` dispatch.
        """
        model._symbolic_build(data_batch=batches[0])  # what train_on_batch does first (builds the optimizer)
        model.make_train_function()
        if self.backend == "tensorflow":
            iterator = tf_data_iterator(batches)
            for step in range(steps):
                clock.before_step(step)
                model.train_function(iterator)
            clock.finish(steps)
            return
        tensors = [keras.tree.map_structure(keras.ops.convert_to_tensor, batch) for batch in batches]
        if self.backend == "torch":
            model.train()
            for step in range(steps):
                clock.before_step(step)
                model.train_function([tensors[step % len(tensors)]])
            clock.finish(steps)
            return
        names = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")
        state = model._get_jax_state(**dict.fromkeys(names, True), purge_model_variables=True)
        model._jax_state, model._jax_state_synced = dict(zip(names, state, strict=True)), False
        iterator = itertools.cycle(tensors)
        try:
            for step in range(steps):
                clock.before_step(step)
                _, state = model.train_function(state, iterator)
                model._jax_state = dict(zip(names, state, strict=True))  # what runner.sync(model) waits for
            clock.finish(steps)
        finally:
            model.jax_state_sync()
            model._jax_state = None

    # -- device ----------------------------------------------------------------------------------------------
    def to_tensor(self, array):
        return keras.ops.convert_to_tensor(array)

    def wait_for(self, outputs) -> None:
        """Return when ``outputs`` are computed: ``torch.cuda.synchronize()`` (CPU tensors are computed synchronously),
        JAX's ``block_until_ready``, TensorFlow's fetched (reading a value waits for it)."""
        if self.backend == "torch":
            self.sync()
        elif self.backend == "jax":
            import jax

            jax.block_until_ready(outputs)
        else:
            super().wait_for(outputs)

    def sync(self, model=None):
        """Wait for the device. With ``model``, also for the training steps dispatched for it so far."""
        if self.backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()  # CPU tensors are computed synchronously
        elif self.backend == "jax":
            import jax

            if model is not None:
                # Inside fit, Keras keeps the newest training state in `model._jax_state` (its documented
                # hook for callbacks) and writes it back to the variables only at the end of the epoch.
                # (Keras wraps that dict and its lists in its own tracking types: unwrap them to plain lists.)
                state = getattr(model, "_jax_state", None)
                arrays = [a for values in state.values() for a in values] if state else [v.value for v in model.variables]
                jax.block_until_ready(arrays)
            else:
                jax.effects_barrier()
        elif self.backend == "tensorflow" and model is not None and getattr(model, "optimizer", None) is not None:
            # Reading a variable waits for every pending write to it: the step counter is written by each step.
            keras.ops.convert_to_numpy(model.optimizer.iterations)

    def memory_stats(self):
        if self.backend == "torch":
            import torch

            if torch.cuda.is_available():
                return {"allocator": "torch.cuda", "peak_bytes": int(torch.cuda.max_memory_allocated())}
        elif self.backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                info = tf.config.experimental.get_memory_info("GPU:0")
                return {"allocator": "tensorflow", "peak_bytes": int(info["peak"])}
        elif self.backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            if stats:
                return {"allocator": "jax", "peak_bytes": int(stats.get("peak_bytes_in_use", 0))}
        return {}

    def describe_threads(self):
        # twinbench's PyDataset keeps Keras' defaults, workers=1 and no multiprocessing: Keras 3 then reads its
        # batches in the training thread (a thread pool only from workers=2 or with multiprocessing).
        return {**framework_threads(self.backend), "keras_callbacks": keras_callback_threads(keras),
                "input": {"pydataset_workers": 1, "use_multiprocessing": False, "reader": "the training thread"}}

    def describe(self, model=None):
        return {
            "device": _keras_device(self.backend),
            "keras_backend": keras.backend.backend(),
            "precision_policy": model.dtype_policy.name if model is not None else keras.config.dtype_policy().name,
            "compute_dtype": model.compute_dtype if model is not None else None,
            "variable_dtype": model.variable_dtype if model is not None else None,
            "loss_scaling": _loss_scaling(model),
            "image_data_format": self.mode.data_format,
            # compile(jit_compile="auto") resolves to XLA on jax, and on tensorflow when a GPU is present.
            "jit_compile": bool(model.jit_compile) if model is not None and getattr(model, "compiled", False) else None,
            "jit": _jit_engine(self.backend, model),
            "torch_compile": _torch_compile_stats(self.backend, model),
            "steps_per_execution": getattr(model, "steps_per_execution", None) if model is not None else None,
            "tf32": _tf32(self.backend),
            "threads": _threads(self.backend),
            **embedding_gradients(model, self.backend),
            "replicas": self.replicas.describe(),
            # the kernel of each LSTM: cuDNN or Keras' generic loop (backends/recurrent.py)
            "recurrent": (keras_lstm_kernels(model, self.backend, gpu=_keras_device(self.backend) in ("cuda", "gpu"))
                          if model is not None else None),
        }


def embedding_gradients(model, backend) -> dict:
    """For a model with Embedding layers: whether the framework's gradients of the tables are dense or sparse.

    TensorFlow differentiates a gather into a ``tf.IndexedSlices`` (the looked-up rows only); the torch and JAX
    backends of Keras produce a dense array the size of the table.
    """
    if model is None or not any(type(layer).__name__ == "Embedding" for layer in leaf_layers(model)):
        return {}
    return {"embedding_gradients": ("sparse (tf.IndexedSlices; duplicate rows summed before Adam: SummedRowsAdam)"
                                    if backend == "tensorflow" else "dense")}


def _loss_scaling(model):
    """The LossScaleOptimizer that ``compile`` wrapped around Adam under ``mixed_float16`` (None otherwise)."""
    optimizer = getattr(model, "optimizer", None) if model is not None else None
    if optimizer is None or type(optimizer).__name__ != "LossScaleOptimizer":
        return None
    return {"optimizer": "keras.optimizers.LossScaleOptimizer",
            "scale": float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))}


def _jit_engine(backend, model):
    """What compiled the train step: torch.compile, XLA, jax.jit, or nothing (eager / plain tf.function)."""
    if model is None or not getattr(model, "compiled", False):
        return None
    if not model.jit_compile:
        return {"torch": "eager", "tensorflow": "tf.function (no XLA)", "jax": "op by op (no jax.jit)"}[backend]
    return {"torch": "torch.compile", "tensorflow": "XLA", "jax": "jax.jit (XLA)"}[backend]


def _torch_compile_stats(backend, model):
    if backend != "torch" or model is None or not getattr(model, "jit_compile", False):
        return None
    return compile_stats()


def _bn_free_non_trainable(model) -> int:
    """Non-trainable weights that are parameters (not BatchNorm moving statistics)."""
    return int(sum(np.prod(v.shape) for v in model.non_trainable_weights
                   if not v.path.endswith(("moving_mean", "moving_variance"))))


def _jax_x64() -> bool:
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def _keras_device(backend):
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform)
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def _tf32(backend):
    """Whether float32 matmuls/convolutions may run in TF32 (False is what ``setup`` asks for)."""
    if backend == "torch":
        import torch

        return {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.tensor_float_32_execution_enabled()
    import jax

    # "highest" = full float32 matmuls on GPUs; JAX's default ("default") allows TF32 / bfloat16 passes.
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


def _threads(backend):
    """The CPU thread pools the backend uses."""
    import os

    if backend == "torch":
        import torch

        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    if backend == "tensorflow":
        import tensorflow as tf

        # 0 means "TensorFlow chooses" (from TF_NUM_*_THREADS or the number of cores).
        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
                "TF_NUM_INTEROP_THREADS": os.environ.get("TF_NUM_INTEROP_THREADS")}
    return {"XLA_FLAGS": os.environ.get("XLA_FLAGS"), "cpu_count": os.cpu_count()}
