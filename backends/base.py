"""The one small interface ``bench/`` uses to run any implementation.

A ``Runner`` knows one framework. ``bench`` calls, in order::

    runner.setup(seed=0)
    model = runner.prepare("cifar_cnn", input_shape=(32, 32, 3), num_classes=10, seed=0)
    accuracy = runner.evaluate(model, x_test, y_test, batch_size=256)
    epochs = runner.fit(model, dataset, config, events=profiler)

Every figure a runner returns is framework-neutral (floats, numpy arrays, the neutral weight mapping).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from models import build_model, get_model_spec
from models.weights import canonical_weights, check_weights


@dataclass(frozen=True)
class TrainConfig:
    """The training settings every implementation shares (same optimizer, loss, batches, epochs)."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam
    adam_epsilon: float = 1e-8  # PyTorch's default; Keras' own default is 1e-7, so it is set explicitly
    eval_batch_size: int = 256
    seed: int = 0  # shuffle order and framework RNGs
    progress: bool = False  # a per-epoch progress line/bar in the framework's own style


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
    test_accuracy: float
    train_time_s: float  # first batch to last optimizer step, synchronised
    eval_time_s: float  # test-set predictions after the epoch
    steps: int
    started_at: float  # perf_counter at the synchronised start of the epoch
    ended_at: float  # perf_counter after evaluation

    def as_dict(self):
        return dict(self.__dict__)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose largest logit is the true class."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def mean_sample_loss(batch_losses, batch_sizes) -> float:
    """The one loss definition for every implementation: per-batch means weighted by batch size."""
    batch_sizes = np.asarray(batch_sizes, dtype=np.float64)
    return float(np.dot(np.asarray(batch_losses, dtype=np.float64), batch_sizes) / batch_sizes.sum())


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits), in float64 (a reference for tests)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


class Runner:
    """Base class: the parts every framework does the same way. Subclasses fill in the framework parts."""

    implementation: str = ""
    backend: str = ""

    # -- framework hooks ---------------------------------------------------------------------------------
    def setup(self, *, seed: int = 0) -> None:
        """Seed every RNG, pick the device, switch TF32 off."""
        raise NotImplementedError

    def build(self, model_name, *, input_shape, num_classes):
        return build_model(model_name, self.implementation, input_shape=input_shape, num_classes=num_classes)

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
        """Mean cross-entropy in training mode and its gradients (neutral names, Keras layout)."""
        raise NotImplementedError

    def train_step(self, model, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> float:
        """One optimizer step through the implementation's real training path; returns the batch loss."""
        raise NotImplementedError

    def fit(self, model, dataset, config: TrainConfig, *, events=None) -> list[EpochResult]:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until the device has finished all queued work."""

    def memory_stats(self) -> dict:
        """Framework allocator figures (bytes); empty on CPU where the framework keeps none."""
        return {}

    def describe(self) -> dict:
        """Device and settings that belong in the result record."""
        return {}

    # -- shared logic ----------------------------------------------------------------------------------
    def prepare(self, model_name, *, input_shape, num_classes, seed: int = 0, weights=None):
        """Build the model and load the canonical initial weights of the Keras definition (or ``weights``)."""
        model = self.build(model_name, input_shape=input_shape, num_classes=num_classes)
        if weights is None:
            weights = self.canonical_weights(model_name, input_shape=input_shape, num_classes=num_classes, seed=seed)
        check_weights(weights, self.weight_shapes(model))
        self.set_weights(model, weights)
        return model

    def canonical_weights(self, model_name, *, input_shape, num_classes, seed: int = 0):
        """The Keras definition's initial weights, drawn with NumPy: identical in every process."""
        reference = build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes)
        return canonical_weights(reference, seed=seed)

    def evaluate(self, model, x, y, *, batch_size: int = 256) -> float:
        return accuracy(self.predict(model, x, batch_size=batch_size), y)

    def spec(self, model_name):
        return get_model_spec(model_name)

    @staticmethod
    def now() -> float:
        return time.perf_counter()
