"""The torch-faithful pieces the matched definitions are built from (models/common/).

- PyTorch's adaptive average pooling windows and our Keras 3 and tf.keras layers;
- BatchNorm's moving variance: PyTorch and tf.keras' fused kernel use the unbiased batch variance, Keras 3
  the biased one; ``TorchBatchNormalization`` makes Keras 3 do what PyTorch does;
- the tf.keras twins really use the fused kernel (else their moving variance would be the biased one).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BACKEND, requires_backend
from twinbench.models.common.pooling import adaptive_average_pool_2d, adaptive_pool_windows

pytestmark = requires_backend

SIZES = [1, 2, 3, 5, 7, 9, 14, 15]


def test_adaptive_pool_windows_follow_pytorch_formula():
    assert adaptive_pool_windows(1, 7) == [(0, 1)] * 7  # a 1x1 map is copied, as VGG19 does at 32x32
    assert adaptive_pool_windows(14, 7) == [(2 * i, 2 * i + 2) for i in range(7)]
    assert adaptive_pool_windows(10, 7) == [(0, 2), (1, 3), (2, 5), (4, 6), (5, 8), (7, 9), (8, 10)]  # overlapping


@pytest.mark.skipif(BACKEND != "torch", reason="needs PyTorch")
@pytest.mark.parametrize("size", SIZES)
def test_reference_pooling_matches_pytorch(size):
    import torch

    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), (7, 7))
    np.testing.assert_allclose(adaptive_average_pool_2d(x, (7, 7)), expected.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", SIZES)
def test_keras_adaptive_pooling_matches_pytorch_formula(size):
    import keras

    from twinbench.models.common.keras_layers import AdaptiveAveragePooling2D

    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    actual = keras.ops.convert_to_numpy(AdaptiveAveragePooling2D((7, 7))(x))
    np.testing.assert_allclose(actual, adaptive_average_pool_2d(x, (7, 7)), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="needs tf.keras")
@pytest.mark.parametrize("size", SIZES)
def test_tf_keras_adaptive_pooling_matches_pytorch_formula(size):
    from twinbench.models.common.tf_keras_layers import AdaptiveAveragePooling2D

    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    np.testing.assert_allclose(AdaptiveAveragePooling2D((7, 7))(x).numpy(), adaptive_average_pool_2d(x, (7, 7)),
                               rtol=1e-5, atol=1e-6)


def _small_batch():
    """Two values per channel (a 1x1 map, batch 2): the unbiased variance is twice the biased one."""
    return np.random.default_rng(0).normal(size=(2, 1, 1, 5)).astype(np.float32)


def test_torch_batch_normalization_updates_like_pytorch():
    import keras

    from twinbench.models.common.keras_layers import TorchBatchNormalization

    x = _small_batch()
    layer = TorchBatchNormalization()
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # var: biased
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)  # normalised: biased
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), 0.9 + 0.1 * var * 2, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0.1 * mean, rtol=1e-5, atol=1e-7)


def test_stock_keras_batch_normalization_keeps_the_biased_variance():
    """Why TorchBatchNormalization exists (if Keras changes this, the subclass may become unnecessary)."""
    import keras

    x = _small_batch()
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    layer(x, training=True)
    var = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), 0.9 + 0.1 * var, rtol=1e-5)


def test_torch_batch_normalization_variance_survives_a_large_mean():
    """Two-pass variance: a channel with mean 1000 and std 0.01 still normalises to unit variance."""
    import keras

    from twinbench.models.common.keras_layers import TorchBatchNormalization

    x = (1000.0 + 0.01 * np.random.default_rng(1).normal(size=(4, 8, 8, 3))).astype(np.float32)
    out = keras.ops.convert_to_numpy(TorchBatchNormalization(epsilon=1e-12)(x, training=True))
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, rtol=1e-2)


@pytest.mark.skipif(BACKEND != "torch", reason="needs PyTorch")
def test_torch_batch_normalization_equals_batchnorm2d_with_gradients():
    import keras
    import torch

    from twinbench.models.common.keras_layers import TorchBatchNormalization

    x = np.random.default_rng(2).normal(size=(3, 2, 2, 4)).astype(np.float32)
    ours = TorchBatchNormalization()
    xt = keras.ops.convert_to_tensor(x)
    xt.requires_grad_(True)
    out = ours(xt, training=True)
    (out * keras.ops.convert_to_tensor(np.arange(out.numel(), dtype=np.float32).reshape(out.shape))).sum().backward()

    reference = torch.nn.BatchNorm2d(4).train()
    xr = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    out_r = reference(xr)
    weights = torch.from_numpy(np.arange(out.numel(), dtype=np.float32).reshape(out.shape).transpose(0, 3, 1, 2).copy())
    (out_r * weights).sum().backward()

    np.testing.assert_allclose(out.detach().cpu().numpy(), out_r.detach().numpy().transpose(0, 2, 3, 1), atol=1e-5)
    np.testing.assert_allclose(xt.grad.cpu().numpy(), xr.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.moving_variance.value.detach().cpu().numpy(), reference.running_var.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(ours.moving_mean.value.detach().cpu().numpy(), reference.running_mean.numpy(),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="needs tf.keras")
def test_tf_keras_fused_batch_norm_keeps_the_unbiased_variance():
    from twinbench.models.common.tf_keras_layers import torch_batch_norm

    x = _small_batch()
    layer = torch_batch_norm(name="bn")
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2)) * 2, rtol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="needs tf.keras")
@pytest.mark.parametrize("model_name", ["resnet50", "mobilenet_v2"])
def test_tf_keras_twins_use_the_fused_kernel(model_name):
    import tf_keras

    from twinbench.models import build_model

    model = build_model(model_name, "tf_keras", input_shape=(32, 32, 3), num_classes=10)
    norms = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    assert norms and all(layer.fused for layer in norms)
