"""An example pair for ``python -m twinbench check docs/examples/tiny_resnet_pair.py``: a small ResNet-style network
written once in Keras 3 and once in PyTorch, by hand, with *different* layer names on the two sides (as a port
usually has), so the weights are paired in the order the layers run, by shape.

It has what makes twins hard: explicit symmetric padding before a stride-2 convolution (Keras' ``same`` pads
asymmetrically there), BatchNorm with PyTorch's epsilon and momentum, a residual block with a 1x1 projection, and
a Flatten before a Dense layer (Keras flattens H, W, C; PyTorch C, H, W).
"""

import keras
import torch
from keras import layers
from torch import nn

INPUT_SHAPE = (16, 16, 3)
NUM_CLASSES = 10
BN = dict(epsilon=1e-5, momentum=0.9)  # PyTorch's BatchNorm defaults, in Keras terms


def keras_model(*, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(**BN, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    # A residual block that halves the size: 3x3 stride 2 (explicit padding), 3x3, and a 1x1 stride-2 projection.
    y = layers.ZeroPadding2D(1, name="block_pad")(x)
    y = layers.Conv2D(16, 3, strides=2, use_bias=False, name="block_conv1")(y)
    y = layers.BatchNormalization(**BN, name="block_bn1")(y)
    y = layers.ReLU(name="block_relu1")(y)
    y = layers.Conv2D(16, 3, padding="same", use_bias=False, name="block_conv2")(y)
    y = layers.BatchNormalization(**BN, name="block_bn2")(y)
    shortcut = layers.Conv2D(16, 1, strides=2, use_bias=False, name="block_proj")(x)
    shortcut = layers.BatchNormalization(**BN, name="block_proj_bn")(shortcut)
    x = layers.ReLU(name="block_out")(layers.Add(name="block_add")([y, shortcut]))
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_resnet")


class TinyResNet(nn.Module):
    def __init__(self, *, in_channels, num_classes, features):
        super().__init__()
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
        y = torch.relu(self.a_norm(self.a_conv(x)))
        y = self.b_norm(self.b_conv(y))
        x = torch.relu(y + self.skip_norm(self.skip_conv(x)))
        x = nn.functional.max_pool2d(x, 2)
        return self.head(torch.flatten(x, 1))


def torch_model(*, input_shape, num_classes):
    height, width, channels = input_shape
    return TinyResNet(in_channels=channels, num_classes=num_classes, features=16 * (height // 4) * (width // 4))
