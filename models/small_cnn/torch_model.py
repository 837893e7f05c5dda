"""The small CNNs as native PyTorch modules, written the way PyTorch tutorials write them.

Attribute names match the Keras layer names (``conv1`` ... ``logits``), so ``conv1.weight`` receives the
Keras ``conv1/kernel``. PyTorch works channels first (N, C, H, W); ``input_shape`` is still given as
``(H, W, C)`` so that every builder in twinbench takes the same arguments.
"""

import torch.nn.functional as F
from torch import nn

from twinbench.models.small_cnn.config import KERNEL_SIZE, POOL_SIZE, SMALL_CNNS, feature_map_size


class SmallCNN(nn.Module):
    """conv -> relu -> pool -> conv -> relu -> pool -> flatten -> linear -> relu -> linear (logits)."""

    def __init__(self, *, in_channels, image_size, num_classes, filters, dense_units):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters[0], kernel_size=KERNEL_SIZE)
        self.pool1 = nn.MaxPool2d(POOL_SIZE)
        self.conv2 = nn.Conv2d(filters[0], filters[1], kernel_size=KERNEL_SIZE)
        self.pool2 = nn.MaxPool2d(POOL_SIZE)
        self.flatten = nn.Flatten()
        # The tutorial bug twinbench exists to catch: this size must be computed, not copied.
        side = feature_map_size(image_size)
        self.dense1 = nn.Linear(filters[1] * side * side, dense_units)
        self.logits = nn.Linear(dense_units, num_classes)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = self.flatten(x)  # flattens (C, H, W); Keras flattens (H, W, C): see models/weights.py
        x = F.relu(self.dense1(x))
        return self.logits(x)


def _build(name, input_shape, num_classes):
    height, width, channels = input_shape
    if height != width:
        raise ValueError(f"Model {name!r} takes square inputs. Received: input_shape={tuple(input_shape)}.")
    cfg = SMALL_CNNS[name]
    return SmallCNN(in_channels=channels, image_size=height, num_classes=num_classes,
                    filters=cfg["filters"], dense_units=cfg["dense_units"])


def cifar_cnn(*, input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR-10 comparison CNN as an ``nn.Module`` (167,562 parameters at the defaults)."""
    return _build("cifar_cnn", input_shape, num_classes)


def mnist_cnn(*, input_shape=(28, 28, 1), num_classes=10):
    """The MNIST CNN as an ``nn.Module`` (225,034 parameters at the defaults)."""
    return _build("mnist_cnn", input_shape, num_classes)
