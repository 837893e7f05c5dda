"""The PyTorch twin of AlexNet *is* torchvision's builder; this file only adapts its arguments."""

import torchvision

from twinbench.models.alexnet.config import DROPOUT


def alexnet(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """``torchvision.models.alexnet(weights=None, num_classes=..., dropout=...)``; 61,100,840 parameters at 1000."""
    del input_shape  # AdaptiveAvgPool2d((6, 6)) makes the classifier independent of it; the registry checks it
    return torchvision.models.alexnet(weights=None, num_classes=num_classes, dropout=dropout)
