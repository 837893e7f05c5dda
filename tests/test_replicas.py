"""Data-parallel twins (``--replicas``, ``twinbench.backends.distributed``): one step over two replicas at global batch B is the
step over one replica at batch B, in every implementation that has an engine; BatchNorm is where the engines differ.

The steps run in a child process per environment (``tests/replica_step.py``: under torchrun for torch; with two
logical/host devices for TensorFlow and JAX, which must be made before the framework starts). They are plain SGD
steps with a learning rate of 1, so the gradient each engine *applied* is read back from the weights: an engine that
summed its replicas' gradients instead of averaging them would apply twice the gradient (shown failing below).

- ``cifar_cnn`` (no BatchNorm): the two-replica step equals the one-replica gradient (``runner.loss_and_grads`` at the
  global batch) within the float32 envelope of the twin checks, and the PyTorch twin's committed fingerprint, so the
  implementations agree with each other too;
- ``bn_cnn`` (tests/replica_models.py, BatchNorm): torch DDP and MirroredStrategy normalise each replica's shard with
  its own statistics, a measured difference far outside that envelope; ``--sync-batchnorm`` (``synchronized=True``)
  closes it on TensorFlow, torch's SyncBatchNorm is GPU-only (a one-line error here); keras[jax]'s sharded arrays
  see the global batch and need no synchronisation.

The tests that start the child process (or, for the faults, two ranks twice) are in the large tier (``--run-large``);
the cell axis, the shards, the records and the one-line errors stay in the fast tier.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, ROOT, requires_backend
from twinbench.backends.environments import implementation_label
from twinbench.backends.modes import DATA_PARALLEL, SINGLE, SYNC_BATCHNORM, Replication
from twinbench.backends.tolerances import NOISE_FACTOR, NOISE_FACTOR_NEITHER
from twinbench.cell import Cell, UnknownChoiceError, environment_cells
from twinbench.data import batch_indices
from twinbench.twins.parity import (
    Observation,
    ParityError,
    committed_noise,
    compare_fingerprints,
    fingerprint_of,
    fingerprint_path,
    load_fingerprint,
)

PAIRS = [pytest.param(pair, id=implementation_label(*pair)) for pair in IMPLEMENTATIONS_HERE if pair in DATA_PARALLEL]
SYNC_PAIRS = [p for p in PAIRS if p.values[0] in SYNC_BATCHNORM]


# -- the axis: labels, files, cell lists, checks (no framework) ----------------------------------------------------

def test_replicas_is_an_axis_of_the_cell():
    cell = Cell("cifar_cnn", "torch", "torch", replicas=2)
    assert cell.label == "torch replicas=2"
    assert cell.file_id == "cifar_cnn__torch__torch__digits__replicas-2"
    assert Cell.of({"cell": cell.as_dict()}) == cell and cell.as_dict()["replicas"] == 2
    synced = Cell("bn", "tf_keras", "tensorflow", replicas=2, sync_batchnorm=True)
    assert synced.label == "tf_keras replicas=2 sync_batchnorm=True"
    assert synced.replication == Replication(2, True)
    assert Cell("cifar_cnn", "torch", "torch").as_dict().keys() == {"model", "implementation", "backend", "dataset"}


def test_cell_lists_keep_the_implementations_that_have_an_engine():
    labels = {env: [c.label for c in environment_cells(env, "cifar_cnn", replicas=2)] for env in ("torch", "jax")}
    assert labels == {"torch": ["torch replicas=2"], "jax": ["keras[jax] replicas=2"]}  # keras[torch]: none in 3.15
    assert len(environment_cells("tensorflow", "cifar_cnn", replicas=2, sync_batchnorm=True)) == 2
    assert environment_cells("jax", "cifar_cnn", replicas=2, sync_batchnorm=True) == []  # global statistics already


def test_replication_checks_name_the_reason():
    with pytest.raises(UnknownChoiceError, match="Keras 3.15 has no distribution API for the torch backend"):
        Replication(replicas=2).check("keras", "torch")
    with pytest.raises(UnknownChoiceError, match="--sync-batchnorm needs --replicas 2"):
        Replication(sync_batchnorm=True)
    with pytest.raises(UnknownChoiceError, match="positive integer"):
        Replication(replicas=0)
    with pytest.raises(UnknownChoiceError, match="not to keras\\[jax\\]: its sharded arrays"):
        Replication(2, True).check("keras", "jax")
    SINGLE.check("keras", "torch")


def test_each_replica_reads_its_consecutive_shard_of_the_shared_order():
    batches = batch_indices(10, 4, epoch=0, seed=0, drop_last=True)
    assert [len(b) for b in batches] == [4, 4]  # the partial batch of 2 is left out
    two = Replication(replicas=2)
    for batch in batches:
        np.testing.assert_array_equal(np.concatenate([two.shard(batch, 0), two.shard(batch, 1)]), batch)


# -- the steps ----------------------------------------------------------------------------------------------------

@functools.cache
def _steps(tmp_dir) -> dict:
    """Run tests/replica_step.py once per session in this environment; its arrays by key."""
    out = os.path.join(tmp_dir, f"replica_step_{BACKEND}.npz")
    script = str(ROOT / "tests" / "replica_step.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    if BACKEND == "torch":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script, out]
    else:
        command = [sys.executable, script, out]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    if not PAIRS:
        pytest.skip("no implementation here has a data-parallel engine")
    return _steps(str(tmp_path_factory.mktemp("replicas")))


def _observation(steps, pair, model, variant, *, factor=1.0) -> Observation:
    """What a step applied, as the twin checks' ``Observation``: ``grads`` = the applied gradient (times ``factor``:
    2 is what summing the replicas' gradients would apply), ``state`` = the BatchNorm statistics after the step."""
    prefix, one = (f"{implementation_label(*pair)}|{model}|{v}|" for v in (variant, "one"))
    trainable = [k[len(one) + 5:] for k in steps if k.startswith(one + "grad:")]
    after = {k[len(prefix) + 6:]: v for k, v in steps.items() if k.startswith(prefix + "after:")}
    return Observation(logits=steps[prefix + "logits"], loss=float(steps[prefix + "loss"]),
                       grads={name: factor * steps[f"{prefix}applied:{name}"] for name in trainable}, steps={},
                       state={name: v for name, v in after.items() if name not in trainable}, forward_state={})


def _reference(steps, pair, model) -> Observation:
    """The one-replica gradient at the global batch (``runner.loss_and_grads``), and the one-replica step's state."""
    prefix = f"{implementation_label(*pair)}|{model}|one|"
    one = _observation(steps, pair, model, "one")
    return Observation(logits=one.logits, loss=float(steps[prefix + "grad_loss"]),
                       grads={name: steps[f"{prefix}grad:{name}"] for name in one.grads}, steps={}, state=one.state,
                       forward_state={})


def _compare(actual, expected, model):
    from twinbench.twins.parity import compare_observations

    return compare_observations(actual, expected, lr=1.0, noise=committed_noise(model), factor=NOISE_FACTOR_NEITHER)


@pytest.mark.large
@requires_backend
@pytest.mark.parametrize("pair", PAIRS)
def test_two_replicas_take_the_one_replica_step(steps, pair):
    reference = _reference(steps, pair, "cifar_cnn")
    _compare(_observation(steps, pair, "cifar_cnn", "one"), reference, "cifar_cnn")  # the read-back itself
    report = _compare(_observation(steps, pair, "cifar_cnn", "two"), reference, "cifar_cnn")
    assert report.max_rel_grad < 1e-3
    with pytest.raises(ParityError, match="gradient"):  # summed, not averaged: twice the step
        _compare(_observation(steps, pair, "cifar_cnn", "two", factor=2.0), reference, "cifar_cnn")


@pytest.mark.large
@requires_backend
@pytest.mark.parametrize("pair", PAIRS)
def test_two_replicas_agree_with_the_pytorch_twin(steps, pair):
    """Across implementations: the two-replica loss and gradient against the PyTorch twin's committed fingerprint
    (one replica, float32 envelope)."""
    two = _observation(steps, pair, "cifar_cnn", "two")
    try:
        compare_fingerprints(fingerprint_of(two, x=None, y=None), load_fingerprint(fingerprint_path("cifar_cnn")),
                             lr=1e-3)
    except ParityError as err:
        raise ParityError(f"{implementation_label(*pair)} on two replicas vs the PyTorch twin: {err}") from None


@pytest.mark.large
@requires_backend
@pytest.mark.parametrize("pair", PAIRS)
def test_an_epoch_of_fit_on_two_replicas_is_the_epoch_on_one(steps, pair):
    """The training path itself (the PyTorch loop under DDP, Keras' fit under a strategy or distribution): one epoch
    of Adam steps on full batches ends with the same loss and test accuracy on two replicas as on one."""
    one, two = (f"{implementation_label(*pair)}|cifar_cnn|{variant}|" for variant in ("one", "two"))
    np.testing.assert_allclose(steps[two + "fit_loss"], steps[one + "fit_loss"], rtol=1e-4)
    assert steps[two + "fit_accuracy"] == steps[one + "fit_accuracy"]


def _batchnorm_gap(steps, pair, variant) -> float:
    """The largest difference between ``variant``'s applied gradient and the one-replica gradient of ``bn_cnn``,
    relative to the largest gradient of its tensor."""
    two, reference = _observation(steps, pair, "bn_cnn", variant), _reference(steps, pair, "bn_cnn")
    return max(float(np.abs(two.grads[n] - g).max() / (np.abs(g).max() or 1.0)) for n, g in reference.grads.items())


@pytest.mark.large
@requires_backend
@pytest.mark.parametrize("pair", PAIRS)
def test_batchnorm_statistics_per_replica_are_a_measured_difference(steps, pair):
    gap = _batchnorm_gap(steps, pair, "two")
    if pair == ("keras", "jax"):  # sharded arrays: BatchNorm's mean and variance are over the global batch
        _compare(_observation(steps, pair, "bn_cnn", "two"), _reference(steps, pair, "bn_cnn"), "bn_cnn")
        assert gap < 1e-4, gap
        return
    with pytest.raises(ParityError):
        _compare(_observation(steps, pair, "bn_cnn", "two"), _reference(steps, pair, "bn_cnn"), "bn_cnn")
    assert gap > 100 * 1e-4 * NOISE_FACTOR, f"{implementation_label(*pair)}: per-replica BatchNorm moved only {gap:.2g}"


@pytest.mark.large
@requires_backend
def test_per_replica_batchnorm_on_mirroredstrategy_same_step_other_moving_statistics(steps):
    """tf_keras and keras[tensorflow] take the same per-replica gradient step (the difference is the engine's), but
    keep different moving statistics: tf.keras averages the replicas' moving means (the global batch's mean, as on one
    replica), Keras 3 keeps the first replica's, as torch DDP keeps rank 0's (its buffers are broadcast from rank 0)."""
    pairs = [p.values[0] for p in PAIRS if p.values[0][1] == "tensorflow"]
    if len(pairs) < 2:
        pytest.skip("tf_keras and keras[tensorflow] live in the tensorflow environment")
    tf_keras, keras_tf = (_observation(steps, pair, "bn_cnn", "two") for pair in pairs)
    states = tf_keras.state, keras_tf.state
    tf_keras.state = keras_tf.state = {}
    _compare(tf_keras, keras_tf, "bn_cnn")
    one = _reference(steps, pairs[0], "bn_cnn").state["bn/moving_mean"]
    np.testing.assert_allclose(states[0]["bn/moving_mean"], one, atol=1e-6)
    assert np.abs(states[1]["bn/moving_mean"] - one).max() > 1e-4


@pytest.mark.large
@requires_backend
@pytest.mark.parametrize("pair", SYNC_PAIRS)
def test_sync_batchnorm_closes_the_difference(steps, pair):
    key = f"{implementation_label(*pair)}|bn_cnn|two_sync|error"
    if pair[0] == "torch":  # SyncBatchNorm is GPU-only; on GPUs the branch below runs
        if key in steps:
            assert "SyncBatchNorm takes GPU tensors only" in str(steps[key])
            return
    report = _compare(_observation(steps, pair, "bn_cnn", "two_sync"), _reference(steps, pair, "bn_cnn"), "bn_cnn")
    assert report.max_rel_grad < 1e-3


# -- faults: a rank that dies or hangs ----------------------------------------------------------------------------

QUICK = ["--dataset", "synthetic", "--synthetic-train", "64", "--synthetic-test", "32", "--epochs", "1",
         "--batch-size", "32", "--replicas", "2", "--threads", "1"]
torch_only = pytest.mark.skipif(BACKEND != "torch", reason="runs in the torch environment (DDP's ranks are processes)")


def _train(tmp_path, *argv, fault):
    from twinbench.measuring.faults import FAULT_ENV, FAULT_RANK_ENV

    env = {**os.environ, FAULT_ENV: fault, FAULT_RANK_ENV: "1", "TWINBENCH_COLLECTIVE_TIMEOUT_S": "5",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "twinbench", "train", *argv, "--out", str(tmp_path), *QUICK], env=env,
                          capture_output=True, text=True, timeout=600)


def _records(directory):
    from twinbench.records import TIMELINE_SUFFIX, read_record

    return {p.name: read_record(p) for p in sorted(directory.glob("*.json")) if not p.name.endswith(TIMELINE_SUFFIX)}


@pytest.mark.large  # two ranks started twice, one of them left to hang until the collective times out
@torch_only
def test_a_rank_that_dies_or_hangs_fails_its_cell_with_a_record_and_the_matrix_goes_on(tmp_path):
    done = _train(tmp_path, "--env", "torch", "--models", "cifar_cnn,mnist_cnn", fault="crash@cifar_cnn,hang@mnist_cnn")
    assert done.returncode == 1, done.stdout + done.stderr
    records = _records(tmp_path)
    assert sorted(records) == ["cifar_cnn__torch__torch__synthetic__replicas-2.json",  # keras[torch]: no engine
                               "mnist_cnn__torch__torch__synthetic__replicas-2.json"]  # run after cifar_cnn failed
    died, hung = records.values()
    assert died["status"] == hung["status"] == "failed" and hung["cell"]["replicas"] == 2
    assert "Timed out" in hung["error"]["message"] or "timeout" in hung["error"]["message"].lower(), hung["error"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written


def test_records_name_the_engine_world_size_and_launcher(monkeypatch):
    from twinbench.backends.distributed import Replicas
    from twinbench.measuring.environment import LAUNCHER_ENV, launcher_of

    class Runner:
        replicas = Replicas()

    monkeypatch.setenv(LAUNCHER_ENV, "submitit")
    assert launcher_of(Runner()) == {"matrix": "submitit", "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                                     "cell": "single process", "engine": "single device", "world_size": 1}


@torch_only
def test_sync_batchnorm_without_a_gpu_is_one_line_before_any_rank_starts(tmp_path, capsys):
    import torch

    from twinbench.cli import main

    if torch.cuda.is_available():
        pytest.skip("SyncBatchNorm runs on GPUs")
    code = main(["train", "--impl", "torch", "--model", "cifar_cnn", "--sync-batchnorm", "--out", str(tmp_path),
                 *QUICK])
    assert code == 2 and "SyncBatchNorm takes GPU tensors only" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@torch_only  # framework-neutral; eager PyTorch trains the cell quickest
def test_the_profiler_samples_every_replica_device(monkeypatch):
    """Each GPU a cell's replicas run on gets its own NVML sampler (here, without NVML, each falls back to the host)."""
    from twinbench.backends.distributed import Replicas
    from twinbench.measuring.train import RunConfig, execute

    monkeypatch.setattr(Replicas, "gpu_indices", lambda self: [0, 1, 2])
    record = execute(RunConfig(Cell("cifar_cnn", "torch", "torch", "synthetic"), epochs=1, batch_size=16,
                               synthetic_train=16, synthetic_test=16))
    assert len(record["profile_devices"]) == 2  # devices 1 and 2 beside the run's own profiler (device 0)
    assert all(summary["n_samples"] >= 1 for summary in record["profile_devices"])
