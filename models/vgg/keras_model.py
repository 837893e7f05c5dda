"""VGG19, defined once in Keras 3 so that it is numerically the network torchvision's ``vgg19`` builds.

Simonyan & Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition*, ICLR 2015
(https://arxiv.org/abs/1409.1556), configuration E, in torchvision's form.

What makes it torchvision's network rather than keras.applications' (``models/kerasapps``):

- ``AdaptiveAvgPool2d((7, 7))`` before the classifier, so the first Dense layer always sees 7x7x512 = 25,088
  features: at 224x224 the pool does nothing; at 32x32 the 1x1 feature map is *copied* into 7x7
  (keras.applications flattens whatever is left: 512 features at 32x32);
- Dropout(0.5) after each hidden Dense layer (keras.applications has none);
- torchvision's initializers: conv kernels ``kaiming_normal_(mode="fan_out")`` with zero biases, Dense
  kernels ``normal_(0, 0.01)`` with zero biases (keras.applications: Glorot uniform).

The Dense layer after ``Flatten`` sees features in (H, W, C) order, torch's in (C, H, W): the weight mapping
permutes that kernel (``models/weights.py``). Layer names follow keras.applications (``block1_conv1``,
``fc1``, ``fc2``, ``predictions``); ``config.torch_module_paths`` maps them to torchvision's ``features.N``.
"""

import keras
from keras import layers

from twinbench.models.common.keras_layers import AdaptiveAveragePooling2D, kaiming_normal_fan_out, normal_001
from twinbench.models.vgg.config import CFGS, DROPOUT, HIDDEN_UNITS, POOLED_SIZE, conv_layer_names


def vgg19(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT):
    """VGG19 (torchvision definition) in Keras 3.

    Args:
        input_shape: ``(height, width, channels)``, channels last; at least 32x32 (five 2x2 pools).
        num_classes: number of output logits.
        dropout: rate of the two classifier Dropout layers (torchvision's ``dropout`` argument); the twin
            tests set 0.0 because dropout masks cannot be drawn identically in two frameworks.

    Returns:
        A ``keras.Model`` mapping images to logits; 143,667,240 parameters at 1000 classes, at every input size.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    names = iter(conv_layer_names(CFGS["E"]))
    block = 1
    for value in CFGS["E"]:
        if value == "M":
            x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block += 1
        else:  # 3x3, stride 1: "same" pads 1 on every side, like torch's padding=1
            x = layers.Conv2D(value, 3, padding="same", activation="relu", kernel_initializer=kaiming_normal_fan_out(),
                              bias_initializer="zeros", name=next(names))(x)

    x = AdaptiveAveragePooling2D(POOLED_SIZE, name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=normal_001(), name="fc1")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=normal_001(), name="fc2")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=normal_001(), name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg19")
