"""ResNet50, defined once in Keras 3 so that it is numerically the network torchvision's ``resnet50`` builds.

He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016 (https://arxiv.org/abs/1512.03385),
in torchvision's v1.5 form (stride on the 3x3 convolution of a downsampling block).

What makes it torchvision's network rather than keras.applications' (``models/kerasapps``):

- convolutions without bias (each is followed by BatchNorm);
- BatchNorm with epsilon 1e-5, momentum 0.1 (torch terms) and the unbiased moving variance
  (``TorchBatchNormalization``);
- stride 2 on the 3x3 convolution of the first block of stages 2-4 (v1.5), not on the 1x1;
- explicit symmetric zero padding before every stride-2 convolution and pooling (Keras ``"same"`` would pad
  only on the bottom/right of an even-sized input); zero padding before the max-pool equals torch's -inf
  padding because the input is a ReLU output (>= 0);
- torchvision's initializers: conv kernels ``kaiming_normal_(mode="fan_out")``, BatchNorm 1/0, and the
  classifier ``nn.Linear``'s default uniform init.

Layer names are torchvision's module paths with ``_`` for ``.``: ``layer2_0_conv2`` is ``model.layer2[0].conv2``.
"""

import keras
from keras import layers

from twinbench.models.common.keras_layers import (
    TorchBatchNormalization,
    image_input,
    kaiming_normal_fan_out,
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
    out = TorchBatchNormalization(name=f"{name}_bn1")(out)
    out = layers.ReLU(name=f"{name}_relu1")(out)

    # torch's padding=1 on every side (with stride 2, Keras "same" would pad only bottom/right)
    out = layers.ZeroPadding2D(1, name=f"{name}_pad2")(out)
    out = _conv(width, 3, strides=stride, name=f"{name}_conv2")(out)
    out = TorchBatchNormalization(name=f"{name}_bn2")(out)
    out = layers.ReLU(name=f"{name}_relu2")(out)

    out = _conv(width * EXPANSION, 1, name=f"{name}_conv3")(out)
    out = TorchBatchNormalization(name=f"{name}_bn3")(out)

    if downsample:  # 1x1 convolution with the block's stride (no padding needed) + BatchNorm
        identity = _conv(width * EXPANSION, 1, strides=stride, name=f"{name}_downsample_0")(x)
        identity = TorchBatchNormalization(name=f"{name}_downsample_1")(identity)

    out = layers.Add(name=f"{name}_add")([out, identity])
    return layers.ReLU(name=f"{name}_relu3")(out)


def resnet50(*, input_shape=(224, 224, 3), num_classes=1000, blocks=LAYERS):
    """ResNet50 (torchvision v1.5 definition) in Keras 3.

    Args:
        input_shape: ``(height, width, channels)``, channels last; at least 32x32 (a 32x32 image reaches
            the last stage as a 1x1 map).
        num_classes: number of output logits.
        blocks: bottleneck blocks per stage (torchvision's ``layers``, ``(3, 4, 6, 3)``); the twin tests build fewer.

    Returns:
        A ``keras.Model`` mapping images to logits; 25,557,032 parameters at 1000 classes, the same as
        ``torchvision.models.resnet50()``.
    """
    inputs = image_input(input_shape)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = _conv(STEM_CHANNELS, 7, strides=2, name="conv1")(x)
    x = TorchBatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)

    for stage, (count, width, stride) in enumerate(zip(blocks, WIDTHS, STRIDES, strict=True), start=1):
        for block in range(count):
            x = bottleneck(x, width=width, stride=stride if block == 0 else 1, downsample=block == 0,
                           name=f"layer{stage}_{block}")

    x = layers.GlobalAveragePooling2D(name="avgpool")(x)  # torch: AdaptiveAvgPool2d((1, 1)) + flatten
    outputs = layers.Dense(num_classes, kernel_initializer=torch_linear_kernel(),
                           bias_initializer=torch_linear_bias(FEATURES), name="fc")(x)
    return keras.Model(inputs, outputs, name="resnet50")
