"""tf.keras (Keras 2) layers and initializers that behave exactly like their ``torch.nn`` counterparts.

The twin of ``models/common/keras_layers.py``:

- ``torch_batch_norm``: tf.keras' own ``BatchNormalization`` with torch's epsilon and momentum and
  ``fused=True``. The fused kernel updates the moving variance with the *unbiased* batch variance, as
  PyTorch does (the unfused path and Keras 3 use the biased one), so no subclass is needed here;
  ``tests/test_torch_layers.py`` pins that behaviour.
- ``AdaptiveAveragePooling2D``: tf.keras has none; this one multiplies by PyTorch's pooling matrices
  (``twinbench.models.common.pooling``).
- the torchvision initializers, spelled with ``tf_keras.initializers``.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras

from twinbench.models.common.pooling import adaptive_pool_matrix

TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9  # Keras terms: torch's momentum=0.1


def torch_batch_norm(*, name):
    """``torch.nn.BatchNorm2d`` in tf.keras: epsilon 1e-5, momentum 0.1 (torch terms), unbiased moving variance."""
    return tf_keras.layers.BatchNormalization(momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_BN_EPSILON, fused=True,
                                              name=name)


@tf_keras.utils.register_keras_serializable(package="twinbench")
class AdaptiveAveragePooling2D(tf_keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d(output_size)`` for channels-last inputs with a static spatial size.

    Args:
        output_size: ``(height, width)`` of the output, or one int for both.
        **kwargs: base layer arguments (e.g. ``name``).
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def build(self, input_shape):
        height, width = int(input_shape[1]), int(input_shape[2])
        self.pool_h = tf.constant(adaptive_pool_matrix(height, self.output_size[0]))
        self.pool_w = tf.constant(adaptive_pool_matrix(width, self.output_size[1]))
        super().build(input_shape)

    def call(self, inputs):
        return tf.einsum("ih,bhwc,jw->bijc", tf.cast(self.pool_h, inputs.dtype), inputs,
                         tf.cast(self.pool_w, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], *self.output_size, input_shape[-1]])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


def kaiming_normal_fan_out():
    """``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` for a ``Conv2D`` kernel."""
    return tf_keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def kaiming_normal_fan_out_depthwise():
    """``kaiming_normal_(mode="fan_out")`` for a depthwise kernel (torch's fan_out is Keras' fan_in here)."""
    return tf_keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")


def torch_linear_kernel():
    """``nn.Linear``'s default weight: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return tf_keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_linear_bias(fan_in: int):
    """``nn.Linear``'s default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return tf_keras.initializers.RandomUniform(minval=-bound, maxval=bound)


def normal_001():
    """``nn.init.normal_(w, 0, 0.01)``."""
    return tf_keras.initializers.RandomNormal(mean=0.0, stddev=0.01)
