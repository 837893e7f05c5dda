"""Greedy decoding of GPT-2, the parts every implementation shares: the argument check, the result, the timing hook.

Each implementation decodes the way its users write it, in its own file beside its model:

- ``torch_generate.py``: Hugging Face's ``GPT2LMHeadModel.generate`` (greedy, key/value cache on);
- ``keras_generate.py``: cached decoding written once in Keras 3 ops, over the Keras definition's own layers (every
  backend);
- ``tf_keras_generate.py``: the same in TensorFlow ops, over the tf.keras twin's layers;
- ``models/kerashub/keras_generate.py``: keras-hub's own ``GPT2CausalLM.generate``, for the ``*_kerashub`` variants
  (tokens only: its compiled loop returns no logits and no token before the last).

Each has one ``generate(model, prompt_ids, *, max_new_tokens, on_token=None)``: it appends exactly
``max_new_tokens`` tokens to every prompt, each the argmax of the last position's logits (no end-of-text stop: the
implementations are compared token by token), and returns a ``Generation``. ``generate_tokens`` below times one call
through ``on_token``. NumPy only: importing this module imports no framework.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Each implementation's generate function ("module:function"), imported when first used.
GENERATE = {
    "keras": "twinbench.models.gpt2.keras_generate:generate",
    "torch": "twinbench.models.gpt2.torch_generate:generate",
    "tf_keras": "twinbench.models.gpt2.tf_keras_generate:generate",
}

# keras-hub's variants (``*_kerashub``) decode with keras-hub's own generate.
KERASHUB_GENERATE = "twinbench.models.kerashub.keras_generate:generate"

# Compiled decoding (``twinbench generate --jit on``): how each (implementation, backend) compiles the prefill and the
# decode steps, and why the others do not. keras-hub's generate always compiles its whole loop (its own choice).
COMPILED_DECODING = {
    ("torch", "torch"): "Hugging Face generate with a static cache and torch.compile of the forward pass",
    ("keras", "jax"): "jax.jit of the prefill and of the decode step",
    ("keras", "tensorflow"): "tf.function(jit_compile=True) (XLA) of the prefill and of the decode step",
    ("tf_keras", "tensorflow"): "tf.function of the prefill and of the decode step (a graph, not XLA)",
}
NO_COMPILED_DECODING = {
    ("keras", "torch"): "torch.compile of the Keras decode step guards on every Keras layer's type and recompiles "
                        "past its cache limit (minutes), then runs eagerly",
}


@dataclass(frozen=True)
class Generation:
    """What a greedy ``generate`` call returns (the names of Hugging Face's ``GenerateDecoderOnlyOutput``).

    Attributes:
        sequences: ``(batch, prompt_length + max_new_tokens)`` int64 token ids: each prompt, then its new tokens.
        prompt_length: how many of each row's tokens are the prompt.
        logits: ``(batch, max_new_tokens, vocab)`` in the model's dtype: the logits each new token was chosen from
            (step ``s``'s row is the prediction after ``prompt_length + s`` tokens); None where the implementation's
            generate does not return them (keras-hub's).
    """

    sequences: np.ndarray
    prompt_length: int
    logits: np.ndarray | None

    @property
    def new_tokens(self) -> np.ndarray:
        """``(batch, max_new_tokens)``: the generated tokens alone."""
        return self.sequences[:, self.prompt_length:]


def check_prompt(prompt_ids, *, max_new_tokens: int, n_positions: int, vocab_size: int) -> np.ndarray:
    """The prompt as an int64 array ``(batch, prompt_length)``, after checking that the call can run.

    Raises:
        ValueError: one line naming the valid values, when ``prompt_ids`` is not 2-D, the batch is empty,
            ``max_new_tokens`` is not in ``1 .. n_positions - 1``, the prompt and its new tokens do not fit the ``n_positions`` positions,
            or a token id is outside ``0 .. vocab_size - 1``.
    """
    prompt = np.asarray(prompt_ids)
    if prompt.ndim != 2 or not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"generate takes prompt_ids of integer token ids, shape (batch, prompt_length). Received: "
                         f"shape={prompt.shape}, dtype={prompt.dtype}.")
    batch, length = prompt.shape
    if batch < 1:
        raise ValueError(f"generate takes a batch of 1 or more prompts. Received: batch size {batch}.")
    if not 1 <= int(max_new_tokens) <= n_positions - 1:
        raise ValueError(f"generate takes 1 <= max_new_tokens <= {n_positions - 1} (n_positions - 1). "
                         f"Received: max_new_tokens={max_new_tokens}.")
    if not 1 <= length <= n_positions - max_new_tokens:
        raise ValueError(f"A prompt of 1 to {n_positions - max_new_tokens} tokens fits the {n_positions} "
                         f"positions with max_new_tokens={max_new_tokens}. Received: a prompt of {length} tokens.")
    if prompt.min() < 0 or prompt.max() >= vocab_size:
        raise ValueError(f"Token ids run from 0 to {vocab_size - 1}. Received: ids from {prompt.min()} to "
                         f"{prompt.max()}.")
    return prompt.astype(np.int64)


@dataclass(frozen=True)
class TimedGeneration:
    """One timed ``generate`` call (``generate_tokens``).

    Attributes:
        tokens: ``(batch, max_new_tokens)`` the generated tokens.
        token_times_s: ``(max_new_tokens,)`` seconds from the call to each token's arrival on the host (the
            first is the time to first token: the prompt's forward pass included).
    """

    tokens: np.ndarray
    token_times_s: np.ndarray

    @property
    def time_to_first_token_s(self) -> float:
        return float(self.token_times_s[0])

    @property
    def per_token_s(self) -> np.ndarray:
        """``(max_new_tokens - 1,)`` seconds between consecutive tokens (the decode steps)."""
        return np.diff(self.token_times_s)


def generate_function(implementation: str, *, kerashub: bool = False) -> Callable[..., Generation]:
    """``implementation``'s ``generate`` (importing its framework); ``kerashub``: keras-hub's (``*_kerashub``).

    Raises:
        ValueError: one line naming the implementations that generate, for any other.
    """
    if implementation not in GENERATE:
        raise ValueError(f"GPT-2 generation exists for implementation in {sorted(GENERATE)}. "
                         f"Received: implementation={implementation!r}.")
    module, _, function = (KERASHUB_GENERATE if kerashub else GENERATE[implementation]).partition(":")
    return getattr(importlib.import_module(module), function)


def generate_tokens(implementation: str, model, prompt_ids, *, max_new_tokens: int,
                    clock: Callable[[], float] = time.perf_counter, **options) -> TimedGeneration:
    """Greedy decoding of ``max_new_tokens`` tokens with ``implementation``'s ``generate``, each token timed.

    The timestamp of a token is taken when ``generate`` hands it over as a NumPy array (``on_token``): its
    conversion to host memory waits for the device, as a user streaming text waits for each token. Nothing here
    warms up or repeats: the caller measures (the first call of a compiled implementation includes compiling).
    ``options`` go to ``generate`` (``compiled``, ``compile_mode``).
    """
    generate = generate_function(implementation)
    times = []
    start = clock()
    result = generate(model, prompt_ids, max_new_tokens=max_new_tokens, on_token=lambda _: times.append(clock()),
                      **options)
    return TimedGeneration(tokens=result.new_tokens, token_times_s=np.asarray(times, dtype=np.float64) - start)
