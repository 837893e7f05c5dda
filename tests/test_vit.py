"""The Vision Transformer: the twin check catches the classic porting mistakes, and torchvision checkpoints load.

The registry-parametrized twin tests (``tests/test_parity.py``) already prove ``vit_tiny`` and one block of
``vit_b_16`` identical in every implementation, and ``vit_b_16``'s 86,567,656 parameters in every implementation.
Here: two deliberately wrong Keras definitions must fail against torchvision's committed fingerprint (the check can
fail), and a torchvision ``VisionTransformer`` ``.pth`` (a small random one, in the real format) becomes the
neutral mapping and gives torchvision's own logits.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BACKEND, requires_backend
from twinbench.twins.parity import ParityError

pytestmark = requires_backend
MODEL = "vit_tiny"
needs_torch = pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch twin and .pth files (torch environment)")


def _against_torchvision():
    """The Keras definition (as patched) at vit_tiny's twin case, compared with torchvision's committed fingerprint.

    Unpatched, this is ``tests/test_parity.py::test_twin_parity[vit_tiny-keras[torch]]``, which passes.
    """
    from parity_fixtures import canonical, fixture_path
    from twinbench.twins.parity import (
        committed_noise,
        compare_fingerprints,
        fingerprint_of,
        load_fingerprint,
        observe_twin,
    )

    twin = observe_twin("keras", "torch", MODEL, weights=canonical(MODEL), noise=committed_noise(MODEL), float64=False)
    actual = fingerprint_of(twin.observation, x=twin.x, y=twin.y, noise=twin.noise)
    compare_fingerprints(actual, load_fingerprint(fixture_path(MODEL)), lr=1e-3)


@needs_torch
def test_tanh_gelu_is_caught(monkeypatch):
    """keras.ops.gelu's default, the tanh approximation, instead of nn.GELU()'s exact erf form."""
    from twinbench.models.vit import keras_model

    class TanhGELU(keras_model.GELU):
        def __init__(self, *, approximate=True, **kwargs):
            super().__init__(approximate=True, **kwargs)

    monkeypatch.setattr(keras_model, "GELU", TanhGELU)
    with pytest.raises(ParityError, match="logits"):  # e.g. -0.118202 vs -0.117949, tolerance 8.8e-05
        _against_torchvision()


@needs_torch
def test_q_and_k_swapped_in_the_packed_projection_are_caught(monkeypatch):
    """Reading torch's packed in_proj_weight as k, q, v instead of q, k, v: every score matrix transposed."""
    from twinbench.models.vit import keras_model

    class SwappedQK(keras_model.SelfAttention):
        def split_qkv(self, qkv):
            q, k, v = super().split_qkv(qkv)
            return k, q, v

    monkeypatch.setattr(keras_model, "SelfAttention", SwappedQK)
    with pytest.raises(ParityError, match="logits"):
        _against_torchvision()


def test_images_that_are_not_square_multiples_of_the_patch_are_refused():
    from twinbench.models import build_model

    with pytest.raises(ValueError, match="multiple of its patch size 4. Received: input_shape=\\(30, 30, 3\\)"):
        build_model(MODEL, "keras", input_shape=(30, 30, 3))
    with pytest.raises(ValueError, match="square"):
        build_model(MODEL, "keras", input_shape=(32, 64, 3))


def test_every_torchvision_key_has_one_keras_weight():
    """The mapping is a bijection onto torchvision's state_dict keys (vit_b_16's, without building the Keras model;
    the keys do not depend on the width, so torchvision's class is built 12 blocks deep but narrow)."""
    from twinbench.models.vit.config import CONFIGS, torch_key

    paths = ["conv_proj/kernel", "conv_proj/bias", "class_token/token", "pos_embedding/embedding",
             "encoder_ln/gamma", "encoder_ln/beta", "head/kernel", "head/bias"]
    for i in range(CONFIGS["vit_b_16"].num_layers):
        for layer in ("ln_1", "ln_2"):
            paths += [f"encoder_layer_{i}_{layer}/gamma", f"encoder_layer_{i}_{layer}/beta"]
        for layer in ("attention_qkv", "attention_out", "mlp_1", "mlp_2"):
            paths += [f"encoder_layer_{i}_{layer}/kernel", f"encoder_layer_{i}_{layer}/bias"]
    keys = {torch_key(path) for path in paths}
    assert len(keys) == len(paths) == 152
    assert "encoder.layers.encoder_layer_11.self_attention.in_proj_weight" in keys
    assert "encoder.layers.encoder_layer_11.mlp.3.bias" in keys and "heads.head.weight" in keys
    if BACKEND == "torch":
        from torchvision.models.vision_transformer import VisionTransformer

        narrow = VisionTransformer(image_size=32, patch_size=16, num_layers=12, num_heads=1, hidden_dim=4, mlp_dim=4)
        assert keys == set(narrow.state_dict())


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    """A random torchvision ``VisionTransformer`` of vit_tiny's configuration (10 classes), saved as torchvision saves
    its weights; every tensor drawn at random, so that the zero class token and head are checked too."""
    if BACKEND != "torch":
        pytest.skip("writing a .pth needs PyTorch")
    import torch

    from twinbench.models import build_model

    torch.manual_seed(123)
    module = build_model(MODEL, "torch")
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.2)
    path = tmp_path_factory.mktemp("ckpt") / "vit_tiny-random.pth"
    torch.save(module.state_dict(), path)
    return path, module.eval()


@needs_torch
def test_torchvision_checkpoint_becomes_the_neutral_mapping(torchvision_checkpoint):
    from twinbench.backends.checkpoints import read_checkpoint

    path, module = torchvision_checkpoint
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    weights, info = read_checkpoint(path, MODEL)
    assert info["num_classes"] == 10 and len(weights) == len(state)
    qkv = "encoder.layers.encoder_layer_1.self_attention.in_proj_weight"
    np.testing.assert_array_equal(weights["encoder_layer_1_attention_qkv/kernel"], state[qkv].T)  # (3D, D) -> (D, 3D)
    np.testing.assert_array_equal(weights["conv_proj/kernel"], state["conv_proj.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(weights["class_token/token"], state["class_token"])
    np.testing.assert_array_equal(weights["pos_embedding/embedding"], state["encoder.pos_embedding"])


@needs_torch
def test_converted_checkpoint_gives_torchvisions_logits(torchvision_checkpoint, tmp_path):
    """convert-weights writes the neutral .npz; the Keras definition with it computes what torchvision computes."""
    import torch

    from twinbench.backends import get_runner
    from twinbench.backends.tolerances import LOGITS_ATOL
    from twinbench.cli import main
    from twinbench.models.weights import load_weights
    from twinbench.twins.parity import parity_batch

    path, module = torchvision_checkpoint
    npz = tmp_path / "vit_tiny.npz"
    assert main(["convert-weights", str(path), str(npz), "--model", MODEL]) == 0
    x, _ = parity_batch((32, 32, 3), 10, batch=4)
    with torch.no_grad():
        expected = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    runner = get_runner("keras", "torch")
    actual = runner.predict(runner.prepare(MODEL, input_shape=(32, 32, 3), num_classes=10,
                                           weights=load_weights(npz)), x)
    assert np.abs(expected).max() > 0.1  # not a trivially zero network
    np.testing.assert_allclose(actual, expected, atol=LOGITS_ATOL * np.abs(expected).max())
