"""The PyTorch twin of ResNet50 *is* torchvision's builder; this file only adapts its arguments.

torchvision takes no input shape (the network is fully convolutional up to a global average pool), so
``input_shape`` is only checked; ``weights=None`` means torchvision's own random initialisation, never a
download (pretrained weights come from a local checkpoint file: ``python -m twinbench train --weights``).
"""

import torchvision

from twinbench.models.resnet.config import LAYERS


def resnet50(*, input_shape=(224, 224, 3), num_classes=1000, blocks=LAYERS):
    """``torchvision.models.resnet50(weights=None, num_classes=num_classes)``; 25,557,032 parameters at 1000.

    ``blocks`` other than ``(3, 4, 6, 3)`` (the twin tests' case) builds torchvision's ``ResNet`` class with those
    blocks per stage, as ``resnet50`` itself does with its own.
    """
    del input_shape  # any size >= 32x32 works; the registry checks it
    if tuple(blocks) == LAYERS:
        return torchvision.models.resnet50(weights=None, num_classes=num_classes)
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, list(blocks), num_classes=num_classes)
