"""Keras 3 layers and initializers that behave exactly like their ``torch.nn`` counterparts.

Used by the torchvision-matched definitions (``models/resnet``, ``models/vgg``, ``models/mobilenet_v2``):

- ``TorchBatchNormalization``: ``torch.nn.BatchNorm2d`` semantics (epsilon 1e-5, momentum 0.1 in torch terms,
  and the *unbiased* batch variance in the moving average; see the class docstring);
- initializers that draw what torchvision's ``_init_weights`` loops draw (``kaiming_normal_`` with
  ``mode="fan_out"``, ``normal_(0, 0.01)``, and ``nn.Linear``'s own default), so a freshly built Keras model
  starts from the same distribution as a freshly built torchvision model;
- ``AdaptiveAveragePooling2D``: ``torch.nn.AdaptiveAvgPool2d`` as two small matrix products (PyTorch's
  window formula, ``twinbench.models.common.pooling``). Keras 3.15's own layer of that name returned NaN on the jax
  backend for some sizes when we tried it (7x7 -> 7x7 among them, VGG19's ImageNet case), so we do not use it.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from twinbench.models.common.pooling import adaptive_pool_matrix


def channels_first() -> bool:
    """Whether the definition is being built channels first (``keras.config.image_data_format()``)."""
    return keras.config.image_data_format() == "channels_first"


def image_input(input_shape, *, name="image"):
    """``keras.Input`` for ``(H, W, C)`` images in the configured layout: ``(C, H, W)`` when channels first.

    Every layer that has a layout (Conv2D, pooling, padding, Flatten) takes it from the same setting when it is
    created; BatchNorm's axis is ``channel_axis()``.
    """
    height, width, channels = input_shape
    return keras.Input(shape=(channels, height, width) if channels_first() else (height, width, channels), name=name)


def channel_axis() -> int:
    """The channel axis of the configured layout: 1 channels first, -1 channels last."""
    return 1 if channels_first() else -1


# torch.nn.BatchNorm2d defaults in Keras terms: Keras keeps `momentum` of the old value, torch mixes in
# `momentum` of the new one, so torch's 0.1 is Keras' 0.9.
TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="twinbench")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """``torch.nn.BatchNorm2d`` as a Keras 3 layer.

    In training mode both frameworks normalise a batch with its *biased* variance (divide by ``n``, the
    number of values per channel, ``n = N * H * W``). They differ in what they feed into the moving
    average used at inference:

    - PyTorch: ``running_var = 0.9 * running_var + 0.1 * var * n / (n - 1)`` (the unbiased variance);
    - Keras 3: ``moving_variance = 0.9 * moving_variance + 0.1 * var`` (the biased one).

    The factor ``n / (n - 1)`` is invisible at ImageNet sizes but large at CIFAR sizes: in ResNet50's last
    stage a 32x32 image leaves a 1x1 map, so with a batch of 2 the factor is 2. This subclass applies it,
    so that the moving statistics (and every prediction made after training) match PyTorch exactly.
    (tf.keras' fused BatchNormalization kernel, its default for 4-D inputs, applies it as well.)

    It also computes the batch variance in two passes, ``mean((x - mean(x))^2)``, like PyTorch. Keras'
    ``ops.moments`` on the torch backend uses ``mean(x^2) - mean(x)^2``, which loses most of its digits
    when a channel's variance is small next to its mean; with few values per channel (a 1x1 map, a small
    batch) that changes the training-mode output visibly.

    Args:
        momentum: Keras momentum (weight of the old moving value); 0.9 is torch's ``momentum=0.1``.
        axis: the channel axis; by default the configured layout's (``channel_axis()``).
        epsilon: added to the variance; torch's default is 1e-5 (Keras' is 1e-3).
        **kwargs: the other ``keras.layers.BatchNormalization`` arguments (e.g. ``name``).
    """

    def __init__(self, *, momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_BN_EPSILON, axis=None, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, axis=channel_axis() if axis is None else axis, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)  # inference: identical in both
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        axes = self._reduction_axes
        # Two passes, as PyTorch does: ops.moments on the torch backend computes E[x^2] - E[x]^2, which
        # cancels catastrophically when the variance is small next to the mean (e.g. 2 values per channel).
        mean = ops.mean(x, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=axes)
        mean = ops.squeeze(mean, axis=axes)
        shape = ops.shape(x)
        n = ops.cast(math.prod(shape[axis] for axis in axes), variance.dtype)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + self.variance_for_moving_average(variance, n) * (1.0 - self.momentum))
        outputs = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma,
                                          epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def variance_for_moving_average(self, variance, n):
        """PyTorch's choice: the unbiased batch variance, ``variance * n / (n - 1)`` (n = 1 left biased)."""
        return variance * n / ops.maximum(n - 1.0, 1.0)


@keras.saving.register_keras_serializable(package="twinbench")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d(output_size)`` for channels-last inputs with a static spatial size.

    Output ``(i, j)`` averages PyTorch's window of rows ``floor(i*H/h) .. ceil((i+1)*H/h)`` and the same
    for columns; written as ``P_h @ x @ P_w^T`` with the averaging matrices of ``twinbench.models.common.pooling``.

    Args:
        output_size: ``(height, width)`` of the output, or one int for both.
        **kwargs: base layer arguments (e.g. ``name``).
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def build(self, input_shape):
        self.pool_h = adaptive_pool_matrix(int(input_shape[1]), self.output_size[0])
        self.pool_w = adaptive_pool_matrix(int(input_shape[2]), self.output_size[1])

    def call(self, inputs):
        pool_h = ops.cast(ops.convert_to_tensor(self.pool_h), inputs.dtype)
        pool_w = ops.cast(ops.convert_to_tensor(self.pool_w), inputs.dtype)
        return ops.einsum("ih,bhwc,jw->bijc", pool_h, inputs, pool_w)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}



def kaiming_normal_fan_out():
    """``torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`` for a ``Conv2D`` kernel.

    Normal with std ``sqrt(2 / fan_out)``, ``fan_out = out_channels * kh * kw`` in both frameworks.
    """
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def kaiming_normal_fan_out_depthwise():
    """``kaiming_normal_(mode="fan_out")`` for a ``DepthwiseConv2D`` kernel.

    PyTorch stores a depthwise kernel as ``(C, 1, kh, kw)``, so its fan_out is ``C * kh * kw``; Keras stores
    it as ``(kh, kw, C, 1)`` and computes that same product as its *fan_in*. Hence ``mode="fan_in"`` here.
    """
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")


def torch_linear_kernel():
    """``nn.Linear``'s default weight: ``kaiming_uniform_(a=sqrt(5))`` = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_linear_bias(fan_in: int):
    """``nn.Linear``'s default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


def normal_001():
    """``nn.init.normal_(w, 0, 0.01)``, torchvision's Linear init for VGG and MobileNetV2."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)
