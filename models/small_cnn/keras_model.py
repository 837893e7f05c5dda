"""The small CNNs, defined once in Keras 3 (runs on the torch, tensorflow and jax backends).

This is the definition every twin is checked against. Layer names are stable and shared with the
PyTorch twin's attribute names and the tf.keras twin's layer names, so weights map one to one.
"""

import keras
from keras import layers

from twinbench.models.common.keras_layers import image_input
from twinbench.models.small_cnn.config import KERNEL_SIZE, POOL_SIZE, SMALL_CNNS


def _small_cnn(*, input_shape, num_classes, filters, dense_units, name):
    inputs = image_input(input_shape)
    x = layers.Conv2D(filters[0], KERNEL_SIZE, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(POOL_SIZE, name="pool1")(x)
    x = layers.Conv2D(filters[1], KERNEL_SIZE, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(POOL_SIZE, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense1")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)  # logits: the loss applies the softmax
    return keras.Model(inputs, outputs, name=name)


def cifar_cnn(*, input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR-10 comparison CNN (Keras 3): conv32-pool-conv64-pool-dense64-logits.

    Args:
        input_shape: ``(height, width, channels)``, channels last.
        num_classes: number of output logits.

    Returns:
        A ``keras.Model`` mapping images to logits; 167,562 parameters at the defaults.
    """
    cfg = SMALL_CNNS["cifar_cnn"]
    return _small_cnn(input_shape=input_shape, num_classes=num_classes, filters=cfg["filters"],
                      dense_units=cfg["dense_units"], name="cifar_cnn")


def mnist_cnn(*, input_shape=(28, 28, 1), num_classes=10):
    """The MNIST CNN (Keras 3): conv32-pool-conv64-pool-dense128-logits.

    Args:
        input_shape: ``(height, width, channels)``, channels last.
        num_classes: number of output logits.

    Returns:
        A ``keras.Model`` mapping images to logits; 225,034 parameters at the defaults
        (5 x 5 x 64 = 1,600 features reach the first Dense layer).
    """
    cfg = SMALL_CNNS["mnist_cnn"]
    return _small_cnn(input_shape=input_shape, num_classes=num_classes, filters=cfg["filters"],
                      dense_units=cfg["dense_units"], name="mnist_cnn")
