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
import weakref

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


_COMPILED = weakref.WeakKeyDictionary()  # model -> its compiled forward_with_cache


def compiled_forward(model, layers):
    """``forward_with_cache`` compiled by the backend's own compiler, made once per model: ``jax.jit`` (the weights
    passed in as arguments through a ``keras.StatelessScope``, as Keras' JAX trainer does, not baked into the program
    as constants) or ``tf.function(jit_compile=True)`` (XLA; the position a tensor, so one trace serves every step).
    Each compiles twice: once for the prefill's shape, once for a step's. Not on torch: ``torch.compile`` of the step
    guards on the type of every Keras layer it calls, recompiles past its cache limit (5 minutes for gpt_tiny on 2
    CPU cores) and then runs the step eagerly; ``ValueError`` (one line)."""
    if model in _COMPILED:
        return _COMPILED[model]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        variables = model.variables

        def step(values, token_ids, caches, index):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return forward_with_cache(layers, token_ids, caches, index)

        jitted = jax.jit(step)

        def forward(token_ids, caches, index):
            return jitted([variable.value for variable in variables], token_ids, caches, index)
    elif backend == "tensorflow":
        import tensorflow as tf

        xla = tf.function(lambda token_ids, caches, index: forward_with_cache(layers, token_ids, caches, index),
                          jit_compile=True)

        def forward(token_ids, caches, index):
            return xla(token_ids, caches, tf.constant(index, tf.int32))
    else:  # torch.compile guards on every Keras layer's type: it recompiles past its cache limit, then runs eagerly
        raise ValueError(f"Compiled decoding runs on jax (jax.jit) and tensorflow (XLA); on {backend}, the Keras step "
                         "under torch.compile recompiles for each Keras layer until it gives up (minutes). Valid for "
                         f"the {backend} backend: --jit default, off.")
    _COMPILED[model] = forward
    return forward


def generate(model, prompt_ids, *, max_new_tokens, on_token=None, compiled=False,
             compile_mode="default") -> Generation:
    """Greedy decoding with the Keras definition of GPT-2 (``keras_model.build_gpt2``), on any backend.

    Args:
        model: the ``keras.Model`` of ``keras_model.gpt2``/``gpt_tiny``/``build_gpt2`` (its weights loaded).
        prompt_ids: ``(batch, prompt_length)`` token ids.
        max_new_tokens: how many tokens to append to every prompt (no end-of-text stop).
        on_token: called with each step's new tokens ``(batch,)`` as a NumPy array, as soon as they are chosen.
        compiled: run the prefill and each step through ``compiled_forward`` (the backend's compiler) instead of
            op by op; the loop around it (argmax, handing over each token) stays in Python, as a streaming server's.
        compile_mode: torch.compile's mode: ``default`` only (no torch.compile here).

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
    if compile_mode != "default":
        raise ValueError(f"--compile-mode is torch.compile's; the Keras decoder compiles with jax.jit or XLA. "
                         f"Received: compile_mode={compile_mode!r}. Valid: default.")
    if compiled:
        forward = compiled_forward(model, layers)
    else:
        def forward(token_ids, caches, index):
            return forward_with_cache(layers, token_ids, caches, index)
    with no_gradients():
        logits, caches = forward(ops.convert_to_tensor(prompt, "int32"), caches, 0)  # the prefill
        for step in range(max_new_tokens):
            last = logits[:, -1, :]
            token = ops.argmax(last, axis=-1)
            new_tokens.append(token)
            step_logits.append(last)
            if on_token is not None:
                on_token(ops.convert_to_numpy(token))
            if step + 1 < max_new_tokens:  # the last token needs no forward pass of its own
                logits, caches = forward(ops.cast(token[:, None], "int32"), caches, length + step)
    new = np.stack([ops.convert_to_numpy(t) for t in new_tokens], axis=1).astype(np.int64)
    return Generation(sequences=np.concatenate([prompt, new], axis=1), prompt_length=length,
                      logits=np.stack([ops.convert_to_numpy(x) for x in step_logits], axis=1))
