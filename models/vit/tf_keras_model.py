"""The Vision Transformer (torchvision definition) in tf.keras (Keras 2): the line-by-line twin of
``keras_model.py``, whose docstring lists what makes it torchvision's network."""

import math

import tensorflow as tf
import tf_keras
from tf_keras import layers

from twinbench.models.common.tf_keras_layers import torch_linear_bias, torch_linear_kernel
from twinbench.models.vit.config import (
    CONFIGS,
    DROPOUT,
    GELU_APPROXIMATE,
    LAYER_NORM_EPSILON,
    MLP_BIAS_STD,
    POS_EMBEDDING_STD,
    check_image_size,
    num_patches,
)


class ClassToken(layers.Layer):
    """Puts a learned ``(1, 1, D)`` token in front of the sequence: torchvision's ``class_token`` (zeros at init)."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros", name="token")

    def call(self, inputs):
        token = tf.broadcast_to(tf.cast(self.token, inputs.dtype), (tf.shape(inputs)[0], 1, inputs.shape[-1]))
        return tf.concat([token, inputs], axis=1)


class PositionEmbedding(layers.Layer):
    """Adds a learned ``(1, tokens, D)`` embedding: torchvision's ``encoder.pos_embedding`` (normal, std 0.02)."""

    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(1, input_shape[1], input_shape[2]), name="embedding",
                                         initializer=tf_keras.initializers.RandomNormal(stddev=POS_EMBEDDING_STD))

    def call(self, inputs):
        return inputs + tf.cast(self.embedding, inputs.dtype)


class SelfAttention(layers.Layer):
    """Multi-head scaled dot-product attention on a packed ``(batch, tokens, 3D)`` q, k, v tensor (q, k, v order)."""

    def __init__(self, num_heads, *, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.dropout_layer = layers.Dropout(dropout)

    def call(self, qkv, training=None):
        tokens, width = qkv.shape[1], qkv.shape[2] // 3
        head_dim = width // self.num_heads

        def heads(x):  # (batch, tokens, D) -> (batch, heads, tokens, D / heads)
            return tf.transpose(tf.reshape(x, (-1, tokens, self.num_heads, head_dim)), (0, 2, 1, 3))

        q, k, v = (heads(part) for part in tf.split(qkv, 3, axis=-1))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(head_dim))
        weights = self.dropout_layer(tf.nn.softmax(scores, axis=-1), training=training)
        out = tf.transpose(tf.matmul(weights, v), (0, 2, 1, 3))
        return tf.reshape(out, (-1, tokens, width))


class GELU(layers.Layer):
    """``nn.GELU()``: exact (erf) unless ``approximate=True``."""

    def __init__(self, *, approximate=GELU_APPROXIMATE, **kwargs):
        super().__init__(**kwargs)
        self.approximate = approximate

    def call(self, inputs):
        return tf.nn.gelu(inputs, approximate=self.approximate)


class ClassTokenOutput(layers.Layer):
    """Token 0 of the sequence, ``x[:, 0]``."""

    def call(self, inputs):
        return inputs[:, 0]


def _mlp_dense(units, name):
    """A Dense layer of torchvision's ``MLPBlock``: ``xavier_uniform_`` kernel, ``normal_(std=1e-6)`` bias."""
    return layers.Dense(units, kernel_initializer="glorot_uniform",
                        bias_initializer=tf_keras.initializers.RandomNormal(stddev=MLP_BIAS_STD), name=name)


def encoder_block(x, *, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, approximate_gelu, name):
    """torchvision's ``EncoderBlock``: pre-LayerNorm attention and MLP, each added to its input."""
    y = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{name}_ln_1")(x)
    y = layers.Dense(3 * hidden_dim, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                     name=f"{name}_attention_qkv")(y)
    y = SelfAttention(num_heads, dropout=attention_dropout, name=f"{name}_attention")(y)
    y = layers.Dense(hidden_dim, kernel_initializer=torch_linear_kernel(), bias_initializer="zeros",
                     name=f"{name}_attention_out")(y)
    y = layers.Dropout(dropout, name=f"{name}_attention_dropout")(y)
    x = layers.Add(name=f"{name}_add_1")([x, y])
    y = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{name}_ln_2")(x)
    y = _mlp_dense(mlp_dim, f"{name}_mlp_1")(y)
    y = GELU(approximate=approximate_gelu, name=f"{name}_gelu")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout_1")(y)
    y = _mlp_dense(hidden_dim, f"{name}_mlp_2")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout_2")(y)
    return layers.Add(name=f"{name}_add_2")([x, y])


def vision_transformer(name, *, input_shape, num_classes, dropout=DROPOUT, attention_dropout=DROPOUT,
                       zero_head=True, num_layers=None, approximate_gelu=GELU_APPROXIMATE):
    """A Vision Transformer of the configuration ``name`` in tf.keras (arguments as in ``keras_model``)."""
    config = CONFIGS[name]
    image_size = check_image_size(name, config, input_shape)
    d = config.hidden_dim
    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(d, config.patch_size, strides=config.patch_size, padding="valid",
                      kernel_initializer=tf_keras.initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal"),
                      name="conv_proj")(inputs)
    x = layers.Reshape((num_patches(config, image_size), d), name="patches")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="pos_embedding")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    for i in range(config.num_layers if num_layers is None else num_layers):
        x = encoder_block(x, num_heads=config.num_heads, hidden_dim=d, mlp_dim=config.mlp_dim, dropout=dropout,
                          attention_dropout=attention_dropout, approximate_gelu=approximate_gelu,
                          name=f"encoder_layer_{i}")
    x = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="encoder_ln")(x)
    x = ClassTokenOutput(name="class_token_output")(x)
    head_kernel = "zeros" if zero_head else torch_linear_kernel()
    head_bias = "zeros" if zero_head else torch_linear_bias(d)
    outputs = layers.Dense(num_classes, kernel_initializer=head_kernel, bias_initializer=head_bias, name="head")(x)
    return tf_keras.Model(inputs, outputs, name=name)


def vit_b_16(*, input_shape=(224, 224, 3), num_classes=1000, **options):
    """ViT-B/16 (torchvision's ``vit_b_16``) in tf.keras; 86,567,656 parameters at 224x224 and 1000 classes."""
    return vision_transformer("vit_b_16", input_shape=input_shape, num_classes=num_classes, **options)


def vit_tiny(*, input_shape=(32, 32, 3), num_classes=10, **options):
    """ViT at CPU size in tf.keras; 208,074 parameters at 10 classes."""
    return vision_transformer("vit_tiny", input_shape=input_shape, num_classes=num_classes, **options)
