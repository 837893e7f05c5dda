"""The native tf.keras implementation (Keras 2, package ``tf-keras``): ``compile`` + ``fit`` on TensorFlow.

It shares its process with Keras 3 on the TensorFlow backend (both live in the tensorflow environment);
Keras 3 is used only to draw the canonical initial weights. Batches come from a ``tf_keras.utils.Sequence``
that follows twinbench's shared per-epoch order.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tf_keras

from twinbench.backends.base import NullEvents, TrainConfig
from twinbench.backends.keras_fit import (
    KerasFitRunner,
    compile_model,
    fit_classes,
    mixed_policy,
    tf_data_iterator,
)
from twinbench.backends.process import check_mode_here, framework_threads
from twinbench.backends.recurrent import tf_keras_lstm_kernels
from twinbench.data.tasks import PAD
from twinbench.models import build_model
from twinbench.models.weights import WeightMismatchError

# The batches and callbacks fit uses, shared with Keras 3 (backends/keras_fit.py), made for tf.keras.
_classes = fit_classes(tf_keras)
EpochBatches, _EpochTimer = _classes.EpochBatches, _classes.EpochTimer
StepClockCallback = _classes.StepClockCallback  # tools/investigations/callback_cost.py times it alone


class Float32CrossEntropy(tf_keras.losses.SparseCategoricalCrossentropy):
    """The shared loss on float32 logits. Under a mixed policy tf.keras computes a loss in the logits' dtype
    (bfloat16: a loss rounded to 3 significant digits), where Keras 3 and ``torch.autocast`` compute it in float32;
    tf.keras' guide casts the model's output to float32 for that reason, and so does this loss."""

    def call(self, y_true, y_pred):
        return super().call(y_true, tf.cast(y_pred, tf.float32))


class TokenCrossEntropy(tf_keras.losses.Loss):
    """Softmax cross-entropy of ``(N, T, V)`` logits, mean over the labelled tokens (PAD labels ignored); as
    ``twinbench.backends.keras_runner.TokenCrossEntropy``, in TensorFlow ops."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true, tf.int32)
        mask = tf.cast(tf.not_equal(labels, PAD), tf.float32)
        losses = tf_keras.losses.sparse_categorical_crossentropy(labels, tf.cast(y_pred, tf.float32), from_logits=True)
        return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class Float32BinaryCrossEntropy(tf_keras.losses.BinaryCrossentropy):
    """Sigmoid binary cross-entropy on float32 logits (see ``Float32CrossEntropy``)."""

    def call(self, y_true, y_pred):
        return super().call(y_true, tf.cast(y_pred, tf.float32))


def task_loss(task: str):
    """The task's loss (``twinbench.data.tasks``) as tf.keras spells it."""
    if task == "recommendation":
        return Float32BinaryCrossEntropy(from_logits=True)
    if task in ("seq2seq", "language_model"):
        return TokenCrossEntropy()
    return Float32CrossEntropy(from_logits=True)


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
        if isinstance(layer, (tf_keras.layers.RNN, tf_keras.layers.Bidirectional)):
            # Recurrent layers keep their weights in cells; the variable names are the Keras 3 paths
            # (``encoder_lstm_0/forward_encoder_lstm_0/lstm_cell/kernel:0``).
            variables.update({weight.name.split(":")[0]: weight for weight in layer.weights})
            continue
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            if name == "depthwise_kernel":  # Keras 3 calls it plain "kernel"
                name = "kernel"
            variables[f"{layer.name}/{name}"] = weight
    return variables


class TfKerasRunner(KerasFitRunner):
    implementation = "tf_keras"
    backend = "tensorflow"
    keras_module = tf_keras
    # --jit -> compile(jit_compile=...): tf.keras' default None is a plain tf.function graph (no XLA), as is False.
    JIT_COMPILE = {"default": None, "off": False, "on": True}

    def setup(self, *, seed: int = 0) -> None:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        check_mode_here(self.mode, who="tf.keras", gpu=gpu)
        tf_keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_tensor_float_32_execution(self.mode.precision == "tf32")

    def build(self, model_name, *, input_shape, num_classes, **options):
        """The twin built under the mode's dtype policy (``tf_keras.mixed_precision``) when it is a mixed one."""
        with mixed_policy(tf_keras, self.mode.precision), self.replicas.scope():
            model = build_model(model_name, "tf_keras", input_shape=input_shape, num_classes=num_classes, **options)
        self.replicas.after_build(model)  # --sync-batchnorm
        return model

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

    # -- gradients, one step -------------------------------------------------------------------------------
    def loss_and_grads(self, model, x, y):
        loss_fn = task_loss(self.task_of(model))
        names = {id(v): n for n, v in neutral_variables(model).items()}
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        # An embedding's gradient is a tf.IndexedSlices (sparse rows): made dense to compare.
        return float(loss), {names[id(v)]: tf.convert_to_tensor(g).numpy()
                             for v, g in zip(model.trainable_variables, grads, strict=True)}

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, model, dataset, config: TrainConfig, *, events=None):
        with self.replicas.scope():  # the optimizer's variables too are made on every replica
            compile_model(model, config, module=tf_keras, jit_compile=self.jit_compile,
                          loss=task_loss(self.task_of(model)))
        batches = EpochBatches(dataset.x_train, dataset.y_train, config.batch_size, seed=config.seed,
                               resample=dataset.resample, drop_last=config.drop_last)
        timer = _EpochTimer(self, dataset, config, events or NullEvents(), data=batches)
        model.fit(batches, epochs=config.epochs, shuffle=False, verbose=1 if config.progress else 0,
                  callbacks=[timer])
        return timer.results

    def ensure_compiled(self, model, config: TrainConfig) -> None:
        if model.optimizer is None:
            with self.replicas.scope():
                compile_model(model, config, module=tf_keras, jit_compile=self.jit_compile,
                              loss=task_loss(self.task_of(model)))

    def run_train_function(self, model, batches, *, steps, clock):
        """``model.make_train_function()`` called as tf.keras' ``fit`` calls it: ``train_function(iterator)`` over
        ``tf_data_iterator`` (the ``tf.function``, XLA where ``jit_compile``, that runs ``train_step``, its
        ``iterator.get_next()`` included; on a GPU the batch is copied from host memory inside it). Left out:
        ``fit``'s data handler and Sequence adapter, callbacks."""
        train_function = model.make_train_function()
        iterator = tf_data_iterator(batches)
        for step in range(steps):
            clock.before_step(step)
            train_function(iterator)
        clock.finish(steps)

    # -- device ----------------------------------------------------------------------------------------------
    def to_tensor(self, array):
        return tf.convert_to_tensor(array)

    def sync(self, model=None):
        """Reading a variable waits for every pending write to it: the step counter is written by each step."""
        if model is not None and getattr(model, "optimizer", None) is not None:
            model.optimizer.iterations.numpy()

    def memory_stats(self):
        if tf.config.list_physical_devices("GPU"):
            info = tf.config.experimental.get_memory_info("GPU:0")
            return {"allocator": "tensorflow", "peak_bytes": int(info["peak"])}
        return {}

    def describe_threads(self):
        # tf.keras' fit(workers=1, use_multiprocessing=False) reads a Sequence in one enqueuer thread (OrderedEnqueuer)
        # into tf.data (Dataset.from_generator), whose autotune is on by default; tf.keras runs callbacks in line.
        return {**framework_threads("tensorflow"),
                "input": {"sequence_workers": 1, "use_multiprocessing": False, "reader": "one enqueuer thread",
                          "tf_data_autotune": tf.data.Options().autotune.enabled is not False}}

    def describe(self, model=None):
        return {
            "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
            "keras_backend": "tensorflow (tf_keras, Keras 2)",
            # tf.keras' default is jit_compile=None: plain tf.function graphs, no XLA.
            "jit_compile": bool(model.jit_compile) if model is not None and model.optimizer is not None else None,
            "run_eagerly": bool(model.run_eagerly) if model is not None and model.optimizer is not None else None,
            "precision_policy": (model.dtype_policy.name if model is not None
                                 else tf_keras.mixed_precision.global_policy().name),
            "compute_dtype": model.compute_dtype if model is not None else None,
            "variable_dtype": model.variable_dtype if model is not None else None,
            "loss_scaling": ({"optimizer": "tf_keras.mixed_precision.LossScaleOptimizer",
                              "scale": float(model.optimizer.loss_scale.numpy())}
                             if model is not None and type(model.optimizer).__name__.startswith("LossScaleOptimizer") else None),
            "jit": (None if model is None or model.optimizer is None
                    else "XLA" if model.jit_compile else "tf.function (no XLA)"),
            "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
            # 0 means "TensorFlow chooses" (from TF_NUM_*_THREADS or the number of cores).
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                        "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
                        "TF_NUM_INTEROP_THREADS": os.environ.get("TF_NUM_INTEROP_THREADS")},
            **({"embedding_gradients": "sparse (tf.IndexedSlices)"}
               if model is not None and any(type(layer).__name__ == "Embedding" for layer in _leaf_layers(model))
               else {}),
            "replicas": self.replicas.describe(),
            # the kernel of each LSTM: cuDNN or standard_lstm (backends/recurrent.py)
            "recurrent": (tf_keras_lstm_kernels(model, gpu=bool(tf.config.list_physical_devices("GPU")))
                          if model is not None else None),
        }
