"""Greedy decoding with a key/value cache for the tf.keras twin, in TensorFlow ops: ``keras_generate.py`` translated.

The same cache (per block ``(batch, 2, max_length, heads, head_dim)``, keys at ``[:, 0]``, values at ``[:, 1]``), the
same prefill and steps, on the twin's own layers by name. TensorFlow tensors are immutable: a cache update builds
the new cache from the slices around the written positions, as tf code without Keras 3's ``ops.slice_update`` does.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import tensorflow as tf

from twinbench.models.gpt2.generation import Generation, check_prompt
from twinbench.models.gpt2.tf_keras_model import MASKED


def update_cache(cache, key, value, index):
    """``cache`` with ``key`` and ``value`` ``(batch, t, heads, head_dim)`` written at positions ``index .. index+t-1``."""
    written = tf.stack([key, value], axis=1)
    return tf.concat([cache[:, :, :index], written, cache[:, :, index + tf.shape(key)[1]:]], axis=2)


def causal_mask(index, length, max_length):
    """``(length, max_length)`` booleans: the query at position ``index + i`` sees the keys at positions ``<= index + i``."""
    query_positions = index + tf.range(length)
    return tf.range(max_length)[tf.newaxis, :] <= query_positions[:, tf.newaxis]


def attend_with_cache(qkv, cache, index, n_head):
    """Causal self-attention of the ``t`` new positions on the fused ``[q | k | v]``, their keys and values cached."""
    batch, length, width = tf.shape(qkv)[0], tf.shape(qkv)[1], qkv.shape[-1] // 3
    head_dim = width // n_head
    q, k, v = (tf.reshape(x, (batch, length, n_head, head_dim)) for x in tf.split(qkv, 3, axis=-1))
    cache = update_cache(cache, k, v, index)
    keys, values = cache[:, 0], cache[:, 1]  # (batch, max_length, heads, head_dim)
    scores = tf.einsum("bqhd,bkhd->bhqk", q, keys) / math.sqrt(head_dim)
    mask = causal_mask(index, length, tf.shape(cache)[2])
    scores = tf.where(mask, scores, tf.constant(MASKED, scores.dtype))  # unwritten slots are after every query
    out = tf.einsum("bhqk,bkhd->bqhd", tf.nn.softmax(scores, axis=-1), values)
    return tf.reshape(out, (batch, length, width)), cache


def forward_with_cache(layers, token_ids, caches, index):
    """Logits ``(batch, t, vocab)`` of ``token_ids`` at positions ``index ..``, and the updated caches."""
    positions = index + tf.range(tf.shape(token_ids)[1])
    x = layers["wte"](token_ids) + tf.gather(layers["wpe"].embeddings, positions)[tf.newaxis]
    updated = []
    for i, cache in enumerate(caches):
        p = f"h_{i}_"
        h = layers[f"{p}attn_c_attn"](layers[f"{p}ln_1"](x))
        h, cache = attend_with_cache(h, cache, index, layers[f"{p}attn"].n_head)
        x = x + layers[f"{p}attn_c_proj"](h)
        x = x + layers[f"{p}mlp_c_proj"](layers[f"{p}mlp_c_fc"](layers[f"{p}ln_2"](x)))
        updated.append(cache)
    return layers["wte"](layers["ln_f"](x), reverse=True), updated


_COMPILED = weakref.WeakKeyDictionary()  # model -> its compiled forward_with_cache


def compiled_forward(model, layers):
    """``forward_with_cache`` as one ``tf.function`` (made once per model; the position a tensor, so one trace serves
    every step, and one the prefill). A graph, as tf.keras' own predict runs by default, not XLA: the cache update's
    slices around a tensor position have shapes known only at run time, which XLA needs when it compiles (keras
    [tensorflow]'s step compiles with XLA because Keras 3's ``ops.slice_update`` is XLA's dynamic_update_slice)."""
    if model not in _COMPILED:
        graph = tf.function(lambda token_ids, caches, index: forward_with_cache(layers, token_ids, caches, index))
        _COMPILED[model] = lambda token_ids, caches, index: graph(token_ids, caches, tf.constant(index, tf.int32))
    return _COMPILED[model]


def generate(model, prompt_ids, *, max_new_tokens, on_token=None, compiled=False,
             compile_mode="default") -> Generation:
    """Greedy decoding with the tf.keras twin of GPT-2 (``tf_keras_model.build_gpt2``): ``keras_generate.generate``'s
    arguments and result (``compiled``: the prefill and each step through ``compiled_forward``; ``compile_mode``:
    torch.compile's, ``default`` only here)."""
    if compile_mode != "default":
        raise ValueError(f"--compile-mode is torch.compile's; tf_keras compiles with tf.function. Received: "
                         f"compile_mode={compile_mode!r}. Valid: default.")
    layers = {layer.name: layer for layer in model.layers}
    wte, wpe, attention = layers["wte"], layers["wpe"], layers["h_0_attn"]
    prompt = check_prompt(prompt_ids, max_new_tokens=max_new_tokens, n_positions=wpe.n_positions,
                          vocab_size=wte.vocab_size)
    batch, length = prompt.shape
    n_layer = sum(1 for name in layers if name.endswith("_ln_1"))  # one per block
    head_dim = wte.width // attention.n_head
    caches = [tf.zeros((batch, 2, length + max_new_tokens, attention.n_head, head_dim), dtype=model.compute_dtype)
              for _ in range(n_layer)]
    if compiled:
        forward = compiled_forward(model, layers)
    else:
        def forward(token_ids, caches, index):
            return forward_with_cache(layers, token_ids, caches, index)
    logits, caches = forward(tf.constant(prompt, tf.int32), caches, 0)  # the prefill
    new_tokens, step_logits = [], []
    for step in range(max_new_tokens):
        last = logits[:, -1, :]
        token = tf.argmax(last, axis=-1, output_type=tf.int32)
        new_tokens.append(token)
        step_logits.append(last)
        if on_token is not None:
            on_token(token.numpy())
        if step + 1 < max_new_tokens:  # the last token needs no forward pass of its own
            logits, caches = forward(token[:, tf.newaxis], caches, length + step)
    new = np.stack([t.numpy() for t in new_tokens], axis=1).astype(np.int64)
    return Generation(sequences=np.concatenate([prompt, new], axis=1), prompt_length=length,
                      logits=np.stack([x.numpy() for x in step_logits], axis=1))
