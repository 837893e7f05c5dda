"""AlexNet, defined once in Keras 3 so that it is numerically the network torchvision's ``alexnet`` builds.

Krizhevsky, Sutskever & Hinton, *ImageNet Classification with Deep Convolutional Neural Networks*, NeurIPS
2012, in torchvision's one-GPU form (Krizhevsky, *One weird trick for parallelizing convolutional neural
networks*, arXiv:1404.5997).

What it takes to be torchvision's network:

- ``conv1`` pads 2 pixels on every side before its 11x11 stride-4 window: an explicit ``ZeroPadding2D(2)`` and
  ``padding="valid"`` (Keras' ``"same"`` would pad asymmetrically at stride 4); the 5x5 and 3x3 stride-1
  convolutions pad symmetrically, which ``"same"`` does too;
- the 3x3 stride-2 max-pools do not pad (``"valid"`` in both);
- ``AdaptiveAvgPool2d((6, 6))`` before the classifier, so ``fc1`` always sees 6x6x256 = 9,216 features;
- Dropout *before* each hidden Dense layer (torchvision's order), and PyTorch's default initializers
  (``nn.Conv2d`` and ``nn.Linear``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases).

The Dense layer after ``Flatten`` sees features in (H, W, C) order, torch's in (C, H, W): the weight mapping
permutes that kernel (``models/weights.py``).
"""

import keras
from keras import layers

from twinbench.models.alexnet.config import CONVS, DROPOUT, HIDDEN_UNITS, POOL_SIZE, POOL_STRIDE, POOLED_SIZE
from twinbench.models.common.keras_layers import (
    AdaptiveAveragePooling2D,
    torch_linear_bias,
    torch_linear_kernel,
)


def alexnet(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """AlexNet (torchvision definition) in Keras 3.

    Args:
        input_shape: ``(height, width, channels)``, channels last; at least 63x63 (``config.MIN_INPUT_SIZE``).
        num_classes: number of output logits.
        dropout: rate of the two classifier Dropout layers (torchvision's ``dropout``); the twin tests set 0.0.

    Returns:
        A ``keras.Model`` mapping images to logits; 61,100,840 parameters at 1000 classes, at every input size.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    channels = input_shape[-1]
    for name, filters, kernel, stride, pad, pool in CONVS:
        if stride > 1:  # torch pads symmetrically; "same" would not at stride 4
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=stride, padding="valid" if stride > 1 else "same",
                          activation="relu", kernel_initializer=torch_linear_kernel(),
                          bias_initializer=torch_linear_bias(channels * kernel * kernel), name=name)(x)
        if pool:
            x = layers.MaxPooling2D(POOL_SIZE, strides=POOL_STRIDE, name=f"{name}_pool")(x)
        channels = filters

    x = AdaptiveAveragePooling2D(POOLED_SIZE, name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    features = POOLED_SIZE[0] * POOLED_SIZE[1] * channels
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=torch_linear_kernel(),
                     bias_initializer=torch_linear_bias(features), name="fc1")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=torch_linear_kernel(),
                     bias_initializer=torch_linear_bias(HIDDEN_UNITS), name="fc2")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=torch_linear_kernel(),
                           bias_initializer=torch_linear_bias(HIDDEN_UNITS), name="predictions")(x)
    return keras.Model(inputs, outputs, name="alexnet")
