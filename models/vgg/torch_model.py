"""The PyTorch twin of VGG19 *is* torchvision's builder; this file only adapts its arguments."""

import torchvision

from twinbench.models.vgg.config import DROPOUT


def vgg19(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """``torchvision.models.vgg19(weights=None, num_classes=..., dropout=...)``; 143,667,240 parameters at 1000."""
    del input_shape  # AdaptiveAvgPool2d((7, 7)) makes the classifier independent of it; the registry checks it
    return torchvision.models.vgg19(weights=None, num_classes=num_classes, dropout=dropout)
