"""Child process of ``tests/test_replicas.py``: one plain-SGD step of each implementation of this environment that
has a data-parallel engine, on one replica and on two, written to an ``.npz`` the test compares.

Plain SGD, ``w <- w - lr * g``, so the gradient each engine applied is read back from the weights
(``use_plain_sgd``). Models: ``cifar_cnn`` (no BatchNorm: the steps must be equal) and the
test-only ``bn_cnn`` (BatchNorm: per-replica statistics, unless synchronised).

    KERAS_BACKEND=tensorflow python tests/replica_step.py OUT.npz          (two logical CPU devices)
    KERAS_BACKEND=jax python tests/replica_step.py OUT.npz                 (two host devices)
    KERAS_BACKEND=torch python -m torch.distributed.run --standalone --nproc-per-node=2 tests/replica_step.py OUT.npz
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from replica_models import register  # noqa: E402

from twinbench.backends import BackendError, distributed, get_runner  # noqa: E402
from twinbench.backends.base import TrainConfig  # noqa: E402
from twinbench.backends.environments import ENVIRONMENTS, implementation_label  # noqa: E402
from twinbench.backends.modes import DATA_PARALLEL, SINGLE, SYNC_BATCHNORM, Replication  # noqa: E402
from twinbench.twins.parity import parity_case, parity_options  # noqa: E402

LEARNING_RATE = 1.0  # the applied gradient is the weights' change
MODELS = ("cifar_cnn", register())
TWO = Replication(replicas=2)
TWO_SYNC = Replication(replicas=2, sync_batchnorm=True)


def use_plain_sgd(runner, model, learning_rate: float) -> None:
    """Make ``runner.train_step`` take plain SGD steps, ``w <- w - learning_rate * g``, on ``model``, so the gradient
    the engine applied can be read back from the weights: ``g = (w_before - w_after) / learning_rate`` (Adam, the
    benchmark's optimizer, is blind to a gradient's scale, so it could not tell averaged from summed gradients)."""
    if runner.implementation == "torch":
        import torch

        model.twinbench_optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
        model.twinbench_scaler = torch.amp.GradScaler(runner.device.type, enabled=False)
        return
    module = runner.keras_module
    if runner.implementation == "tf_keras":
        from twinbench.backends.tf_keras_runner import Float32CrossEntropy as loss_class
    else:
        loss_class = module.losses.SparseCategoricalCrossentropy
    with runner.replicas.scope():
        model.compile(optimizer=module.optimizers.SGD(learning_rate=learning_rate), loss=loss_class(from_logits=True),
                      jit_compile=runner.jit_compile)


def observe_step(pair, model_name, replication, *, gradients=False) -> dict[str, np.ndarray]:
    """Logits, the step's loss, the gradient the step applied (``applied:NAME``) and every weight after it
    (``after:NAME``); with ``gradients``, also ``runner.loss_and_grads`` on a fresh copy (``grad:NAME``)."""
    input_shape, num_classes, x, y = parity_case(model_name)
    runner = get_runner(*pair, replication=replication)
    runner.setup(seed=0)
    build = {"input_shape": input_shape, "num_classes": num_classes, "options": parity_options(model_name)}
    weights = runner.canonical_weights(model_name, seed=0, **build)
    out = {}
    if gradients:
        loss, grads = runner.loss_and_grads(runner.prepare(model_name, weights=weights, **build), x, y)
        out.update({f"grad:{name}": g for name, g in grads.items()}, grad_loss=np.array(loss))
    model = runner.prepare(model_name, weights=weights, **build)
    use_plain_sgd(runner, model, LEARNING_RATE)
    out["logits"] = runner.predict(model, x)
    before = runner.get_weights(model)
    out["loss"] = np.array(runner.train_step(model, x, y, TrainConfig(learning_rate=LEARNING_RATE)))
    after = runner.get_weights(model)
    for name, value in after.items():
        out[f"applied:{name}"] = (np.asarray(before[name], np.float64) - np.asarray(value, np.float64)) / LEARNING_RATE
        out[f"after:{name}"] = np.asarray(value)
    return out


def observe_fit(pair, replication) -> dict[str, np.ndarray]:
    """One epoch of ``runner.fit`` (Adam, the benchmark's training path) of ``cifar_cnn`` on 64 synthetic samples in
    batches of 16, full batches only: its epoch loss and test accuracy."""
    from twinbench import data

    runner = get_runner(*pair, replication=replication)
    runner.setup(seed=0)
    dataset = data.load_dataset("synthetic", input_shape=(32, 32, 3), num_classes=10, seed=0, synthetic_train=64,
                                synthetic_test=16)
    model = runner.prepare("cifar_cnn", input_shape=(32, 32, 3), num_classes=10, seed=0,
                           options=parity_options("cifar_cnn"))
    (epoch,) = runner.fit(model, dataset, TrainConfig(epochs=1, batch_size=16, drop_last=True))
    return {"fit_loss": np.array(epoch.loss), "fit_accuracy": np.array(epoch.test_accuracy)}


def main(path) -> int:
    backend = os.environ["KERAS_BACKEND"]
    pairs = [pair for pair in ENVIRONMENTS[backend] if pair in DATA_PARALLEL]
    results: dict[str, np.ndarray] = {}
    # Data-parallel runs first: TensorFlow's logical devices must be made before it runs anything.
    variants = [("two", TWO, False), ("two_sync", TWO_SYNC, False), ("one", SINGLE, True)]
    for variant, replication, gradients in variants:
        for pair in pairs:
            for model_name in MODELS:
                key = f"{implementation_label(*pair)}|{model_name}|{variant}"
                if replication.sync_batchnorm and (pair not in SYNC_BATCHNORM or model_name != "bn_cnn"):
                    continue
                try:
                    observed = observe_step(pair, model_name, replication, gradients=gradients)
                except BackendError as err:  # an engine that cannot synchronise here says so in one line
                    results[f"{key}|error"] = np.array(str(err))
                    continue
                results.update({f"{key}|{name}": value for name, value in observed.items()})
            if not replication.sync_batchnorm:
                key = f"{implementation_label(*pair)}|cifar_cnn|{variant}"
                results.update({f"{key}|{name}": value for name, value in observe_fit(pair, replication).items()})
    if (distributed.launched_rank() or (0, 1))[0] == 0:
        np.savez(path, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
