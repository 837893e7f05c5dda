"""The small CNNs in tf.keras (Keras 2, package ``tf-keras``), in the classic ``Sequential`` style.

Same layers and names as the Keras 3 definition; only the import differs (``tf_keras`` instead of ``keras``).
"""

import tf_keras
from tf_keras import layers

from twinbench.models.small_cnn.config import KERNEL_SIZE, POOL_SIZE, SMALL_CNNS


def _small_cnn(*, input_shape, num_classes, filters, dense_units, name):
    return tf_keras.Sequential(
        [
            tf_keras.Input(shape=input_shape, name="image"),
            layers.Conv2D(filters[0], KERNEL_SIZE, activation="relu", name="conv1"),
            layers.MaxPooling2D(POOL_SIZE, name="pool1"),
            layers.Conv2D(filters[1], KERNEL_SIZE, activation="relu", name="conv2"),
            layers.MaxPooling2D(POOL_SIZE, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(dense_units, activation="relu", name="dense1"),
            layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def cifar_cnn(*, input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR-10 comparison CNN in tf.keras (167,562 parameters at the defaults)."""
    cfg = SMALL_CNNS["cifar_cnn"]
    return _small_cnn(input_shape=input_shape, num_classes=num_classes, filters=cfg["filters"],
                      dense_units=cfg["dense_units"], name="cifar_cnn")


def mnist_cnn(*, input_shape=(28, 28, 1), num_classes=10):
    """The MNIST CNN in tf.keras (225,034 parameters at the defaults)."""
    cfg = SMALL_CNNS["mnist_cnn"]
    return _small_cnn(input_shape=input_shape, num_classes=num_classes, filters=cfg["filters"],
                      dense_units=cfg["dense_units"], name="mnist_cnn")
