"""Pretrained starts: a torchvision checkpoint (or its neutral .npz) reaches every implementation intact.

The checkpoint is a small random one saved in torchvision's format (MobileNetV2, 1000 classes, drawn by
PyTorch with its own seed, so it differs from twinbench's canonical weights). Fine-tuning it on 10 classes
replaces the classifier and keeps every other tensor.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, impl_id, requires_backend
from twinbench.backends.checkpoints import CheckpointError, pretrained_weights, read_checkpoint
from twinbench.models.weights import WeightMismatchError, merge_pretrained, save_weights

pytestmark = requires_backend
MODEL = "mobilenet_v2"
SHAPE, CLASSES = (32, 32, 3), 10
HEAD = ["classifier/kernel", "classifier/bias"]
needs_torch = pytest.mark.skipif(BACKEND != "torch", reason="reading a .pth needs PyTorch (torch environment)")


@functools.lru_cache(maxsize=4)
def _canonical(num_classes, *, seed=0):
    """The Keras definition's initial weights (built once per class count: slow on the jax backend)."""
    from twinbench.backends import get_runner

    return get_runner("keras").canonical_weights(MODEL, input_shape=SHAPE, num_classes=num_classes, seed=seed)


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    """A random torchvision MobileNetV2 (1000 classes) saved as torchvision saves its weights."""
    if BACKEND != "torch":
        pytest.skip("writing a .pth needs PyTorch")
    import torch
    import torchvision

    torch.manual_seed(123)
    module = torchvision.models.mobilenet_v2(weights=None, num_classes=1000)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that they are checked too
        for buffer_name, buffer in module.named_buffers():
            if buffer_name.endswith(("running_mean", "running_var")):
                buffer.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "mobilenet_v2-random.pth"
    torch.save(module.state_dict(), path)
    return path, {k: v.numpy().copy() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def neutral_checkpoint(tmp_path_factory):
    """A neutral .npz at 1000 classes: the Keras definition's weights drawn with another seed."""
    path = tmp_path_factory.mktemp("npz") / "mobilenet_v2-seed7.npz"
    weights = _canonical(1000, seed=7)
    save_weights(path, weights)
    return path, weights


@needs_torch
def test_torchvision_checkpoint_becomes_the_neutral_mapping(torchvision_checkpoint):
    path, state = torchvision_checkpoint
    weights, info = read_checkpoint(path, MODEL)
    assert info["num_classes"] == 1000 and info["format"] == "torchvision state_dict"
    np.testing.assert_array_equal(weights["stem_conv/kernel"], state["features.0.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(weights["block2_depthwise_conv/kernel"],  # (C, 1, 3, 3) -> (3, 3, C, 1)
                                  state["features.2.conv.1.0.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(weights["head_bn/moving_variance"], state["features.18.1.running_var"])
    np.testing.assert_array_equal(weights["classifier/kernel"], state["classifier.1.weight"].T)


@needs_torch
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_checkpoint_reaches_every_implementation_with_a_new_head(torchvision_checkpoint, pair):
    from twinbench.backends import get_runner

    path, _ = torchvision_checkpoint
    initial = _canonical(CLASSES)
    weights, info = pretrained_weights(MODEL, path, canonical=initial)
    assert info["replaced"] == HEAD
    runner = get_runner(*pair)
    runner.setup(seed=0)
    model = runner.prepare(MODEL, input_shape=SHAPE, num_classes=CLASSES, weights=weights)
    loaded = runner.get_weights(model)
    checkpoint, _ = read_checkpoint(path, MODEL)
    for name, value in loaded.items():
        np.testing.assert_array_equal(value, initial[name] if name in HEAD else checkpoint[name], err_msg=name)


@needs_torch
def test_pretrained_twins_give_the_same_logits(torchvision_checkpoint):
    """torchvision with the checkpoint loaded by PyTorch itself == the Keras definition given the converted one."""
    import torch
    import torchvision

    from twinbench.backends import get_runner
    from twinbench.backends.tolerances import LOGITS_ATOL
    from twinbench.twins.parity import parity_batch

    path, _ = torchvision_checkpoint
    reference = torchvision.models.mobilenet_v2(weights=None, num_classes=1000)
    reference.load_state_dict(torch.load(path, weights_only=True))
    reference.eval()
    x, _ = parity_batch(SHAPE, 1000, batch=4)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    runner = get_runner("keras", "torch")
    weights, _ = pretrained_weights(MODEL, path, canonical=_canonical(1000))
    actual = runner.predict(runner.prepare(MODEL, input_shape=SHAPE, num_classes=1000, weights=weights), x)
    np.testing.assert_allclose(actual, expected, atol=LOGITS_ATOL * np.abs(expected).max())


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
def test_neutral_checkpoint_loads_anywhere(neutral_checkpoint, pair):
    from twinbench.backends import get_runner

    path, saved = neutral_checkpoint
    weights, info = pretrained_weights(MODEL, path, canonical=_canonical(CLASSES))
    assert info["replaced"] == HEAD and info["num_classes"] == 1000
    runner = get_runner(*pair)
    runner.setup(seed=0)
    loaded = runner.get_weights(runner.prepare(MODEL, input_shape=SHAPE, num_classes=CLASSES, weights=weights))
    np.testing.assert_array_equal(loaded["block5_project_conv/kernel"], saved["block5_project_conv/kernel"])


def test_same_class_count_replaces_nothing(neutral_checkpoint):
    path, saved = neutral_checkpoint
    weights, info = pretrained_weights(MODEL, path, canonical=_canonical(1000))
    assert info["replaced"] == []
    np.testing.assert_array_equal(weights["classifier/kernel"], saved["classifier/kernel"])


def test_a_misshapen_tensor_is_named():
    initial = {"conv/kernel": np.zeros((3, 3, 3, 8)), "fc/kernel": np.zeros((8, 10))}
    checkpoint = {"conv/kernel": np.zeros((3, 3, 3, 16)), "fc/kernel": np.zeros((8, 1000))}
    with pytest.raises(WeightMismatchError, match="'conv/kernel' has shape \\(3, 3, 3, 16\\)"):
        merge_pretrained(checkpoint, initial, head="fc")
    with pytest.raises(WeightMismatchError, match="'extra/bias' does not belong"):
        merge_pretrained({**initial, "extra/bias": np.zeros(3)}, initial, head="fc")
    with pytest.raises(WeightMismatchError, match="'fc/kernel' is missing"):
        merge_pretrained({"conv/kernel": initial["conv/kernel"]}, initial, head="fc")


@needs_torch
def test_a_checkpoint_of_another_model_is_refused(tmp_path, torchvision_checkpoint):
    import torch

    _, state = torchvision_checkpoint
    wrong = {k: torch.from_numpy(v) for k, v in state.items()}
    wrong["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)  # another stem width
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(WeightMismatchError, match="features.0.0.weight"):
        read_checkpoint(tmp_path / "wrong.pth", MODEL)
    del wrong["features.0.0.weight"]
    wrong["features.0.0.conv.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(wrong, tmp_path / "renamed.pth")
    with pytest.raises(WeightMismatchError, match="features.0.0"):
        read_checkpoint(tmp_path / "renamed.pth", MODEL)


def test_unreadable_checkpoints_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="Valid choices"):
        read_checkpoint(tmp_path / "weights.h5", MODEL)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.npz", MODEL)
    if BACKEND != "torch":
        (tmp_path / "x.pth").write_bytes(b"not a checkpoint")
        with pytest.raises(CheckpointError, match="convert-weights"):
            read_checkpoint(tmp_path / "x.pth", MODEL)


def test_keras_applications_variants_take_no_torchvision_checkpoint(tmp_path):
    from twinbench.backends.checkpoints import neutral_from_torch_state

    with pytest.raises(CheckpointError, match="no PyTorch twin"):
        neutral_from_torch_state("mobilenet_v2_kerasapps", {})


@needs_torch
@pytest.mark.large  # MobileNetV2 at full depth trained an epoch through the CLI; conversion and loading: above
def test_cli_fine_tunes_from_a_converted_checkpoint(tmp_path, torchvision_checkpoint, capsys):
    """convert-weights, then run --weights: the record says which weights were replaced."""
    import json

    from twinbench.cli import main

    path, _ = torchvision_checkpoint
    npz = tmp_path / "mobilenet_v2.npz"
    assert main(["convert-weights", str(path), str(npz), "--model", MODEL]) == 0
    assert main(["train", "--model", MODEL, "--impl", "torch", "--dataset", "synthetic", "--input-shape", "32x32x3",
                 "--num-classes", "10", "--epochs", "1", "--batch-size", "8", "--synthetic-train", "8",
                 "--synthetic-test", "8", "--weights", str(npz), "--out", str(tmp_path / "out"),
                 "--no-profiler"]) == 0
    record = json.loads(next((tmp_path / "out").glob("mobilenet_v2*torch*synthetic.json")).read_text())
    assert record["weights"]["source"] == "checkpoint" and record["weights"]["replaced"] == HEAD
    assert "accuracy_before" in record["results"] and "accuracy_after" in record["results"]


def test_cli_refuses_a_pth_outside_the_torch_environment(tmp_path, capsys):
    from twinbench.cli import EXIT_USAGE, main

    if BACKEND == "torch":
        pytest.skip("the torch environment reads .pth files")
    (tmp_path / "x.pth").write_bytes(b"")
    code = main(["train", "--model", MODEL, "--impl", "keras", "--backend", BACKEND, "--weights", str(tmp_path / "x.pth"),
                 "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "convert-weights" in capsys.readouterr().err
