"""ResNet50 (torchvision v1.5 definition) in tf.keras (Keras 2): the line-by-line twin of ``keras_model.py``.

Same layers, names and initializers; BatchNorm is tf.keras' fused layer with torch's epsilon/momentum,
whose moving variance is already the unbiased one (see ``models/common/tf_keras_layers.py``).
"""

import tf_keras
from tf_keras import layers

from twinbench.models.common.tf_keras_layers import (
    kaiming_normal_fan_out,
    torch_batch_norm,
    torch_linear_bias,
    torch_linear_kernel,
)
from twinbench.models.resnet.config import EXPANSION, FEATURES, LAYERS, STEM_CHANNELS, STRIDES, WIDTHS


def _conv(filters, kernel_size, *, strides=1, name):
    return layers.Conv2D(filters, kernel_size, strides=strides, use_bias=False,
                         kernel_initializer=kaiming_normal_fan_out(), name=name)


def bottleneck(x, *, width, stride, downsample, name):
    """torchvision's ``Bottleneck``: 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), plus the shortcut, then ReLU."""
    identity = x
    out = _conv(width, 1, name=f"{name}_conv1")(x)
    out = torch_batch_norm(name=f"{name}_bn1")(out)
    out = layers.ReLU(name=f"{name}_relu1")(out)

    out = layers.ZeroPadding2D(1, name=f"{name}_pad2")(out)  # torch's padding=1 on every side
    out = _conv(width, 3, strides=stride, name=f"{name}_conv2")(out)
    out = torch_batch_norm(name=f"{name}_bn2")(out)
    out = layers.ReLU(name=f"{name}_relu2")(out)

    out = _conv(width * EXPANSION, 1, name=f"{name}_conv3")(out)
    out = torch_batch_norm(name=f"{name}_bn3")(out)

    if downsample:
        identity = _conv(width * EXPANSION, 1, strides=stride, name=f"{name}_downsample_0")(x)
        identity = torch_batch_norm(name=f"{name}_downsample_1")(identity)

    out = layers.Add(name=f"{name}_add")([out, identity])
    return layers.ReLU(name=f"{name}_relu3")(out)


def resnet50(*, input_shape=(224, 224, 3), num_classes=1000, blocks=LAYERS):
    """ResNet50 (torchvision v1.5 definition) in tf.keras; 25,557,032 parameters at 1000 classes (``blocks``: per
    stage, torchvision's ``layers``)."""
    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = _conv(STEM_CHANNELS, 7, strides=2, name="conv1")(x)
    x = torch_batch_norm(name="bn1")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)

    for stage, (count, width, stride) in enumerate(zip(blocks, WIDTHS, STRIDES, strict=True), start=1):
        for block in range(count):
            x = bottleneck(x, width=width, stride=stride if block == 0 else 1, downsample=block == 0,
                           name=f"layer{stage}_{block}")

    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=torch_linear_kernel(),
                           bias_initializer=torch_linear_bias(FEATURES), name="fc")(x)
    return tf_keras.Model(inputs, outputs, name="resnet50")
