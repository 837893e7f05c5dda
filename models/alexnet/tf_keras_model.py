"""AlexNet (torchvision definition) in tf.keras (Keras 2): the line-by-line twin of ``keras_model.py``.

tf.keras has no adaptive pooling layer; ``twinbench.models.common.tf_keras_layers.AdaptiveAveragePooling2D``
applies PyTorch's pooling windows as two small matrices.
"""

import tf_keras
from tf_keras import layers

from twinbench.models.alexnet.config import CONVS, DROPOUT, HIDDEN_UNITS, POOL_SIZE, POOL_STRIDE, POOLED_SIZE
from twinbench.models.common.tf_keras_layers import (
    AdaptiveAveragePooling2D,
    torch_linear_bias,
    torch_linear_kernel,
)


def alexnet(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """AlexNet (torchvision definition) in tf.keras (Keras 2).

    Args:
        input_shape: ``(height, width, channels)``, channels last; at least 63x63 (``config.MIN_INPUT_SIZE``).
        num_classes: number of output logits.
        dropout: rate of the two classifier Dropout layers (torchvision's ``dropout``); the twin tests set 0.0.

    Returns:
        A ``tf_keras.Model`` mapping images to logits; 61,100,840 parameters at 1000 classes, at every input size.
    """
    inputs = tf_keras.Input(shape=input_shape, name="image")
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
    return tf_keras.Model(inputs, outputs, name="alexnet")
