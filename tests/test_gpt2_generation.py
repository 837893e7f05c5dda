"""GPT-2 greedy decoding with a key/value cache: every implementation gives Hugging Face's tokens, and a broken cache
fails.

At ``gpt_tiny`` with the twin weights (``tests/gpt2_twins.py``: 2 prompts of 5 byte tokens, 12 new tokens each), every
implementation in this environment (keras on its backend; Hugging Face's ``generate`` in the torch environment;
tf_keras in the tensorflow environment) is compared with the committed fingerprint of Hugging Face's ``generate``
(``tests/parity/gpt_tiny-generate.npz``, written by ``python -m tests.gpt2_twins generation`` in the torch
environment): the same tokens, and each step's logits within the float32 envelope (``backends/tolerances.py``). The
torch environment also checks that the fingerprint is current. Two deliberately broken caches (keys and values
written one position late; a mask that lets each query see the next position) must fail that check, in the Keras
decoder and in the tf.keras one.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from gpt2_twins import (
    NEW_TOKENS,
    check_generation,
    generation_case,
    generation_fingerprint_file,
    hf_generation_reference,
    hf_model,
    keras_model,
    kerashub_model,
)

from conftest import BACKEND, IMPLEMENTATIONS_HERE, requires_backend
from twinbench.backends.tolerances import logits_tolerance
from twinbench.models.gpt2.generation import (
    COMPILED_DECODING,
    GENERATE,
    NO_COMPILED_DECODING,
    Generation,
    check_prompt,
    generate_function,
    generate_tokens,
)

# The implementations of this environment (conftest: its cells), each with a generate function.
HERE = [implementation for implementation, _ in IMPLEMENTATIONS_HERE if implementation in GENERATE]


def _reference() -> dict:
    with np.load(generation_fingerprint_file()) as archive:
        return {key: archive[key] for key in archive.files}


@functools.lru_cache(maxsize=3)
def _model(implementation):
    """``implementation``'s gpt_tiny holding the twin weights, ready to generate."""
    sizes, weights, _ = generation_case()
    if implementation == "torch":
        return hf_model(sizes, weights).eval()
    return keras_model(implementation, sizes, weights)


# -- the argument check and the timing hook (no framework needed for the first) --------------------------------------
@pytest.mark.parametrize(("prompt", "new", "message"), [
    (np.ones((2, 5), int), 0, r"1 <= max_new_tokens <= 63 \(n_positions - 1\)\. Received: max_new_tokens=0"),
    (np.ones((1, 60), int), 8, r"A prompt of 1 to 56 tokens fits the 64 positions with max_new_tokens=8\. "
                               r"Received: a prompt of 60 tokens"),
    (np.ones((0, 5), int), 4, r"a batch of 1 or more prompts\. Received: batch size 0"),
    (np.ones(5, int), 4, r"shape \(batch, prompt_length\)\. Received: shape=\(5,\)"),
    (np.full((1, 5), 300), 4, r"Token ids run from 0 to 258\. Received: ids from 300 to 300"),
], ids=["no-new-tokens", "prompt-too-long", "empty-batch", "not-2d", "unknown-token"])
def test_generation_arguments_are_one_line_errors(prompt, new, message):
    with pytest.raises(ValueError, match=message) as error:
        check_prompt(prompt, max_new_tokens=new, n_positions=64, vocab_size=259)
    assert "\n" not in str(error.value)


def test_unknown_implementation_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"implementation in \['keras', 'tf_keras', 'torch'\]\. Received: "
                                         r"implementation='jax'"):
        generate_function("jax")
    assert sorted(GENERATE) == ["keras", "tf_keras", "torch"]


@requires_backend
@pytest.mark.parametrize("implementation", HERE)
def test_every_generate_checks_its_arguments(implementation):
    _, _, prompt = generation_case()
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        generate_function(implementation)(_model(implementation), prompt, max_new_tokens=0)
    with pytest.raises(ValueError, match="a prompt of 64 tokens"):
        generate_function(implementation)(_model(implementation), np.ones((1, 64), int), max_new_tokens=1)


@requires_backend
@pytest.mark.parametrize("implementation", HERE)
def test_generate_tokens_times_every_token(implementation):
    """The hook for the generation cells: the new tokens, and one timestamp per token from a clock read at the call
    (0) and as each token arrives (1, 2, ...)."""
    _, _, prompt = generation_case()
    timed = generate_tokens(implementation, _model(implementation), prompt, max_new_tokens=NEW_TOKENS,
                            clock=itertools.count().__next__)
    assert timed.tokens.shape == (len(prompt), NEW_TOKENS) and timed.tokens.dtype == np.int64
    assert timed.token_times_s.tolist() == list(range(1, NEW_TOKENS + 1))
    assert timed.time_to_first_token_s == 1 and timed.per_token_s.tolist() == [1] * (NEW_TOKENS - 1)
    assert np.array_equal(timed.tokens, _reference()["sequences"][:, prompt.shape[1]:])


# -- token-identical to Hugging Face ----------------------------------------------------------------------------------
@requires_backend
@pytest.mark.parametrize("implementation", HERE)
def test_greedy_generation_equals_hugging_face(implementation):
    reference = _reference()
    _, _, prompt = generation_case()
    assert np.array_equal(reference["prompt"], prompt), "the prompt changed: python -m tests.gpt2_twins generation"
    # the greedy choice is decided: the best logit of every step leads by far more than the tolerance
    assert reference["margin"] > 10 * logits_tolerance(reference["logits"], {"logits": float(reference["noise"])})
    result = generate_function(implementation)(_model(implementation), prompt, max_new_tokens=NEW_TOKENS)
    assert result.logits.shape == reference["logits"].shape
    check_generation(result, reference)


@requires_backend
@pytest.mark.large
@pytest.mark.parametrize("implementation", HERE)
def test_compiled_decoding_equals_hugging_face(implementation):
    """Compiled decoding (``twinbench generate --jit on``: HF's static cache and torch.compile, jax.jit, XLA,
    tf.function), where the implementation has it here: the same tokens, each step's logits within the envelope."""
    pair = next(p for p in IMPLEMENTATIONS_HERE if p[0] == implementation)
    if pair not in COMPILED_DECODING:
        pytest.skip(f"{pair} has no compiled decoding: {NO_COMPILED_DECODING.get(pair)}")
    _, _, prompt = generation_case()
    result = generate_function(implementation)(_model(implementation), prompt, max_new_tokens=NEW_TOKENS,
                                               compiled=True)
    check_generation(result, _reference())


@pytest.mark.skipif(BACKEND != "torch", reason="Hugging Face's generate lives in the torch environment")
def test_committed_generation_fingerprint_is_current():
    current, committed = hf_generation_reference(), _reference()
    assert np.array_equal(current["prompt"], committed["prompt"])
    check_generation(Generation(sequences=current["sequences"], prompt_length=current["prompt"].shape[1],
                                logits=current["logits"]), committed)


@pytest.mark.skipif(BACKEND != "torch", reason="Hugging Face's generate lives in the torch environment")
def test_hugging_face_generate_refuses_a_model_in_training_mode():
    sizes, weights, prompt = generation_case()
    with pytest.raises(ValueError, match=r"model.training=True: call model.eval\(\) first"):
        generate_function("torch")(hf_model(sizes, weights), prompt, max_new_tokens=2)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="keras-hub lives in the tensorflow environment")
def test_kerashub_generate_equals_hugging_face():
    """keras-hub's own GPT2CausalLM.generate (compiled greedy loop, its own cache), the same weights: the same tokens.

    Its generate returns no logits: those of keras-hub's ``score`` on the generated sequences (one forward pass, no
    cache) stand in, to show that the weights arrived (a wrong bias may leave every greedy choice unchanged)."""
    from twinbench.models.kerashub.keras_generate import causal_lm, generate

    sizes, weights, prompt = generation_case()
    model = kerashub_model(sizes, weights)
    result = generate(model, prompt, max_new_tokens=NEW_TOKENS)
    assert result.logits is None
    check_generation(result, _reference())
    scored = causal_lm(model).score(token_ids=result.sequences, padding_mask=np.ones_like(result.sequences, bool))
    step_logits = np.asarray(scored)[:, prompt.shape[1] - 1:-1]  # the prediction after prompt_length + s tokens
    check_generation(Generation(sequences=result.sequences, prompt_length=prompt.shape[1], logits=step_logits),
                     _reference())
    with pytest.raises(ValueError, match="on_token=None only"):
        generate(model, prompt, max_new_tokens=NEW_TOKENS, on_token=print)


# -- a broken cache fails ---------------------------------------------------------------------------------------------
def _off_by_one(update_cache):
    """Keys and values written one position after the tokens they belong to."""
    return lambda cache, key, value, index: update_cache(cache, key, value, index + 1)


def _sees_the_next_position(causal_mask):
    """Each query also sees the position after it (the next token in the prefill, an empty slot in a step)."""
    return lambda index, length, max_length: causal_mask(index + 1, length, max_length)


@requires_backend
@pytest.mark.parametrize("implementation", [i for i in HERE if i != "torch"])
@pytest.mark.parametrize(("function", "break_it"), [("update_cache", _off_by_one),
                                                    ("causal_mask", _sees_the_next_position)],
                         ids=["cache-position-off-by-one", "mask-sees-the-future"])
def test_a_broken_cache_fails(implementation, function, break_it, monkeypatch):
    import importlib

    module = importlib.import_module(f"twinbench.models.gpt2.{implementation}_generate")
    monkeypatch.setattr(module, function, break_it(getattr(module, function)))
    _, _, prompt = generation_case()
    result = module.generate(_model(implementation), prompt, max_new_tokens=NEW_TOKENS)
    with pytest.raises(AssertionError, match="differ"):
        check_generation(result, _reference())
