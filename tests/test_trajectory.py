"""``bench check --steps K``: the twins trained K steps stay within the envelope of the PyTorch model's own float32
drift from float64 (bench/twins/trajectory.py); a broken twin leaves it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import BACKEND, ROOT
from twinbench.twins.trajectory import FLOAT32_FLOOR, Step, Trajectory

PAIRS = ROOT / "tests" / "pairs"


def _step(loss_distance, loss_envelope, weight_distance, weight_envelope):
    return Step(loss_keras=1.0 + loss_distance, loss_torch=1.0, loss_exact=1.0 - loss_envelope,
                weight_distance=weight_distance, weight_envelope=weight_envelope)


def test_the_envelope_is_the_largest_drift_so_far_and_never_below_the_float32_floor():
    trajectory = Trajectory([_step(0, 0, 0, 0), _step(0, 1e-4, 0, 2e-5), _step(0, 1e-5, 0, 1e-6)], factor=16)
    flat = [value for envelope in trajectory.envelopes() for value in envelope]
    assert flat == pytest.approx([FLOAT32_FLOOR, FLOAT32_FLOOR, 1e-4, 2e-5, 1e-4, 2e-5], rel=1e-6)
    assert trajectory.inside


@pytest.mark.parametrize(("steps", "first"), [
    ([_step(1e-5, 1e-6, 0, 1e-6), _step(3e-5, 1e-6, 0, 1e-6)], 2),   # the loss: 30 x the envelope at step 2
    ([_step(0, 1e-6, 1e-5, 1e-6), _step(0, 1e-6, 2e-5, 1e-6)], 2),   # the weights
    ([_step(0, 1e-6, 1e-3, 1e-6), _step(0, 1e-3, 1e-3, 1e-3)], 1),   # outside at once; a later envelope cannot excuse it
])
def test_a_distance_beyond_factor_times_the_envelope_is_outside(steps, first):
    trajectory = Trajectory(steps, factor=16)
    assert trajectory.first_outside() == first
    assert f"leaves the float64 envelope at step {first}" in trajectory.verdict()
    assert any(line.endswith("<- outside") and line.split()[0] == str(first) for line in trajectory.curve())


@pytest.fixture(scope="module")
def torch_env():
    pytest.importorskip("torch")
    if BACKEND != "torch":
        pytest.skip("the check runs Keras next to PyTorch: the torch environment")
    sys.path.insert(0, str(PAIRS))


def test_the_registered_cifar_cnn_stays_inside(torch_env):
    from twinbench.twins.own_pair import check_registered

    report = check_registered("cifar_cnn", steps=4)
    assert report.identical, str(report)
    assert len(report.trajectory.steps) == 4 and report.trajectory.inside
    last = report.trajectory.steps[-1]
    assert last.weight_distance > 0  # the two really trained apart a little (float32 noise), and stayed inside
    assert "inside the float64 envelope at every step" in str(report)


def test_a_broken_twin_leaves_the_envelope(torch_env):
    import tiny_resnet

    from twinbench import check

    report = check(lambda **kw: tiny_resnet.keras_model(proj_bn_epsilon=1e-3, **kw), tiny_resnet.torch_model,
                   input_shape=tiny_resnet.INPUT_SHAPE, num_classes=tiny_resnet.NUM_CLASSES, steps=2)
    assert not report.identical
    assert report.trajectory.first_outside() == 1
    step = report.trajectory.steps[0]
    assert step.loss_distance > 16 * step.loss_envelope


@pytest.mark.large  # a child process that starts PyTorch and Keras; the trajectories are checked in-process above
def test_cli_steps_exit_codes(torch_env):
    done = subprocess.run([sys.executable, "-m", "twinbench", "check", "docs/examples/tiny_resnet_pair.py", "--steps", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trajectory over 3 SGD steps: inside the float64 envelope" in done.stdout
