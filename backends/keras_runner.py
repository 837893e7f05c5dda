"""The Keras 3 implementation: the single definition, trained with ``compile`` + ``fit`` on any backend.

The backend was chosen before ``keras`` was imported (``backends.select_keras_backend``). Batches come
from a ``keras.utils.PyDataset`` that follows twinbench's shared per-epoch order, so Keras sees exactly
the batches the PyTorch loop sees. Test accuracy is measured after each epoch by a callback that predicts
the test set, the same work the PyTorch loop does after each epoch.
"""

from __future__ import annotations

import math

import keras
import numpy as np

import data as datasets
from backends.base import EpochResult, NullEvents, Runner, TrainConfig
from models.weights import WeightMismatchError


class EpochBatches(keras.utils.PyDataset):
    """Training batches in the shared order; ``on_epoch_end`` moves to the next epoch's permutation."""

    def __init__(self, x, y, batch_size, *, seed):
        super().__init__()
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


class _EpochTimer(keras.callbacks.Callback):
    """Synchronised epoch timestamps, test accuracy after each epoch, and profiler markers."""

    def __init__(self, runner, dataset, config, events):
        super().__init__()
        self.runner, self.dataset, self.config, self.events = runner, dataset, config, events
        self.results = []
        self._window = None

    def on_epoch_begin(self, epoch, logs=None):
        self.runner.sync()
        self.started = self.runner.now()
        self.events.mark("epoch_begin", epoch=epoch)
        self._window = self.events.window(f"train-epoch-{epoch}", epoch=epoch, phase="train")
        self._window.__enter__()

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs["loss"])  # Keras' mean over samples; fetching it waits for the last step
        self.runner.sync()
        self._window.__exit__(None, None, None)
        trained = self.runner.now()
        with self.events.window(f"eval-epoch-{epoch}", epoch=epoch, phase="eval"):
            test_accuracy = self.runner.evaluate(self.model, self.dataset.x_test, self.dataset.y_test,
                                                 batch_size=self.config.eval_batch_size)
        ended = self.runner.now()
        if self.config.progress:
            print(f"  test accuracy {test_accuracy:.4f}")
        self.events.mark("epoch_end", epoch=epoch, loss=loss, test_accuracy=test_accuracy)
        self.results.append(EpochResult(epoch=epoch, loss=loss, test_accuracy=test_accuracy,
                                        train_time_s=trained - self.started, eval_time_s=ended - trained,
                                        steps=math.ceil(len(self.dataset.x_train) / self.config.batch_size),
                                        started_at=self.started, ended_at=ended))


def compile_model(model, config: TrainConfig, *, module=keras):
    """The shared training settings in Keras terms (also used for tf.keras, passing ``module=tf_keras``)."""
    model.compile(
        optimizer=module.optimizers.Adam(learning_rate=config.learning_rate, epsilon=config.adam_epsilon),
        loss=module.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


class KerasRunner(Runner):
    implementation = "keras"

    def __init__(self, backend: str):
        self.backend = backend

    def setup(self, *, seed: int = 0) -> None:
        keras.utils.set_random_seed(seed)
        if self.backend == "torch":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        elif self.backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_tensor_float_32_execution(False)
        elif self.backend == "jax":
            import jax

            jax.config.update("jax_default_matmul_precision", "highest")

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

    # -- forward, gradients, one step ----------------------------------------------------------------------
    def predict(self, model, x, *, batch_size=256):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)

    def loss_and_grads(self, model, x, y):
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        variables = model.trainable_variables
        if self.backend == "torch":
            for v in variables:
                v.value.grad = None
            loss = loss_fn(keras.ops.convert_to_tensor(y), model(keras.ops.convert_to_tensor(x), training=True))
            loss.backward()
            grads = [v.value.grad.detach().cpu().numpy() for v in variables]
            loss_value = float(loss.detach().cpu())
        elif self.backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = [g.numpy() for g in tape.gradient(loss, variables)]
            loss_value = float(loss)
        else:
            import jax

            trainable = [v.value for v in variables]
            non_trainable = [v.value for v in model.non_trainable_variables]

            def compute(trainable_values):
                logits, _ = model.stateless_call(trainable_values, non_trainable, x, training=True)
                return loss_fn(y, logits)

            loss, jax_grads = jax.value_and_grad(compute)(trainable)
            grads = [np.asarray(g) for g in jax_grads]
            loss_value = float(loss)
        return loss_value, {v.path: g for v, g in zip(variables, grads, strict=True)}

    def train_step(self, model, x, y, config):
        if not getattr(model, "compiled", False):
            compile_model(model, config)
        return float(model.train_on_batch(x, y))

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, model, dataset, config: TrainConfig, *, events=None):
        compile_model(model, config)
        timer = _EpochTimer(self, dataset, config, events or NullEvents())
        batches = EpochBatches(dataset.x_train, dataset.y_train, config.batch_size, seed=config.seed)
        model.fit(batches, epochs=config.epochs, shuffle=False, verbose=1 if config.progress else 0,
                  callbacks=[timer])
        return timer.results

    # -- device ----------------------------------------------------------------------------------------------
    def sync(self):
        if self.backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        elif self.backend == "jax":
            import jax

            jax.effects_barrier()  # jitted steps are dispatched asynchronously
        # tensorflow: reading a value (the loss in the logs, a prediction) waits for the work it depends on.

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

    def describe(self):
        return {
            "device": _keras_device(self.backend),
            "precision_policy": keras.config.dtype_policy().name,
            "image_data_format": keras.config.image_data_format(),
        }


def _bn_free_non_trainable(model) -> int:
    """Non-trainable weights that are parameters (not BatchNorm moving statistics)."""
    return int(sum(np.prod(v.shape) for v in model.non_trainable_weights
                   if not v.path.endswith(("moving_mean", "moving_variance"))))


def _keras_device(backend):
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform)
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
