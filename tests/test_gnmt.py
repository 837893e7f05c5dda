"""GNMT's twins are the same network: parameters, logits, per-token loss, gradients and one SGD step.

In each environment (``tests/gnmt_twins.py`` observes each implementation):

- torch: the PyTorch twin against keras[torch] in-process, and against its committed fingerprint (so the file
  cannot go stale); twins that get one parity detail wrong fail: the Keras bias loaded into both PyTorch biases
  (not summed), the gate blocks in another order, and the tutorial ``nn.LSTM`` with both biases trained;
- tensorflow: tf.keras against keras[tensorflow] in-process, and both against the PyTorch fingerprint;
- jax: keras[jax] against the PyTorch fingerprint.

The tolerances are ``twinbench.twins.parity``'s fixed float32 ones: at the small twin case (three layers of 32 units,
six decoder steps) float32 rounding stays far below them.
"""

from __future__ import annotations

import gnmt_twins as twins
import numpy as np
import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, requires_backend
from twinbench.twins.parity import (
    ParityError,
    batch_checksum,
    compare_fingerprints,
    compare_observations,
    fingerprint_of,
    load_fingerprint,
)

pytestmark = requires_backend
needs_torch = pytest.mark.skipif(BACKEND != "torch", reason="needs the PyTorch twin (torch environment)")
needs_tf_keras = pytest.mark.skipif(("tf_keras", "tensorflow") not in IMPLEMENTATIONS_HERE,
                                    reason="needs tf.keras (tensorflow environment)")


@pytest.fixture(scope="module")
def batch():
    return twins.twin_batch()


@pytest.fixture(scope="module")
def keras_observed(batch):
    model = twins.keras_model()
    assert model.count_params() == twins.params()
    exported = twins.keras_weights(model)
    assert all(np.array_equal(exported[name], value) for name, value in twins.canonical().items())
    return twins.observe_keras(model, batch)


@pytest.fixture(scope="module")
def tf_keras_model():
    """Built once: tf.keras' LSTMs register their cuDNN and standard functions when built (seconds each)."""
    return twins.tf_keras_model()


def _check_twin(actual, expected):
    compare_observations(actual, expected, lr=twins.SGD_LR)  # logits, loss, gradients (steps: below)
    twins.check_sgd_steps(actual, expected)


def _check_fingerprint(observation, batch):
    source, _, labels = batch
    expected = load_fingerprint(twins.FINGERPRINT)
    assert batch_checksum(source) == expected["x_crc32"], "the twin batch has changed: python -m tests.gnmt_twins"
    assert np.array_equal(labels, expected["y"])
    compare_fingerprints(fingerprint_of(observation, x=source, y=labels), expected, lr=twins.SGD_LR)


@needs_torch  # the formula is framework-free: one environment builds it (the others check the small size)
def test_parameter_count_formula():
    """``param_count`` is what Keras builds, at the small size and at a wider, deeper one."""
    from twinbench.models.gnmt.config import GNMTConfig, param_count
    from twinbench.models.gnmt.keras_model import gnmt

    wide = GNMTConfig(hidden=48, num_layers=4)
    assert gnmt(input_shape=(5, 5), num_classes=101, size=wide).count_params() == param_count(wide, 101)
    assert twins.keras_model().count_params() == twins.params()


def test_flops_match_a_hand_count():
    """LSTMs cost 4 gates x (inputs + units) x units MACs per step, the attention T x S x (U + H), Dense layers as
    usual, the embedding nothing (``twinbench.models.flops``)."""
    from twinbench.models.flops import FLOPS_PER_MAC, forward_flops

    h, v, s, t = 32, twins.VOCABULARY, twins.SOURCE_LENGTH, twins.TARGET_LENGTH  # the small size: 3 layers

    def lstm(steps, inputs):
        return steps * 4 * h * (inputs + h)

    encoder = 2 * lstm(s, h) + lstm(s, 2 * h) + lstm(s, h)
    attention = t * h * h + s * h * h + t * s * (h + h)  # query and key projections, scores and context
    decoder = lstm(t, h) + 2 * lstm(t, 2 * h) + t * h * v  # ... and the logits
    assert forward_flops(twins.keras_model()) == FLOPS_PER_MAC * (encoder + attention + decoder) == 956_672


def test_unknown_size_is_one_line():
    from twinbench.models.gnmt.config import gnmt_config

    with pytest.raises(ValueError, match="Unknown GNMT size 'huge'. Valid choices: reference, small."):
        gnmt_config("huge")


# -- torch environment ---------------------------------------------------------------------------------------------
@needs_torch
def test_torch_twin_equals_keras(batch, keras_observed):
    module = twins.torch_model()
    assert twins.torch_params(module) == twins.params()
    exported = twins.torch_weights(module)
    assert all(np.array_equal(exported[name], value) for name, value in twins.canonical().items())
    _check_twin(twins.observe_torch(module, batch), keras_observed)


@needs_torch
def test_torch_fingerprint_is_current(batch):
    _check_fingerprint(twins.observe_torch(twins.torch_model(), batch), batch)


@needs_torch
def test_biases_not_summed_is_caught(batch, keras_observed):
    """Loading the Keras bias into both ``b_ih`` and ``b_hh`` doubles it: the logits show it."""
    layout, _ = twins.torch_layout()
    module = twins.torch_model()
    state = module.state_dict()
    for path, second in layout.summed_biases.items():  # b_hh receives the Keras bias too, instead of 0
        state[second] = state[layout.keys[path]].clone()
    module.load_state_dict(state)
    with pytest.raises(ParityError, match="logits 'output' differs"):
        _check_twin(twins.observe_torch(module, batch), keras_observed)


@needs_torch
def test_gate_order_is_caught(batch, keras_observed):
    """PyTorch's gate blocks read as ``i, f, o, g`` instead of ``i, f, g, o``: same shapes, other numbers."""
    weights = dict(twins.canonical())
    for name, value in weights.items():
        if "lstm_cell" in name:  # swap the last two gate blocks of every kernel, recurrent kernel and bias
            i, f, c, o = np.split(value, 4, axis=-1)
            weights[name] = np.concatenate([i, f, o, c], axis=-1)
    module = twins.torch_model(weights)
    with pytest.raises(ParityError, match="logits 'output' differs"):
        _check_twin(twins.observe_torch(module, batch), keras_observed)


@needs_torch
def test_two_trained_biases_are_caught(batch, keras_observed):
    """The tutorial ``nn.LSTM`` trains ``b_hh`` too: more parameters, and one SGD step moves each bias sum twice."""
    from twinbench.models.gnmt.config import gnmt_config, lstm_directions

    module = twins.torch_model()
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    config = gnmt_config(twins.OPTIONS["size"])
    assert twins.torch_params(module) == twins.params() + 4 * config.hidden * lstm_directions(config)
    observed = twins.observe_torch(module, batch)
    compare_observations(observed, keras_observed, lr=twins.SGD_LR)  # forward and gradients: the same
    with pytest.raises(ParityError, match="SGD step of '.*lstm_cell/bias' differs"):
        twins.check_sgd_steps(observed, keras_observed)


# -- tensorflow environment ------------------------------------------------------------------------------------------
@needs_tf_keras
def test_tf_keras_twin_equals_keras(batch, keras_observed, tf_keras_model):
    from twinbench.backends.tf_keras_runner import neutral_variables

    model = tf_keras_model
    assert model.count_params() == twins.params()
    assert all(np.array_equal(neutral_variables(model)[name].numpy(), value)
               for name, value in twins.canonical().items())
    observed = twins.observe_tf_keras(model, batch)
    _check_twin(observed, keras_observed)
    _check_fingerprint(observed, batch)


# -- every environment ----------------------------------------------------------------------------------------------
def test_keras_matches_the_fingerprint(batch, keras_observed):
    """keras[BACKEND] against the PyTorch twin's committed fingerprint."""
    _check_fingerprint(keras_observed, batch)


# -- which kernel each LSTM runs (backends/recurrent.py, recorded in the runners' describe()) ---------------------
def test_keras_lstm_kernels():
    """The source mask reaches every encoder layer (Keras propagates it): on a GPU, the torch and jax backends run
    those in the generic loop and only the decoder in cuDNN; TensorFlow runs all in cuDNN. No GPU: the generic loop."""
    from twinbench.backends.recurrent import CUDNN, keras_lstm_kernels

    model = twins.keras_model()
    assert set(keras_lstm_kernels(model, BACKEND, gpu=False).values()) == {"generic loop (no GPU)"}
    on_gpu = keras_lstm_kernels(model, BACKEND, gpu=True)
    assert len(on_gpu) == 7  # the bidirectional layer's two directions, two more encoder layers, three decoder layers
    for name, kernel in on_gpu.items():
        if name.startswith("decoder"):
            assert kernel == CUDNN
        elif BACKEND == "tensorflow":
            assert kernel == f"{CUDNN} (right-padded mask)"
        else:
            assert kernel.startswith("generic loop (masked"), (name, kernel)


@needs_tf_keras
def test_tf_keras_lstm_kernels(tf_keras_model):
    from twinbench.backends.recurrent import CUDNN, tf_keras_lstm_kernels

    model = tf_keras_model
    assert set(tf_keras_lstm_kernels(model, gpu=False).values()) == {"standard_lstm (no GPU)"}
    on_gpu = tf_keras_lstm_kernels(model, gpu=True)
    assert on_gpu["decoder_lstm_0"] == CUDNN and on_gpu["encoder_lstm_1"].startswith(f"{CUDNN} (if the mask")


@needs_torch
def test_torch_lstm_kernels_are_what_ran(batch):
    """What ``watch_lstms`` records is what the profiler sees: on a CPU, oneDNN's fused LSTM for every unpacked
    float32 layer, ATen's loop for the packed bidirectional one."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from twinbench.backends.recurrent import torch_lstm_kernels, watch_lstms

    module = twins.torch_model()
    watch_lstms(module)
    source, decoder_input, _ = (torch.from_numpy(a) for a in batch)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as profiler:
        module(source, decoder_input)
    kernels = torch_lstm_kernels(module)
    assert kernels["encoder_lstm.0"] == "ATen loop (packed sequence)"
    fused = [name for name, kernel in kernels.items() if kernel == "oneDNN fused LSTM"]
    assert len(kernels) == 6 and (len(fused) == 5 or not torch.backends.mkldnn.is_available())
    ran = sum(event.count for event in profiler.key_averages() if event.key == "aten::mkldnn_rnn_layer")
    assert ran == len(fused)


def test_reference_size_parameters():
    """The MLPerf size: 1024 units, 4 layers, 32,317 shared tokens (counted without building 160M weights)."""
    from twinbench.models.gnmt.config import (
        PARAMS_REFERENCE,
        REFERENCE_VOCABULARY,
        SIZES,
        lstm_directions,
        param_count,
    )

    assert param_count(SIZES["reference"], REFERENCE_VOCABULARY) == PARAMS_REFERENCE
    assert 4 * 1024 * lstm_directions(SIZES["reference"]) == 36_864  # what two trained nn.LSTM biases would add
