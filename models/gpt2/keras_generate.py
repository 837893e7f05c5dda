"""Greedy decoding with a key/value cache, written once in Keras 3 ops for the Keras definition (every backend).

Generating token by token, a plain forward pass would recompute every earlier position's keys and values at each step.
A cache keeps them: per block one tensor ``(batch, 2, max_length, heads, head_dim)`` (keys at ``[:, 0]``, values at
``[:, 1]``, the layout of keras-hub's ``GPT2CausalLM``), allocated once for the whole sequence and written with
``ops.slice_update`` at the position of the tokens being fed. The prompt fills positions ``0 .. T-1`` in one pass
(the *prefill*); then each step feeds the one token chosen last and writes position ``index``.

The decoder runs on the definition's own layers (``wte``, ``h_0_ln_1``, ``h_0_attn_c_attn``, ..., ``ln_f``), called
one by one: no new weights, and the same network as ``keras_model.py`` (dropout, which only acts in training, left
out). What differs from the model's forward pass is the attention alone (``attend_with_cache``): queries at positions
``index .. index + t - 1`` against every cached key, the causal mask hiding the positions after each query (the
slots not written yet among them). ``tf_keras_generate.py`` is the same code in TensorFlow ops.
"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
from keras import ops

from twinbench.models.gpt2.generation import Generation, check_prompt
from twinbench.models.gpt2.keras_model import MASKED


def update_cache(cache, key, value, index):
    """``cache`` with ``key`` and ``value`` ``(batch, t, heads, head_dim)`` written at positions ``index .. index+t-1``."""
    return ops.slice_update(cache, (0, 0, index, 0, 0), ops.stack([key, value], axis=1))


def causal_mask(index, length, max_length):
    """``(length, max_length)`` booleans: the query at position ``index + i`` sees the keys at positions ``<= index + i``."""
    query_positions = index + ops.arange(length)
    return ops.arange(max_length)[None, :] <= query_positions[:, None]


def attend_with_cache(qkv, cache, index, n_head):
    """Causal self-attention of the ``t`` new positions on the fused ``[q | k | v]``, their keys and values cached.

    Returns:
        ``(output (batch, t, width), the updated cache)``.
    """
    batch, length, width = ops.shape(qkv)[0], ops.shape(qkv)[1], qkv.shape[-1] // 3
    head_dim = width // n_head
    q, k, v = (ops.reshape(x, (batch, length, n_head, head_dim)) for x in ops.split(qkv, 3, axis=-1))
    cache = update_cache(cache, k, v, index)
    keys, values = cache[:, 0], cache[:, 1]  # (batch, max_length, heads, head_dim)
    scores = ops.einsum("bqhd,bkhd->bhqk", q, keys) / math.sqrt(head_dim)
    mask = causal_mask(index, length, ops.shape(cache)[2])
    scores = ops.where(mask, scores, ops.cast(MASKED, scores.dtype))  # unwritten slots are after every query
    out = ops.einsum("bhqk,bkhd->bqhd", ops.softmax(scores, axis=-1), values)
    return ops.reshape(out, (batch, length, width)), cache


def forward_with_cache(layers, token_ids, caches, index):
    """Logits ``(batch, t, vocab)`` of ``token_ids`` ``(batch, t)`` at positions ``index ..``, and the updated caches.

    ``layers``: the model's layers by name. The block is ``keras_model._block`` without dropout.
    """
    positions = index + ops.arange(ops.shape(token_ids)[1])
    x = layers["wte"](token_ids) + ops.take(layers["wpe"].embeddings, positions, axis=0)[None]
    updated = []
    for i, cache in enumerate(caches):
        p = f"h_{i}_"
        h = layers[f"{p}attn_c_attn"](layers[f"{p}ln_1"](x))
        h, cache = attend_with_cache(h, cache, index, layers[f"{p}attn"].n_head)
        x = x + layers[f"{p}attn_c_proj"](h)
        x = x + layers[f"{p}mlp_c_proj"](layers[f"{p}mlp_c_fc"](layers[f"{p}ln_2"](x)))
        updated.append(cache)
    return layers["wte"](layers["ln_f"](x), reverse=True), updated


def no_gradients():
    """On the torch backend, a context that stops autograd from recording every op of the decoder (Keras layers hold
    trainable torch tensors; keras-hub's generate does the same); the other backends record nothing outside a
    gradient tape or transform."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def generate(model, prompt_ids, *, max_new_tokens, on_token=None) -> Generation:
    """Greedy decoding with the Keras definition of GPT-2 (``keras_model.build_gpt2``), on any backend.

    Args:
        model: the ``keras.Model`` of ``keras_model.gpt2``/``gpt_tiny``/``build_gpt2`` (its weights loaded).
        prompt_ids: ``(batch, prompt_length)`` token ids.
        max_new_tokens: how many tokens to append to every prompt (no end-of-text stop).
        on_token: called with each step's new tokens ``(batch,)`` as a NumPy array, as soon as they are chosen.

    Returns:
        A ``Generation``: the sequences and the logits each new token was chosen from.
    """
    layers = {layer.name: layer for layer in model.layers}
    wte, wpe, attention = layers["wte"], layers["wpe"], layers["h_0_attn"]
    prompt = check_prompt(prompt_ids, max_new_tokens=max_new_tokens, n_positions=wpe.n_positions,
                          vocab_size=wte.vocab_size)
    batch, length = prompt.shape
    n_layer = sum(1 for name in layers if name.endswith("_ln_1"))  # one per block
    head_dim = wte.width // attention.n_head
    caches = [ops.zeros((batch, 2, length + max_new_tokens, attention.n_head, head_dim), dtype=model.compute_dtype)
              for _ in range(n_layer)]
    new_tokens, step_logits = [], []
    with no_gradients():
        logits, caches = forward_with_cache(layers, ops.convert_to_tensor(prompt, "int32"), caches, 0)  # the prefill
        for step in range(max_new_tokens):
            last = logits[:, -1, :]
            token = ops.argmax(last, axis=-1)
            new_tokens.append(token)
            step_logits.append(last)
            if on_token is not None:
                on_token(ops.convert_to_numpy(token))
            if step + 1 < max_new_tokens:  # the last token needs no forward pass of its own
                logits, caches = forward_with_cache(layers, ops.cast(token[:, None], "int32"), caches, length + step)
    new = np.stack([ops.convert_to_numpy(t) for t in new_tokens], axis=1).astype(np.int64)
    return Generation(sequences=np.concatenate([prompt, new], axis=1), prompt_length=length,
                      logits=np.stack([ops.convert_to_numpy(x) for x in step_logits], axis=1))
