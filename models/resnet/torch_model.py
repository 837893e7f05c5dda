"""The PyTorch twin of ResNet50 *is* torchvision's builder; this file only adapts its arguments.

torchvision takes no input shape (the network is fully convolutional up to a global average pool), so
``input_shape`` is only checked; ``weights=None`` means torchvision's own random initialisation, never a
download (pretrained weights come from a local checkpoint file: ``python -m bench run --weights``).
"""

import torchvision


def resnet50(*, input_shape=(224, 224, 3), num_classes=1000):
    """``torchvision.models.resnet50(weights=None, num_classes=num_classes)``; 25,557,032 parameters at 1000."""
    del input_shape  # any size >= 32x32 works; the registry checks it
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)
