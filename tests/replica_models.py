"""``bn_cnn``: the smallest network with BatchNorm, for the data-parallel tests (``tests/test_replicas.py``) only.

conv 3x3 (8, no bias) -> BatchNorm -> ReLU -> global average pooling -> dense, written in Keras 3, PyTorch and tf.keras with
the same layer names. Global average pooling, not Flatten, so no weight needs permuting between layouts. BatchNorm
with PyTorch's epsilon and momentum (Keras' momentum = 1 - PyTorch's). Registered by ``register()``, in the test's child
processes only, so the registry the other tests iterate over stays the library's own.
"""

from __future__ import annotations

BN = {"epsilon": 1e-5, "momentum": 0.9}
NAME = "bn_cnn"


def _keras_like(module, *, input_shape, num_classes):
    layers = module.layers
    inputs = module.Input(shape=input_shape)
    # Stride 1, odd kernel: symmetric padding. No bias: BatchNorm subtracts any constant, so its gradient would be
    # rounding noise around zero.
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(**BN, name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return module.Model(inputs, outputs, name=NAME)


def keras_bn_cnn(*, input_shape, num_classes):
    import keras

    return _keras_like(keras, input_shape=input_shape, num_classes=num_classes)


def tf_keras_bn_cnn(*, input_shape, num_classes):
    import tf_keras

    return _keras_like(tf_keras, input_shape=input_shape, num_classes=num_classes)


def torch_bn_cnn(*, input_shape, num_classes):
    import torch
    from torch import nn

    class BnCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[-1], 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.logits = nn.Linear(8, num_classes)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.logits(x.mean(dim=(2, 3)))

    return BnCnn()


def register() -> str:
    """Register ``bn_cnn`` (once) and return its name."""
    from twinbench.models import list_models
    from twinbench.models._registry import ModelSpec, TwinCase, register_model

    if NAME not in list_models():
        register_model(ModelSpec(
            name=NAME, builders={"keras": keras_bn_cnn, "torch": torch_bn_cnn, "tf_keras": tf_keras_bn_cnn},
            input_shape=(8, 8, 3), num_classes=10, paper="Ioffe and Szegedy, Batch Normalization, ICML 2015",
            summary="test-only: conv-BatchNorm-ReLU-pool-dense", params=322, forward_flops={"8x8x3": 27_808},
            twin_case=TwinCase(batch=8)))
    return NAME
