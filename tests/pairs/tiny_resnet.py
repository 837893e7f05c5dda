"""Deliberately broken twins for ``tests/test_check.py``: the example pair's small ResNet-style network
(docs/examples/tiny_resnet_pair.py), with one classic porting mistake switched on by a keyword.

- ``padding="same"`` (Keras side): the stride-2 convolution in the middle pads with Keras' ``same``, which pads
  one pixel at the bottom/right only, where PyTorch's ``padding=1`` pads one on every side;
- ``proj_bn_epsilon=1e-3`` (Keras side): Keras' default BatchNorm epsilon on the block's projection, PyTorch 1e-5;
- ``activation="relu6"`` (PyTorch side): ReLU6 after the block's first BatchNorm where Keras has ReLU;
- ``flatten="nhwc"`` (PyTorch side): the features flattened in Keras' (H, W, C) order, so the weights converted
  for PyTorch's (C, H, W) order meet the wrong features.

``bn1_gamma=8.0`` (Keras side, so both sides start from it) scales the block's first BatchNorm output so that
activations exceed 6 and ReLU6 shows.
"""

import keras
import torch
from keras import layers
from torch import nn

INPUT_SHAPE = (16, 16, 3)
NUM_CLASSES = 10
EPSILON, MOMENTUM = 1e-5, 0.9  # PyTorch's BatchNorm defaults in Keras terms


def keras_model(*, input_shape, num_classes, padding="explicit", proj_bn_epsilon=EPSILON, bn1_gamma=1.0):
    def bn(name, epsilon=EPSILON, gamma=1.0):
        return layers.BatchNormalization(epsilon=epsilon, momentum=MOMENTUM, name=name,
                                         gamma_initializer=keras.initializers.Constant(gamma))

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(name="stem_relu")(bn("stem_bn")(x))
    if padding == "explicit":
        y = layers.ZeroPadding2D(1, name="block_pad")(x)
        y = layers.Conv2D(16, 3, strides=2, use_bias=False, name="block_conv1")(y)
    else:
        y = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False,
                          name="block_conv1")(x)
    y = layers.ReLU(name="block_relu1")(bn("block_bn1", gamma=bn1_gamma)(y))
    y = bn("block_bn2")(layers.Conv2D(16, 3, padding="same", use_bias=False, name="block_conv2")(y))
    shortcut = layers.Conv2D(16, 1, strides=2, use_bias=False, name="block_proj")(x)
    shortcut = bn("block_proj_bn", proj_bn_epsilon)(shortcut)
    x = layers.ReLU(name="block_out")(layers.Add(name="block_add")([y, shortcut]))
    x = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(x))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="tiny_resnet")


class TinyResNet(nn.Module):
    def __init__(self, *, in_channels, num_classes, features, activation, flatten):
        super().__init__()
        self.activation, self.flatten = activation, flatten
        self.conv0 = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.norm0 = nn.BatchNorm2d(8)
        self.a_conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.a_norm = nn.BatchNorm2d(16)
        self.b_conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b_norm = nn.BatchNorm2d(16)
        self.skip_conv = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.skip_norm = nn.BatchNorm2d(16)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x):
        x = torch.relu(self.norm0(self.conv0(x)))
        y = self.a_norm(self.a_conv(x))
        y = nn.functional.relu6(y) if self.activation == "relu6" else torch.relu(y)
        y = self.b_norm(self.b_conv(y))
        x = torch.relu(y + self.skip_norm(self.skip_conv(x)))
        x = nn.functional.max_pool2d(x, 2)
        if self.flatten == "nhwc":
            x = x.permute(0, 2, 3, 1)
        return self.head(torch.flatten(x, 1))


def torch_model(*, input_shape, num_classes, activation="relu", flatten="nchw"):
    height, width, channels = input_shape
    return TinyResNet(in_channels=channels, num_classes=num_classes, features=16 * (height // 4) * (width // 4),
                      activation=activation, flatten=flatten)
