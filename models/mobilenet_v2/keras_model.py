"""MobileNetV2, defined once in Keras 3 so that it is numerically the network torchvision's ``mobilenet_v2`` builds.

Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks*, CVPR 2018
(https://arxiv.org/abs/1801.04381), width multiplier 1.0, in torchvision's form.

What makes it torchvision's network rather than keras.applications' (``models/kerasapps``):

- explicit symmetric 1-pixel zero padding before every stride-2 3x3 convolution (keras.applications pads
  only bottom/right on even-sized inputs);
- BatchNorm with epsilon 1e-5, momentum 0.1 (torch terms) and the unbiased moving variance
  (keras.applications: epsilon 1e-3, momentum 0.001 in torch terms);
- Dropout(0.2) before the classifier (keras.applications has none);
- torchvision's initializers: conv kernels ``kaiming_normal_(mode="fan_out")``, BatchNorm 1/0, classifier
  ``normal_(0, 0.01)`` with zero bias (keras.applications: Glorot uniform).

An inverted-residual block: 1x1 expansion (skipped when t = 1) -> ReLU6 -> 3x3 depthwise -> ReLU6 -> 1x1
linear projection, plus the input when the stride is 1 and the channel count is unchanged.
"""

import keras
from keras import layers

from twinbench.models.common.keras_layers import (
    TorchBatchNormalization,
    image_input,
    kaiming_normal_fan_out,
    kaiming_normal_fan_out_depthwise,
    normal_001,
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
    if strides == 2:  # torch's padding=1 on every side ("same" would pad only bottom/right)
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    padding = "valid" if strides == 2 else "same"
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=kaiming_normal_fan_out(), name=f"{name}_conv")(x)
    x = TorchBatchNormalization(name=f"{name}_bn")(x)
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
    out = TorchBatchNormalization(name=f"{name}_depthwise_bn")(out)
    out = layers.ReLU(RELU6, name=f"{name}_depthwise_relu")(out)
    out = _conv_bn(out, out_channels, 1, relu6=False, name=f"{name}_project")  # linear bottleneck
    if stride == 1 and in_channels == out_channels:
        out = layers.Add(name=f"{name}_add")([x, out])
    return out


def mobilenet_v2(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """MobileNetV2 (torchvision definition, width 1.0) in Keras 3.

    Args:
        input_shape: ``(height, width, channels)``, channels last; at least 32x32.
        num_classes: number of output logits.
        dropout: rate of the Dropout before the classifier (torchvision's ``dropout``); the twin tests set
            0.0 because dropout masks cannot be drawn identically in two frameworks.

    Returns:
        A ``keras.Model`` mapping images to logits; 3,504,872 parameters at 1000 classes.
    """
    inputs = image_input(input_shape)
    x = _conv_bn(inputs, make_divisible(STEM_CHANNELS), 3, strides=2, name="stem")
    for index, in_channels, out_channels, stride, t in blocks():
        x = inverted_residual(x, in_channels=in_channels, out_channels=out_channels, stride=stride,
                              expand_ratio=t, name=f"block{index}")
    x = _conv_bn(x, LAST_CHANNEL, 1, name="head")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)  # torch: adaptive_avg_pool2d(x, 1) + flatten
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=normal_001(), name="classifier")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")
