"""GNMT, defined once in Keras 3 (runs on the torch, tensorflow and jax backends).

The architecture and its parity details are in ``models/gnmt/config.py``. How Keras spells them:

- ``keras.layers.LSTM(activation="tanh", recurrent_activation="sigmoid")``, one bias per LSTM, gate blocks
  ``i, f, c, o`` along the kernel's columns; zero initial states (no ``initial_state`` passed);
- padding: the source mask, ``source != PAD``, is passed to the bidirectional layer (``mask=``) and, explicitly,
  to the attention. Keras then attaches it to the layer's output, so it travels through every encoder layer (each
  skips the padding: the state is carried, the last output repeated) up to the attention's keys. The reference,
  and the PyTorch twin, pack only the bidirectional layer; the numbers at real positions are the same;
- the fused cuDNN kernel is Keras' choice per layer (``LSTM(use_cudnn="auto")``): on a GPU with the settings used
  here (tanh, sigmoid, a bias, no unrolling, no recurrent dropout), TensorFlow takes it even with a right-padded
  mask, while the torch and jax backends take it only for *unmasked* layers (here the decoder's) and run Keras'
  generic loop for the masked encoder. On a CPU every backend runs the generic loop (``twinbench.backends.recurrent``).

Inputs ``(source, decoder_input)``, int32 ``(N, S)`` and ``(N, T)``; output: logits ``(N, T, vocabulary)``.
The loss is ``token_loss()``: cross-entropy over the labelled tokens, PAD ignored.
"""

import keras
from keras import layers, ops

from twinbench.models.gnmt.config import (
    DEFAULT_SIZE,
    INIT_SCALE,
    MASKED_SCORE,
    PAD,
    attention_scale,
    gnmt_config,
)


def _uniform():
    return keras.initializers.RandomUniform(-INIT_SCALE, INIT_SCALE)


@keras.saving.register_keras_serializable(package="twinbench")
class NormalizedBahdanauAttention(layers.Layer):
    """MLPerf's normalised Bahdanau attention over the encoder's outputs.

    ``score(q, k) = g * v / |v| . tanh(q + k + b)`` for a projected query ``q`` (``attention_query``) and projected
    key ``k`` (``attention_key``); padded source positions score ``MASKED_SCORE``; the context is the
    softmax-weighted sum of the encoder's outputs.

    Call with ``[query, keys, values, source_mask]``: ``(N, T, U)``, ``(N, S, U)``, ``(N, S, H)``, bool ``(N, S)``.
    Returns the context ``(N, T, H)``.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True  # the keys arrive with the source mask attached; it is passed explicitly too
        # Read by twinbench.models.weights.canonical_weights: the initializer of each variable, by the variable's name.
        self.linear_att_initializer = _uniform()
        self.normalize_scalar_initializer = keras.initializers.Constant(attention_scale(units))
        self.normalize_bias_initializer = keras.initializers.Zeros()

    def build(self, input_shape):
        self.linear_att = self.add_weight(name="linear_att", shape=(self.units,),
                                          initializer=self.linear_att_initializer)
        self.normalize_scalar = self.add_weight(name="normalize_scalar", shape=(),
                                                initializer=self.normalize_scalar_initializer)
        self.normalize_bias = self.add_weight(name="normalize_bias", shape=(self.units,),
                                              initializer=self.normalize_bias_initializer)

    def call(self, inputs):
        query, keys, values, source_mask = inputs
        summed = ops.expand_dims(query, 2) + ops.expand_dims(keys, 1) + self.normalize_bias  # (N, T, S, U)
        v = self.linear_att / ops.norm(self.linear_att) * self.normalize_scalar
        scores = ops.matmul(ops.tanh(summed), v)  # (N, T, S)
        scores = ops.where(ops.expand_dims(source_mask, 1), scores, MASKED_SCORE)
        return ops.matmul(ops.softmax(scores, axis=-1), values)

    def compute_mask(self, inputs, mask=None):
        return None  # the context has no padding: one vector per target position

    def macs(self):
        """Multiply-accumulates per sample (``twinbench.models.flops``): the scores' dot products and the weighted sum."""
        query, keys, values, _ = self.input
        return query.shape[1] * keys.shape[1] * (self.units + values.shape[-1])

    def compute_output_shape(self, input_shape):
        query, _, values, _ = input_shape
        return (*query[:2], values[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _lstm(units, name):
    return layers.LSTM(units, return_sequences=True, activation="tanh", recurrent_activation="sigmoid",
                       kernel_initializer=_uniform(), recurrent_initializer=_uniform(), bias_initializer=_uniform(),
                       unit_forget_bias=False, name=name)


def gnmt(*, input_shape, num_classes, size=DEFAULT_SIZE, dropout=None):
    """GNMT (Wu et al. 2016, arXiv:1609.08144) in the shape of the MLPerf reference (Keras 3).

    Args:
        input_shape: ``(source_length, target_length)``.
        num_classes: vocabulary size, shared by source and target (the logits' last axis).
        size: ``"small"`` (CPU), ``"reference"`` (MLPerf: 1024 units, 4 layers), or a ``GNMTConfig``.
        dropout: overrides the size's dropout rate (the twin tests use 0.0).

    Returns:
        A ``keras.Model`` mapping ``(source, decoder_input)`` to logits ``(N, T, num_classes)``;
        ``twinbench.models.gnmt.config.param_count`` parameters.
    """
    config = gnmt_config(size)
    hidden, rate = config.hidden, config.dropout if dropout is None else dropout
    source_length, target_length = input_shape
    source = keras.Input(shape=(source_length,), dtype="int32", name="source")
    decoder_input = keras.Input(shape=(target_length,), dtype="int32", name="decoder_input")
    source_mask = ops.not_equal(source, PAD)
    embedding = layers.Embedding(num_classes, hidden, embeddings_initializer=_uniform(), name="embedding")

    # Encoder: a bidirectional layer over the real tokens only, then unidirectional layers, residual from the third.
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

    # Decoder: the first LSTM's outputs query the attention; its context joins every later layer's input.
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
    return keras.Model([source, decoder_input], logits, name="gnmt")


def token_loss():
    """Cross-entropy over the labelled tokens: PAD labels ignored, the mean over the others in the batch."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)
