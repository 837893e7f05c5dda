"""Greedy decoding with the PyTorch twin: Hugging Face's own ``GPT2LMHeadModel.generate``, as its users call it.

``do_sample=False`` is greedy search and ``use_cache=True`` keeps each block's keys and values between steps
(transformers' ``DynamicCache``). ``eos_token_id=None`` turns off the stop at end-of-text, so every prompt gets exactly
``max_new_tokens`` tokens, as in the other implementations; ``output_logits=True`` returns the raw logits of each step.
Each new token reaches ``on_token`` through a streamer, the hook transformers gives for streaming text.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.generation.configuration_utils import CompileConfig
from transformers.generation.streamers import BaseStreamer

from twinbench.models.gpt2.generation import Generation, check_prompt


class _TokenStreamer(BaseStreamer):
    """Hands each step's new tokens to ``on_token`` (``generate`` first puts the prompt: skipped)."""

    def __init__(self, on_token):
        self.on_token, self.prompt_seen = on_token, False

    def put(self, value):
        if self.prompt_seen:
            self.on_token(value.numpy().reshape(-1))  # generate has already moved it to the CPU
        self.prompt_seen = True

    def end(self):
        pass


def compile_config(model, compile_mode="default") -> CompileConfig:
    """Hugging Face's ``CompileConfig`` for ``generate``: ``torch.compile`` of the model's forward pass (the decode
    steps; the prefill, of another shape, runs eagerly), in ``compile_mode`` (Hugging Face's own default is
    ``reduce-overhead``: here the cell says), on a CPU too (transformers compiles on accelerators only unless told)."""
    config = CompileConfig(mode=compile_mode)
    if model.device.type == "cpu":
        config._compile_all_devices = True
    return config


def generate(model, prompt_ids, *, max_new_tokens, on_token=None, compiled=False,
             compile_mode="default") -> Generation:
    """Greedy decoding with ``model`` (a ``GPT2LMHeadModel`` in eval mode), Hugging Face's ``generate``.

    Args:
        model: ``torch_model.gpt2``/``gpt_tiny``/``build_gpt2``'s model, its weights loaded, after ``model.eval()``.
        prompt_ids: ``(batch, prompt_length)`` token ids.
        max_new_tokens: how many tokens to append to every prompt (no end-of-text stop).
        on_token: called with each step's new tokens ``(batch,)`` as a NumPy array, as soon as they are chosen.
        compiled: compiled decoding as Hugging Face's users ask for it: a static cache
            (``cache_implementation="static"``, allocated for the whole sequence) and the forward pass compiled
            (``compile_config``); else the eager forward over the dynamic cache.
        compile_mode: torch.compile's mode (``compiled=True``).

    Raises:
        ValueError: one line, for a model in training mode (its dropout would sample) or a prompt ``check_prompt``
            refuses.
    """
    config = model.config
    if model.training:
        raise ValueError("generate takes a model in eval mode (dropout off). Received: model.training=True: call "
                         "model.eval() first.")
    prompt = check_prompt(prompt_ids, max_new_tokens=max_new_tokens, n_positions=config.n_positions,
                          vocab_size=config.vocab_size)
    input_ids = torch.as_tensor(prompt, device=model.device)
    compiling = {"cache_implementation": "static", "compile_config": compile_config(model, compile_mode)} \
        if compiled else {}
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                             do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=config.eos_token_id,
                             return_dict_in_generate=True, output_logits=True,
                             streamer=None if on_token is None else _TokenStreamer(on_token), **compiling)
    return Generation(sequences=out.sequences.cpu().numpy().astype(np.int64), prompt_length=prompt.shape[1],
                      logits=torch.stack(out.logits, dim=1).cpu().numpy())  # the model's dtype
