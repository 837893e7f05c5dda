"""GNMT in tf.keras (Keras 2, package ``tf-keras``): the Keras 3 definition line by line, TensorFlow ops inside.

Same layers, names and parity choices as ``models/gnmt/keras_model.py`` (one bias per LSTM, gates ``i, f, c, o``,
sigmoid recurrent activation, zero initial states, the source mask given to the bidirectional layer and
propagated up the encoder). tf.keras' ``LSTM`` picks its fused cuDNN kernel itself: on a GPU, with these settings
and right-padded masks; on a CPU it runs its standard loop.
"""

import tensorflow as tf
import tf_keras
from tf_keras import layers

from twinbench.models.gnmt.config import (
    DEFAULT_SIZE,
    INIT_SCALE,
    MASKED_SCORE,
    PAD,
    attention_scale,
    gnmt_config,
)


def _uniform():
    return tf_keras.initializers.RandomUniform(-INIT_SCALE, INIT_SCALE)


class NormalizedBahdanauAttention(layers.Layer):
    """MLPerf's normalised Bahdanau attention: ``score(q, k) = g * v / |v| . tanh(q + k + b)``, then softmax.

    Call with ``[query, keys, values, source_mask]``; returns the context ``(N, T, H)``.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape):
        self.linear_att = self.add_weight(name="linear_att", shape=(self.units,), initializer=_uniform())
        self.normalize_scalar = self.add_weight(name="normalize_scalar", shape=(),
                                                initializer=tf_keras.initializers.Constant(attention_scale(self.units)))
        self.normalize_bias = self.add_weight(name="normalize_bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        query, keys, values, source_mask = inputs
        summed = tf.expand_dims(query, 2) + tf.expand_dims(keys, 1) + self.normalize_bias  # (N, T, S, U)
        v = self.linear_att / tf.norm(self.linear_att) * self.normalize_scalar
        scores = tf.linalg.matvec(tf.tanh(summed), v)  # (N, T, S)
        scores = tf.where(tf.expand_dims(source_mask, 1), scores, tf.cast(MASKED_SCORE, scores.dtype))
        return tf.matmul(tf.nn.softmax(scores, axis=-1), values)

    def compute_mask(self, inputs, mask=None):
        return None

    def macs(self):
        """Multiply-accumulates per sample (``twinbench.models.flops``), as in the Keras 3 layer."""
        query, keys, values, _ = self.input
        return query.shape[1] * keys.shape[1] * (self.units + values.shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _lstm(units, name):
    return layers.LSTM(units, return_sequences=True, activation="tanh", recurrent_activation="sigmoid",
                       kernel_initializer=_uniform(), recurrent_initializer=_uniform(), bias_initializer=_uniform(),
                       unit_forget_bias=False, name=name)


def gnmt(*, input_shape, num_classes, size=DEFAULT_SIZE, dropout=None):
    """GNMT (Wu et al. 2016) in tf.keras; arguments and output as ``twinbench.models.gnmt.keras_model.gnmt``."""
    config = gnmt_config(size)
    hidden, rate = config.hidden, config.dropout if dropout is None else dropout
    source_length, target_length = input_shape
    source = tf_keras.Input(shape=(source_length,), dtype="int32", name="source")
    decoder_input = tf_keras.Input(shape=(target_length,), dtype="int32", name="decoder_input")
    source_mask = tf.not_equal(source, PAD)
    embedding = layers.Embedding(num_classes, hidden, embeddings_initializer=_uniform(), name="embedding")

    x = layers.Dropout(rate, name="encoder_dropout_0")(embedding(source))
    x = layers.Bidirectional(_lstm(hidden, "encoder_lstm_0"), name="encoder_lstm_0")(x, mask=source_mask)
    x = layers.Dropout(rate, name="encoder_dropout_1")(x)
    x = _lstm(hidden, "encoder_lstm_1")(x)
    for i in range(2, config.num_layers):
        residual = x
        x = layers.Dropout(rate, name=f"encoder_dropout_{i}")(x)
        x = _lstm(hidden, f"encoder_lstm_{i}")(x)
        x = layers.Add(name=f"encoder_residual_{i}")([x, residual])
    encoder_outputs = x

    x = layers.Dropout(rate, name="decoder_dropout_0")(embedding(decoder_input))
    x = _lstm(hidden, "decoder_lstm_0")(x)
    query = layers.Dense(hidden, use_bias=False, kernel_initializer=_uniform(), name="attention_query")(x)
    keys = layers.Dense(hidden, use_bias=False, kernel_initializer=_uniform(), name="attention_key")(encoder_outputs)
    context = NormalizedBahdanauAttention(hidden, name="attention")([query, keys, encoder_outputs, source_mask])
    for i in range(1, config.num_layers):
        residual = x
        x = layers.Dropout(rate, name=f"decoder_dropout_{i}")(x)
        x = layers.Concatenate(name=f"decoder_concat_{i}")([x, context])
        x = _lstm(hidden, f"decoder_lstm_{i}")(x)
        if i >= 2:
            x = layers.Add(name=f"decoder_residual_{i}")([x, residual])
    logits = layers.Dense(num_classes, kernel_initializer=_uniform(), bias_initializer=_uniform(), name="logits")(x)
    return tf_keras.Model([source, decoder_input], logits, name="gnmt")


def token_loss():
    """Cross-entropy over the labelled tokens: PAD labels ignored, the mean over the others in the batch."""
    return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)
