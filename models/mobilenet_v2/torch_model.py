"""The PyTorch twin of MobileNetV2 *is* torchvision's builder; this file only adapts its arguments."""

import torchvision

from twinbench.models.mobilenet_v2.config import DROPOUT


def mobilenet_v2(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """``torchvision.models.mobilenet_v2(weights=None, num_classes=..., dropout=...)``; 3,504,872 parameters at 1000."""
    del input_shape  # fully convolutional up to a global average pool; the registry checks the size
    return torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes, dropout=dropout)
