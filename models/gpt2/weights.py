"""GPT-2's neutral weights (Keras 3 paths and layouts) and Hugging Face transformers' ``state_dict`` keys.

The mapping is one to one and needs no transposes: Hugging Face's ``Conv1D`` (GPT-2's linear layers) stores its
weight as ``(in, out)``, exactly like a Keras ``Dense`` kernel, unlike ``nn.Linear``'s ``(out, in)``. LayerNorm
``gamma``/``beta`` are ``weight``/``bias``. The output layer ``lm_head.weight`` is the input embedding
``transformer.wte.weight`` itself (tied): a ``state_dict`` holds both keys, the neutral mapping holds it once.

GPT-2's initial weights are the Keras definition's own initializers (N(0, 0.02), the residual projections
N(0, 0.02 / sqrt(2 n_layer)), as ``GPT2PreTrainedModel._init_weights``), drawn in NumPy by
``twinbench.models.weights.canonical_weights`` like every model's. NumPy only: readable in every environment.
"""

from __future__ import annotations

import re

import numpy as np

from twinbench.models.gpt2.config import GPT2Sizes, parameter_shapes
from twinbench.models.weights import WeightMismatchError

TIED_HEAD_KEY = "lm_head.weight"  # the tied output layer: the same tensor as transformer.wte.weight
_LAYER = re.compile(r"h_(\d+)_(ln_1|ln_2|attn_c_attn|attn_c_proj|mlp_c_fc|mlp_c_proj)/(\w+)")
_ARRAY = {"kernel": "weight", "gamma": "weight", "embeddings": "weight", "bias": "bias", "beta": "bias"}


def hf_key(path: str) -> str:
    """The ``GPT2LMHeadModel`` state key of a neutral weight path, e.g. ``h_0_attn_c_attn/kernel`` ->
    ``transformer.h.0.attn.c_attn.weight``."""
    match = _LAYER.fullmatch(path)
    if match:
        index, layer, array = match.groups()
        block, _, sub = layer.partition("_c_") if layer.startswith(("attn", "mlp")) else (layer, "", "")
        module = f"{block}.c_{sub}" if sub else block
        return f"transformer.h.{index}.{module}.{_ARRAY[array]}"
    layer, _, array = path.partition("/")
    return f"transformer.{layer}.{_ARRAY[array]}"


def to_hf_state(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The neutral mapping as a ``GPT2LMHeadModel`` ``state_dict`` (NumPy arrays; the tied head included)."""
    state = {hf_key(path): np.asarray(value) for path, value in weights.items()}
    state[TIED_HEAD_KEY] = state["transformer.wte.weight"]
    return state


def from_hf_state(state: dict[str, np.ndarray], sizes: GPT2Sizes, *, name: str = "gpt2") -> dict[str, np.ndarray]:
    """A ``GPT2LMHeadModel`` (or bare ``GPT2Model``) ``state_dict`` -> the neutral mapping of ``sizes``.

    Raises:
        WeightMismatchError: naming the first tensor that is missing, unexpected, of the wrong shape, or a head
            that is not tied to the input embedding.
    """
    # A bare GPT2Model's keys (the hub's GPT-2 files) lack the "transformer." prefix; a tied pair saved once (as
    # safetensors' save_model does) may keep only lm_head.weight.
    state = {key if key.startswith("transformer.") or key == TIED_HEAD_KEY else f"transformer.{key}": value
             for key, value in state.items()}
    if "transformer.wte.weight" not in state and TIED_HEAD_KEY in state:
        state["transformer.wte.weight"] = state[TIED_HEAD_KEY]
    shapes = parameter_shapes(sizes)
    keys = {hf_key(path): path for path in shapes}
    ignored = [key for key in state if key.endswith((".attn.bias", ".attn.masked_bias"))]  # old causal-mask buffers
    unexpected = sorted(set(state) - set(keys) - {TIED_HEAD_KEY} - set(ignored))
    if unexpected:
        raise WeightMismatchError(f"Tensor {unexpected[0]!r} in the checkpoint has no counterpart in {name}.")
    out = {}
    for key, path in keys.items():
        if key not in state:
            raise WeightMismatchError(f"Tensor {key!r} of {name} is missing from the checkpoint: is it a {name} "
                                      f"checkpoint?")
        value = np.asarray(state[key])
        if value.shape != shapes[path]:
            raise WeightMismatchError(f"Tensor {key!r} has shape {value.shape}, {name} needs {shapes[path]}.")
        out[path] = value.astype(np.float32)
    head = state.get(TIED_HEAD_KEY)
    if head is not None and not np.array_equal(np.asarray(head), np.asarray(state["transformer.wte.weight"])):
        raise WeightMismatchError(f"{TIED_HEAD_KEY!r} differs from 'transformer.wte.weight': {name} ties its output "
                                  f"layer to the input embedding.")
    return out
