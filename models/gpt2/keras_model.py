"""GPT-2, defined once in Keras 3 (runs on the torch, tensorflow and jax backends).

The network of Radford et al., "Language Models are Unsupervised Multitask Learners" (OpenAI 2019), written to be
numerically identical to Hugging Face transformers' ``GPT2LMHeadModel`` built from a ``GPT2Config`` (the PyTorch
twin, ``models/gpt2/torch_model.py``). What has to be right for that:

- **pre-LayerNorm blocks**: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``, and a final ``ln_f``; every
  LayerNorm with epsilon 1e-5 (``GPT2Config.layer_norm_epsilon``; Keras' default is 1e-3).
- **the fused q/k/v projection** ``c_attn``: one ``Dense(3 * n_embd)`` whose output is split into q, k and v in
  that order, each then split into ``n_head`` heads, as Hugging Face's ``Conv1D`` does. Its weight is stored
  ``(in, out)`` like a ``Dense`` kernel (``nn.Linear`` would be ``(out, in)``), so weights copy without transposes.
- **causal attention**: scores ``q k^T / sqrt(head_dim)``, positions after the query masked out before the softmax.
- **GELU with the tanh approximation** ("gelu_new" in transformers: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
  x^3)))``, Hendrycks & Gimpel 2016), not the exact erf GELU.
- **learned position embeddings** ``wpe`` added to the token embeddings ``wte``.
- **tied output layer**: the logits are ``h @ wte^T``: the input embedding used a second time (counted once).
- dropout (``GPT2Config``'s resid/embd/attn ``pdrop``, 0.1) after the embeddings, on the attention
  probabilities, and after each residual branch; the twin tests switch it off (masks cannot match).

Layer names follow Hugging Face's module names with ``_`` for ``.`` (``h_0_attn_c_attn`` is
``transformer.h.0.attn.c_attn``): ``models/gpt2/weights.py`` maps them.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from twinbench.models.gpt2.config import GPT2_SIZES, INIT_STD, MLP_RATIO, GPT2Sizes, sizes_for

DROPOUT = 0.1  # GPT2Config's resid_pdrop = embd_pdrop = attn_pdrop
MASKED = -1e9  # a score that the softmax turns into exactly 0


class TiedEmbedding(layers.Layer):
    """The token embedding ``wte``; called with ``reverse=True`` it is the output layer: ``h @ embeddings^T``."""

    def __init__(self, vocab_size, width, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.width = vocab_size, width
        self.embeddings_initializer = _normal(INIT_STD)

    def build(self, input_shape):
        self.context_length = input_shape[-1]  # built by its first call, on the token ids
        self.embeddings = self.add_weight(shape=(self.vocab_size, self.width), name="embeddings",
                                          initializer=self.embeddings_initializer)

    def macs(self):
        """Multiply-accumulates per sequence (``twinbench.models.flops``): the lookup costs none, the output layer T x C x V."""
        return self.context_length * self.width * self.vocab_size

    def call(self, inputs, reverse=False):
        if reverse:
            return ops.matmul(inputs, ops.transpose(self.embeddings))
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)


class PositionEmbedding(layers.Layer):
    """The learned position embedding ``wpe``: row ``t`` is added at position ``t`` (from the token ids' length)."""

    def __init__(self, n_positions, width, **kwargs):
        super().__init__(**kwargs)
        self.n_positions, self.width = n_positions, width
        self.embeddings_initializer = _normal(INIT_STD)

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.n_positions, self.width), name="embeddings",
                                          initializer=self.embeddings_initializer)

    def macs(self):
        """A lookup: no multiply-accumulates (``twinbench.models.flops``)."""
        return 0

    def call(self, token_ids):
        positions = ops.arange(ops.shape(token_ids)[1])
        return ops.expand_dims(ops.take(self.embeddings, positions, axis=0), 0)


class CausalSelfAttention(layers.Layer):
    """Multi-head causal attention on the fused ``c_attn`` output ``[q | k | v]`` (no weights of its own)."""

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

    def _heads(self, x, batch, length, head_dim):  # (B, T, C) -> (B, heads, T, head_dim)
        return ops.transpose(ops.reshape(x, (batch, length, self.n_head, head_dim)), (0, 2, 1, 3))

    def call(self, qkv, training=None):
        batch, length, width = ops.shape(qkv)[0], ops.shape(qkv)[1], qkv.shape[-1] // 3
        head_dim = width // self.n_head
        q, k, v = ops.split(qkv, 3, axis=-1)
        q, k, v = (self._heads(t, batch, length, head_dim) for t in (q, k, v))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(head_dim)
        causal = ops.tril(ops.ones((length, length), dtype="bool"))  # query t sees keys 0..t
        scores = ops.where(causal, scores, ops.cast(MASKED, scores.dtype))  # broadcast: no (B, heads, T, T) fill
        weights = self.attn_dropout(ops.softmax(scores, axis=-1), training=training)
        out = ops.matmul(weights, v)  # (B, heads, T, head_dim)
        return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, length, width))


def gelu_new(x):
    """GELU with the tanh approximation, transformers' "gelu_new" (Keras' ``gelu(approximate=True)``)."""
    return keras.activations.gelu(x, approximate=True)


def _normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev)


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
    """A GPT-2 language model of ``sizes``: token ids ``(batch, context_length)`` -> logits ``(batch, T, vocab)``."""
    tokens = keras.Input(shape=(context_length,), dtype="int32", name="tokens")
    wte = TiedEmbedding(sizes.vocab_size, sizes.n_embd, name="wte")
    x = layers.Add(name="embed")([wte(tokens), PositionEmbedding(sizes.n_positions, sizes.n_embd, name="wpe")(tokens)])
    x = layers.Dropout(dropout, name="embd_dropout")(x)
    for i in range(sizes.n_layer):
        x = _block(x, i, sizes, dropout)
    x = layers.LayerNormalization(epsilon=sizes.layer_norm_epsilon, name="ln_f")(x)
    logits = wte(x, reverse=True)  # the tied output layer: no weights of its own
    return keras.Model(tokens, logits, name=name)


def gpt2(*, input_shape=(1024,), num_classes=50_257, dropout=DROPOUT, n_layer=None):
    """GPT-2 small (Keras 3), the 124M model: 12 blocks of width 768, 12 heads, 1,024 positions.

    Args:
        input_shape: ``(context_length,)``, at most 1,024 tokens.
        num_classes: vocabulary size (GPT-2's byte-pair vocabulary: 50,257).
        dropout: GPT2Config's resid/embd/attn dropout (0.1); 0.0 for the twin tests.
        n_layer: blocks (default 12); the twin tests build fewer of the same width.

    Returns:
        A ``keras.Model`` mapping int32 token ids ``(batch, T)`` to next-token logits ``(batch, T, vocab)``;
        124,439,808 parameters at the defaults (the tied output layer counted once).
    """
    sizes = sizes_for("gpt2", input_shape=input_shape, num_classes=num_classes, n_layer=n_layer)
    return build_gpt2(sizes, context_length=int(input_shape[0]), dropout=dropout, name="gpt2")


def gpt_tiny(*, input_shape=(64,), num_classes=GPT2_SIZES["gpt_tiny"].vocab_size, dropout=DROPOUT):
    """A CPU-sized GPT-2 (Keras 3): 2 blocks of width 64, 4 heads, 64 positions, byte-level vocabulary.

    Args:
        input_shape: ``(context_length,)``, at most 64 tokens.
        num_classes: vocabulary size (259: PAD, BOS, EOS and the 256 byte values, ``data/text.py``).
        dropout: resid/embd/attn dropout (0.1); 0.0 for the twin tests.

    Returns:
        A ``keras.Model`` mapping token ids to next-token logits; 120,768 parameters at the defaults.
    """
    sizes = sizes_for("gpt_tiny", input_shape=input_shape, num_classes=num_classes)
    return build_gpt2(sizes, context_length=int(input_shape[0]), dropout=dropout, name="gpt_tiny")
