"""MobileNetV2 (torchvision definition) in tf.keras (Keras 2): the line-by-line twin of ``keras_model.py``."""

import tf_keras
from tf_keras import layers

from twinbench.models.common.tf_keras_layers import (
    kaiming_normal_fan_out,
    kaiming_normal_fan_out_depthwise,
    normal_001,
    torch_batch_norm,
)
from twinbench.models.mobilenet_v2.config import (
    DROPOUT,
    LAST_CHANNEL,
    RELU6,
    STEM_CHANNELS,
    blocks,
    make_divisible,
)


def _conv_bn(x, filters, kernel_size, *, strides=1, relu6=True, name):
    """Conv2D (no bias) -> BatchNorm [-> ReLU6]: torchvision's ``Conv2dNormActivation``."""
    if strides == 2:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    padding = "valid" if strides == 2 else "same"
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=kaiming_normal_fan_out(), name=f"{name}_conv")(x)
    x = torch_batch_norm(name=f"{name}_bn")(x)
    return layers.ReLU(RELU6, name=f"{name}_relu")(x) if relu6 else x


def inverted_residual(x, *, in_channels, out_channels, stride, expand_ratio, name):
    """torchvision's ``InvertedResidual``."""
    hidden = int(round(in_channels * expand_ratio))
    out = x
    if expand_ratio != 1:
        out = _conv_bn(out, hidden, 1, name=f"{name}_expand")
    if stride == 2:
        out = layers.ZeroPadding2D(1, name=f"{name}_depthwise_pad")(out)
    out = layers.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False,
                                 depthwise_initializer=kaiming_normal_fan_out_depthwise(),
                                 name=f"{name}_depthwise_conv")(out)
    out = torch_batch_norm(name=f"{name}_depthwise_bn")(out)
    out = layers.ReLU(RELU6, name=f"{name}_depthwise_relu")(out)
    out = _conv_bn(out, out_channels, 1, relu6=False, name=f"{name}_project")
    if stride == 1 and in_channels == out_channels:
        out = layers.Add(name=f"{name}_add")([x, out])
    return out


def mobilenet_v2(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """MobileNetV2 (torchvision definition, width 1.0) in tf.keras; 3,504,872 parameters at 1000 classes."""
    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, make_divisible(STEM_CHANNELS), 3, strides=2, name="stem")
    for index, in_channels, out_channels, stride, t in blocks():
        x = inverted_residual(x, in_channels=in_channels, out_channels=out_channels, stride=stride,
                              expand_ratio=t, name=f"block{index}")
    x = _conv_bn(x, LAST_CHANNEL, 1, name="head")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=normal_001(), name="classifier")(x)
    return tf_keras.Model(inputs, outputs, name="mobilenet_v2")
