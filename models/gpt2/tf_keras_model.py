"""GPT-2 in tf.keras (Keras 2, package ``tf-keras``): the same definition as ``keras_model.py``, in TensorFlow ops.

Same layers and names (``wte``, ``h_0_attn_c_attn``, ...); the three weight-free pieces (the tied embedding, the
position embedding, the causal attention) are written with ``tf`` ops, the way tf.keras code writes custom layers.
The parity details are the Keras 3 definition's: pre-LayerNorm with epsilon 1e-5, fused q/k/v, causal mask,
tanh-approximate GELU, tied output layer.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras
from tf_keras import layers

from twinbench.models.gpt2.config import GPT2_SIZES, INIT_STD, MLP_RATIO, GPT2Sizes, sizes_for

DROPOUT = 0.1
MASKED = -1e9


class TiedEmbedding(layers.Layer):
    """The token embedding ``wte``; with ``reverse=True`` the output layer ``h @ embeddings^T``."""

    def __init__(self, vocab_size, width, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.width = vocab_size, width
        self.embeddings_initializer = _normal(INIT_STD)

    def build(self, input_shape):
        self.context_length = input_shape[-1]  # built by its first call, on the token ids
        self.embeddings = self.add_weight(name="embeddings", shape=(self.vocab_size, self.width),
                                          initializer=self.embeddings_initializer)
        super().build(input_shape)

    def macs(self):
        """Multiply-accumulates per sequence (``twinbench.models.flops``): the lookup costs none, the output layer T x C x V."""
        return self.context_length * self.width * self.vocab_size

    def call(self, inputs, reverse=False):
        if reverse:
            return tf.matmul(inputs, self.embeddings, transpose_b=True)
        return tf.gather(self.embeddings, tf.cast(inputs, tf.int32))


class PositionEmbedding(layers.Layer):
    """The learned position embedding ``wpe``."""

    def __init__(self, n_positions, width, **kwargs):
        super().__init__(**kwargs)
        self.n_positions, self.width = n_positions, width
        self.embeddings_initializer = _normal(INIT_STD)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.n_positions, self.width),
                                          initializer=self.embeddings_initializer)
        super().build(input_shape)

    def macs(self):
        """A lookup: no multiply-accumulates (``twinbench.models.flops``)."""
        return 0

    def call(self, token_ids):
        return self.embeddings[tf.newaxis, : tf.shape(token_ids)[1]]


class CausalSelfAttention(layers.Layer):
    """Multi-head causal attention on the fused ``c_attn`` output ``[q | k | v]``."""

    def __init__(self, n_head, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_head = n_head
        self.attn_dropout = layers.Dropout(dropout)

    def build(self, input_shape):
        self.context_length, self.width = input_shape[1], input_shape[-1] // 3
        super().build(input_shape)

    def macs(self):
        """Multiply-accumulates per sequence (``twinbench.models.flops``): ``q k^T`` and ``weights v``, T x T x C each."""
        return 2 * self.context_length * self.context_length * self.width

    def call(self, qkv, training=None):
        batch, length, width = tf.shape(qkv)[0], tf.shape(qkv)[1], qkv.shape[-1] // 3
        head_dim = width // self.n_head

        def heads(x):  # (B, T, C) -> (B, heads, T, head_dim)
            return tf.transpose(tf.reshape(x, (batch, length, self.n_head, head_dim)), (0, 2, 1, 3))

        q, k, v = (heads(t) for t in tf.split(qkv, 3, axis=-1))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_dim)
        causal = tf.cast(tf.linalg.band_part(tf.ones((length, length)), -1, 0), tf.bool)  # query t sees keys 0..t
        scores = tf.where(causal, scores, tf.fill(tf.shape(scores), tf.constant(MASKED, scores.dtype)))
        weights = self.attn_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        out = tf.transpose(tf.matmul(weights, v), (0, 2, 1, 3))
        return tf.reshape(out, (batch, length, width))


def gelu_new(x):
    """GELU with the tanh approximation, transformers' "gelu_new"."""
    return tf_keras.activations.gelu(x, approximate=True)


def _normal(stddev):
    return tf_keras.initializers.RandomNormal(stddev=stddev)


def _block(x, i, sizes: GPT2Sizes, dropout):
    p, eps, width = f"h_{i}_", sizes.layer_norm_epsilon, sizes.n_embd
    # GPT-2's initialisation: N(0, 0.02) kernels; the two that write into the residual stream N(0, 0.02/sqrt(2L)).
    normal, residual = _normal(INIT_STD), _normal(INIT_STD / math.sqrt(2 * sizes.n_layer))
    h = layers.LayerNormalization(epsilon=eps, name=f"{p}ln_1")(x)
    h = layers.Dense(3 * width, kernel_initializer=normal, name=f"{p}attn_c_attn")(h)
    h = CausalSelfAttention(sizes.n_head, dropout, name=f"{p}attn")(h)
    h = layers.Dense(width, kernel_initializer=residual, name=f"{p}attn_c_proj")(h)
    x = layers.Add(name=f"{p}attn_residual")([x, layers.Dropout(dropout, name=f"{p}attn_resid_dropout")(h)])
    h = layers.LayerNormalization(epsilon=eps, name=f"{p}ln_2")(x)
    h = layers.Dense(MLP_RATIO * width, activation=gelu_new, kernel_initializer=normal,
                     name=f"{p}mlp_c_fc")(h)
    h = layers.Dense(width, kernel_initializer=residual, name=f"{p}mlp_c_proj")(h)
    return layers.Add(name=f"{p}mlp_residual")([x, layers.Dropout(dropout, name=f"{p}mlp_resid_dropout")(h)])


def build_gpt2(sizes: GPT2Sizes, *, context_length, dropout=DROPOUT, name="gpt2"):
    """A GPT-2 language model of ``sizes`` in tf.keras: token ids -> logits ``(batch, T, vocab)``."""
    tokens = tf_keras.Input(shape=(context_length,), dtype="int32", name="tokens")
    wte = TiedEmbedding(sizes.vocab_size, sizes.n_embd, name="wte")
    x = layers.Add(name="embed")([wte(tokens), PositionEmbedding(sizes.n_positions, sizes.n_embd, name="wpe")(tokens)])
    x = layers.Dropout(dropout, name="embd_dropout")(x)
    for i in range(sizes.n_layer):
        x = _block(x, i, sizes, dropout)
    x = layers.LayerNormalization(epsilon=sizes.layer_norm_epsilon, name="ln_f")(x)
    return tf_keras.Model(tokens, wte(x, reverse=True), name=name)


def gpt2(*, input_shape=(1024,), num_classes=50_257, dropout=DROPOUT, n_layer=None):
    """GPT-2 small in tf.keras (124,439,808 parameters at the defaults; ``n_layer``: fewer blocks,
    ``config.sizes_for``)."""
    sizes = sizes_for("gpt2", input_shape=input_shape, num_classes=num_classes, n_layer=n_layer)
    return build_gpt2(sizes, context_length=int(input_shape[0]), dropout=dropout, name="gpt2")


def gpt_tiny(*, input_shape=(64,), num_classes=GPT2_SIZES["gpt_tiny"].vocab_size, dropout=DROPOUT):
    """The CPU-sized GPT-2 in tf.keras (120,768 parameters at the defaults)."""
    sizes = sizes_for("gpt_tiny", input_shape=input_shape, num_classes=num_classes)
    return build_gpt2(sizes, context_length=int(input_shape[0]), dropout=dropout, name="gpt_tiny")
