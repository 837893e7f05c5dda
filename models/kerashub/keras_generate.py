"""Greedy decoding with keras-hub's own ``GPT2CausalLM.generate``, for ``gpt2_kerashub`` and ``gpt_tiny_kerashub``.

The definition effect of generation: where twinbench's Keras definition decodes with its own cache
(``models/gpt2/keras_generate.py``), a keras-hub user calls ``GPT2CausalLM.generate``, which compiles the whole loop
(keras-hub's ``generate_step``: a cache of ``(batch, n_layer, 2, max_length, heads, head_dim)`` and a sampler's
``while_loop``) for the backend. ``compile(sampler="greedy")`` picks greedy search; without a preprocessor the prompt
goes in as token ids, right-padded to the final length with a padding mask saying which are the prompt, and
``stop_token_ids=None`` generates up to that length. The loop runs inside one compiled call, so it hands over no
token before the last one and returns no logits.
"""

from __future__ import annotations

import weakref

import keras_hub
import numpy as np

from twinbench.models.gpt2.generation import Generation, check_prompt

_CAUSAL_LMS = weakref.WeakKeyDictionary()  # model -> its GPT2CausalLM, so repeated calls reuse the compiled loop


def causal_lm(model) -> keras_hub.models.GPT2CausalLM:
    """The ``GPT2CausalLM`` (greedy, no preprocessor) around the backbone of ``model`` (a ``*_kerashub`` GPT-2)."""
    if model not in _CAUSAL_LMS:
        backbone = next(layer for layer in model.layers if isinstance(layer, keras_hub.models.GPT2Backbone))
        task = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
        task.compile(sampler="greedy")
        _CAUSAL_LMS[model] = task
    return _CAUSAL_LMS[model]


def generate(model, prompt_ids, *, max_new_tokens, on_token=None) -> Generation:
    """Greedy decoding of ``max_new_tokens`` tokens with keras-hub's ``GPT2CausalLM.generate``.

    Args:
        model: ``gpt2_kerashub``/``gpt_tiny_kerashub``'s model (``models/kerashub/keras_model.py``).
        prompt_ids: ``(batch, prompt_length)`` token ids.
        max_new_tokens: how many tokens to append to every prompt (no end-of-text stop).
        on_token: not supported: keras-hub's compiled loop returns every token at once.

    Returns:
        A ``Generation`` whose ``logits`` are None.

    Raises:
        ValueError: one line, for ``on_token`` or a prompt ``check_prompt`` refuses.
    """
    if on_token is not None:
        raise ValueError("keras-hub's GPT2CausalLM.generate returns every token at the end of one compiled call: "
                         "on_token=None only.")
    task = causal_lm(model)
    backbone = task.backbone
    prompt = check_prompt(prompt_ids, max_new_tokens=max_new_tokens, n_positions=backbone.max_sequence_length,
                          vocab_size=backbone.vocabulary_size)
    batch, length = prompt.shape
    token_ids = np.zeros((batch, length + max_new_tokens), np.int32)  # right-padded to the final length
    token_ids[:, :length] = prompt
    padding_mask = np.zeros_like(token_ids, dtype=bool)
    padding_mask[:, :length] = True  # the prompt; the sampler fills the rest
    out = task.generate({"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None)
    return Generation(sequences=np.asarray(out["token_ids"]).astype(np.int64), prompt_length=length, logits=None)
