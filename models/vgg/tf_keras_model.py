"""VGG19 (torchvision definition) in tf.keras (Keras 2): the line-by-line twin of ``keras_model.py``.

tf.keras has no adaptive pooling layer; ``twinbench.models.common.tf_keras_layers.AdaptiveAveragePooling2D``
applies PyTorch's pooling windows as two small matrices.
"""

import tf_keras
from tf_keras import layers

from twinbench.models.common.tf_keras_layers import (
    AdaptiveAveragePooling2D,
    kaiming_normal_fan_out,
    normal_001,
)
from twinbench.models.vgg.config import CFGS, DROPOUT, HIDDEN_UNITS, POOLED_SIZE, conv_layer_names


def vgg19(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """VGG19 (torchvision definition) in tf.keras; 143,667,240 parameters at 1000 classes."""
    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = inputs
    names = iter(conv_layer_names(CFGS["E"]))
    block = 1
    for value in CFGS["E"]:
        if value == "M":
            x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block += 1
        else:
            x = layers.Conv2D(value, 3, padding="same", activation="relu", kernel_initializer=kaiming_normal_fan_out(),
                              bias_initializer="zeros", name=next(names))(x)

    x = AdaptiveAveragePooling2D(POOLED_SIZE, name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=normal_001(), name="fc1")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=normal_001(), name="fc2")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=normal_001(), name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name="vgg19")
