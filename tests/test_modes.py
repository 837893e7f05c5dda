"""The twins in every execution mode (``twinbench.backends.modes.Mode``): compiled, in mixed precision and in other layouts, each
implementation still computes the network of the PyTorch twin, and a mode this machine cannot run is one line.

Each implementation this process can run is checked on ``cifar_cnn`` (small enough to compile in seconds):

- compiled (``--jit on``: torch.compile, XLA, jax.jit) against itself not compiled (``--jit off``: eager PyTorch,
  a plain tf.function, JAX op by op), and against the PyTorch twin's committed float32 fingerprint, with the
  float32 envelope of ``twinbench.twins.parity``: compiling changes the kernels, not the network;
- in another layout (Keras ``channels_first``, PyTorch ``channels_last``) against the same fingerprint;
- in ``mixed_bfloat16`` against the PyTorch twin's committed *bfloat16* fingerprint
  (``tests/parity/cifar_cnn__precision-mixed_bfloat16.npz``), whose envelope is measured, not guessed: the PyTorch
  twin's bfloat16 error against its own float64 copy (``python -m tests.parity_fixtures``); an implementation that
  has a float64 copy also brings its own bfloat16 error, and that copy must land within the envelope. A twin that
  is a different network still fails under bfloat16.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, ROOT, impl_id, requires_backend
from parity_fixtures import canonical, fixture_path, parity_case
from twinbench.backends import BackendError
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.backends.tolerances import NOISE_FACTOR
from twinbench.twins.parity import (
    ParityError,
    check_against_fingerprint,
    check_in_process,
    committed_noise,
    compare_observations,
    compare_twins,
    load_fingerprint,
    observe_twin,
)

pytestmark = requires_backend

MODEL = "cifar_cnn"
BF16 = Mode(precision="mixed_bfloat16")
LAYOUT = {"keras": Mode(data_format="channels_first"), "torch": Mode(memory_format="channels_last")}
PAIRS = [pytest.param(pair, id=impl_id(pair)) for pair in IMPLEMENTATIONS_HERE]
# The bfloat16 tests share the Keras observation (``_keras_bf16``'s cache): one pytest-xdist worker runs them all
# (``--dist loadgroup``, pyproject.toml).
BF16_PAIRS = [pytest.param(pair, id=impl_id(pair), marks=pytest.mark.xdist_group("modes-bfloat16"))
              for pair in IMPLEMENTATIONS_HERE]


def _observe(pair, mode, *, float64=False):
    """``pair`` in ``mode``, with the envelope of its precision (compilation and layout have float32's)."""
    noise = committed_noise(MODEL, Mode(precision=mode.precision))
    return observe_twin(*pair, MODEL, weights=canonical(MODEL), noise=noise, mode=mode, float64=float64)


@functools.lru_cache(maxsize=1)
def _keras_bf16():
    """keras[BACKEND] in bfloat16 with its float64 copy, observed once: a native twin's test and Keras' own use it."""
    return _observe(("keras", BACKEND), BF16, float64=True)


def _against_fingerprint(here, pair, mode=DEFAULT_MODE):
    """The PyTorch twin's fingerprint in ``mode``'s precision."""
    assert here.round_trip_error is None, here.round_trip_error
    try:
        check_against_fingerprint(here, load_fingerprint(fixture_path(MODEL, Mode(precision=mode.precision))),
                                  lr=1e-3)
    except ParityError as err:
        raise ParityError(f"{impl_id(pair)} in {mode} vs the PyTorch fingerprint: {err}") from None


@pytest.mark.parametrize("pair", PAIRS)
def test_compiled_equals_not_compiled_and_the_pytorch_twin(pair):
    compiled = _observe(pair, Mode(jit="on"))
    plain = _observe(pair, Mode(jit="off"))
    compare_observations(compiled.observation, plain.observation, lr=1e-3, noise=committed_noise(MODEL),
                         factor=NOISE_FACTOR)
    _against_fingerprint(compiled, pair)


@pytest.mark.parametrize("pair", [p for p in PAIRS if p.values[0][0] in LAYOUT])
def test_other_layout_is_the_same_network(pair):
    mode = LAYOUT[pair[0]]
    if pair[1] == "tensorflow":  # the twin tests switch oneDNN off (conftest.py), TensorFlow's CPU NCHW kernels need it
        with pytest.raises(BackendError, match="channels_first cannot run here: .*oneDNN"):
            _observe(pair, mode)
        return  # with oneDNN on: the next test, a child process (large tier)
    here = _observe(pair, mode)
    _against_fingerprint(here, pair, mode)


@pytest.mark.large  # a child process that starts TensorFlow with oneDNN on
@pytest.mark.skipif(("keras", "tensorflow") not in IMPLEMENTATIONS_HERE, reason="keras[tensorflow]: the tensorflow environment")
def test_other_layout_on_tensorflow_with_onednn_is_the_same_network():
    pair = ("keras", "tensorflow")
    _run_with_onednn(f"from test_modes import _observe, _against_fingerprint; from twinbench.cell import Mode; "
                     f"_against_fingerprint(_observe({pair!r}, Mode(data_format='channels_first')), {pair!r})")


@pytest.mark.skipif(BACKEND != "torch", reason="5 s on torch, 46 s on JAX: one backend shows the definition")
def test_resnet50_channels_first_is_the_same_network():
    """BatchNorm's axis, padding and pooling in the other layout, where ResNet50 has them all (its 64x64 twin case).
    (MobileNetV2's depthwise convolutions pass too: checked by hand, not in the suite.)"""
    here = observe_twin("keras", BACKEND, "resnet50", weights=canonical("resnet50"), noise=committed_noise("resnet50"),
                        mode=LAYOUT["keras"], float64=False)
    assert here.round_trip_error is None, here.round_trip_error
    check_against_fingerprint(here, load_fingerprint(fixture_path("resnet50")), lr=1e-3)


def _run_with_onednn(code: str) -> None:
    """Run ``code`` in a fresh process of this environment with TensorFlow's oneDNN kernels on (its default)."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", f"import conftest; {code}"], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("pair", BF16_PAIRS)
def test_mixed_bfloat16_twins_agree_within_the_measured_envelope(pair):
    here = _keras_bf16() if pair[0] == "keras" else _observe(pair, BF16, float64=pair[0] != "torch")
    _against_fingerprint(here, pair, BF16)  # for torch: the committed bfloat16 fingerprint is current
    if pair[0] != "keras":  # and tensor by tensor against the Keras definition in this process
        keras_here = _keras_bf16()
        check_in_process(here, keras_here, lr=1e-3, with_reference=pair[0] == "torch")


def test_the_bfloat16_envelope_is_measured_and_far_from_float32():
    """The envelope is the PyTorch twin's bfloat16 error against float64: hundreds of times float32's, still a
    small share of the logits (so a different network stands out, next test)."""
    bf16, fp32 = committed_noise(MODEL, BF16), committed_noise(MODEL)
    logits = np.abs(load_fingerprint(fixture_path(MODEL, BF16))["logits"]).max()
    assert bf16["logits"] > 50 * fp32["logits"]
    assert NOISE_FACTOR * bf16["logits"] < 0.2 * logits


@pytest.mark.skipif(BACKEND != "torch", reason="needs the PyTorch twin (torch environment)")
def test_a_different_network_still_fails_under_bfloat16():
    from torch import nn

    from twinbench.backends import get_runner
    from twinbench.backends.torch_runner import TorchRunner
    from twinbench.models.small_cnn.torch_model import SmallCNN

    class NoHiddenRelu(SmallCNN):
        def forward(self, x):
            x = self.pool2(nn.functional.relu(self.conv2(self.pool1(nn.functional.relu(self.conv1(x))))))
            return self.logits(self.dense1(self.flatten(x)))  # forgot the ReLU

    class WrongRunner(TorchRunner):
        def build(self, model_name, *, input_shape, num_classes, **options):
            module = super().build(model_name, input_shape=input_shape, num_classes=num_classes)
            wrong = NoHiddenRelu(in_channels=3, image_size=32, num_classes=num_classes, filters=(32, 64),
                                 dense_units=64)
            wrong.twinbench_layout, wrong.twinbench_shapes = module.twinbench_layout, module.twinbench_shapes
            return wrong.to(self.device)

    input_shape, num_classes, x, y = parity_case(MODEL)
    reference = get_runner("keras", "torch", mode=BF16)
    reference.setup(seed=0)
    ref_model = reference.prepare(MODEL, input_shape=input_shape, num_classes=num_classes, weights=canonical(MODEL))
    wrong = WrongRunner()
    wrong.mode = BF16
    wrong.setup(seed=0)
    model = wrong.prepare(MODEL, input_shape=input_shape, num_classes=num_classes, weights=canonical(MODEL))
    with pytest.raises(ParityError, match="logits|output"):
        compare_twins(reference, ref_model, wrong, model, x=x, y=y, noise=committed_noise(MODEL, BF16))


def test_tf32_on_a_cpu_is_one_line_before_training(tmp_path, capsys):
    from twinbench.cli import main

    pair = IMPLEMENTATIONS_HERE[0]
    code = main(["train", "--model", MODEL, "--impl", pair[0], "--backend", pair[1], "--precision", "tf32",
                 "--epochs", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--precision tf32 cannot run here" in err and "Available here: float32, mixed_bfloat16" in err
    assert not list(tmp_path.glob("*.json"))  # nothing ran


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile: torch environment")
def test_a_compilation_that_fails_is_a_failed_record(tmp_path, monkeypatch, capsys):
    import torch

    from twinbench.cli import main

    def broken_compile(model, *args, **kwargs):
        raise RuntimeError("inductor: C++ compile failed (simulated)")

    monkeypatch.setattr(torch, "compile", broken_compile)
    code = main(["train", "--model", MODEL, "--impl", "torch", "--jit", "on", "--epochs", "1",
                 "--out", str(tmp_path)])
    assert code == 1
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert path.name == "cifar_cnn__torch__torch__digits__jit-on.json"
    assert record["status"] == "failed" and "C++ compile failed" in record["error"]["message"]
    assert record["cell"]["jit"] == "on"
