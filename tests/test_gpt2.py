"""GPT-2: the Keras 3 definition, Hugging Face's ``GPT2LMHeadModel`` and the tf.keras twin are one network.

Model level, at ``gpt_tiny`` (``tests/gpt2_twins.py``: 4 sequences of 16 tokens, some labels PAD), with
``twinbench.twins.parity``'s tolerances (the fixed float32 ones, or a few times the Hugging Face twin's float32 error
against float64 where larger):

- torch environment: keras[torch] against ``GPT2LMHeadModel`` in-process (parameters, logits, next-token loss,
  every gradient, one Adam step); the committed fingerprint of the Hugging Face twin is current; two deliberately
  wrong twins (exact GELU instead of the tanh approximation; q and k swapped in the fused ``c_attn``) fail;
- tensorflow environment: tf_keras against keras[tensorflow] in-process, both against the fingerprint;
- jax environment: keras[jax] against the fingerprint.

GPT-2 small's 124,439,808 parameters are counted from the shapes (and, in the torch environment, by Hugging Face's
class built on the meta device: no memory, no time).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from gpt2_twins import (
    LR,
    fingerprint_file,
    hf_model,
    hf_reference,
    keras_model,
    observe_hf,
    observe_keras,
    twin_case,
    twin_weights,
)

from conftest import BACKEND
from twinbench.backends.tolerances import NOISE_FACTOR_NEITHER
from twinbench.models.gpt2.config import GPT2_SIZES, count_params, parameter_shapes, sizes_for
from twinbench.models.gpt2.weights import from_hf_state, hf_key, to_hf_state
from twinbench.models.weights import WeightMismatchError
from twinbench.twins.parity import (
    ParityError,
    batch_checksum,
    combine_noise,
    compare_fingerprints,
    compare_observations,
    fingerprint_of,
    load_fingerprint,
)

GPT2_SMALL_PARAMS = 124_439_808
torch_only = pytest.mark.skipif(BACKEND != "torch", reason="Hugging Face's twin lives in the torch environment")
tensorflow_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.keras lives in the tensorflow environment")


def test_gpt2_small_parameter_count_from_shapes():
    assert count_params(GPT2_SIZES["gpt2"]) == GPT2_SMALL_PARAMS


def test_neutral_names_map_one_to_one_to_hugging_face_keys():
    sizes = GPT2_SIZES["gpt_tiny"]
    keys = [hf_key(path) for path in parameter_shapes(sizes)]
    assert len(set(keys)) == len(keys)
    assert hf_key("h_1_attn_c_attn/kernel") == "transformer.h.1.attn.c_attn.weight"
    assert hf_key("h_0_mlp_c_proj/bias") == "transformer.h.0.mlp.c_proj.bias"
    weights = twin_weights(sizes, seed=3)
    state = to_hf_state(weights)
    assert np.shares_memory(state["lm_head.weight"], state["transformer.wte.weight"])  # tied: one tensor
    back = from_hf_state(state, sizes, name="gpt_tiny")
    assert all(np.array_equal(back[p], weights[p]) for p in weights)


def test_untied_or_foreign_state_dict_is_refused():
    sizes = GPT2_SIZES["gpt_tiny"]
    state = to_hf_state(twin_weights(sizes))
    untied = {**state, "lm_head.weight": state["lm_head.weight"] + 1}
    with pytest.raises(WeightMismatchError, match="ties its output layer"):
        from_hf_state(untied, sizes, name="gpt_tiny")
    with pytest.raises(WeightMismatchError, match="'transformer.h.9.ln_1.weight' .* no counterpart"):
        from_hf_state({**state, "transformer.h.9.ln_1.weight": np.ones(64)}, sizes, name="gpt_tiny")
    wider = {**state, "transformer.wte.weight": np.zeros((300, sizes.n_embd), np.float32)}
    with pytest.raises(WeightMismatchError, match=r"'transformer.wte.weight' has shape \(300, 64\)"):
        from_hf_state(wider, sizes, name="gpt_tiny")


@pytest.mark.skipif(BACKEND is None, reason="needs a Keras backend")
def test_the_keras_definition_initialises_as_gpt2():
    """``twinbench.models.weights.canonical_weights`` draws the definition's initializers: GPT-2's, with the residual
    projections scaled by 1/sqrt(2 n_layer)."""
    from twinbench.models.gpt2.keras_model import gpt_tiny
    from twinbench.models.weights import canonical_weights

    weights = canonical_weights(gpt_tiny(input_shape=(8,)), seed=0)
    assert sorted(weights) == sorted(parameter_shapes(GPT2_SIZES["gpt_tiny"]))
    assert np.std(weights["wte/embeddings"]) == pytest.approx(0.02, rel=0.05)
    assert np.std(weights["h_0_mlp_c_fc/kernel"]) == pytest.approx(0.02, rel=0.05)
    assert np.std(weights["h_1_mlp_c_proj/kernel"]) == pytest.approx(0.02 / 2, rel=0.05)  # n_layer = 2
    assert not weights["h_0_attn_c_attn/bias"].any() and (weights["ln_f/gamma"] == 1).all()


def test_context_longer_than_the_position_table_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"1 <= context_length <= 64\. Received: input_shape=\(65,\)"):
        sizes_for("gpt_tiny", input_shape=(65,), num_classes=259)


# -- torch environment: keras[torch] vs Hugging Face -----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _reference():
    return hf_reference()


@functools.lru_cache(maxsize=1)
def _keras_here():
    sizes, weights, x, y = twin_case()
    model = keras_model("keras", sizes, weights)
    return model.count_params(), observe_keras("keras", model, x, y)


@torch_only
def test_hugging_face_parameter_counts():
    import torch

    from twinbench.models.gpt2.torch_model import gpt2, gpt_tiny

    with torch.device("meta"):  # shapes only
        small = gpt2()
    assert small.num_parameters() == GPT2_SMALL_PARAMS  # tied lm_head counted once
    assert gpt_tiny().num_parameters() == count_params(GPT2_SIZES["gpt_tiny"]) == _keras_here()[0]


@torch_only
def test_keras_torch_equals_hugging_face():
    observation, noise = _reference()
    compare_observations(_keras_here()[1], observation, lr=LR, noise=noise)


@torch_only
def test_committed_fingerprint_is_current():
    _, _, x, y = twin_case()
    expected = load_fingerprint(fingerprint_file())
    assert batch_checksum(x) == expected["x_crc32"], "the twin batch changed: python -m tests.gpt2_twins"
    observation, noise = _reference()
    compare_fingerprints(fingerprint_of(observation, x=x, y=y, noise=noise), expected, lr=LR)


@torch_only
@pytest.mark.parametrize("wrong", [{"activation": "gelu"}, {"swap_qk": True}], ids=["exact-gelu", "q-k-swapped"])
def test_a_wrong_twin_fails(wrong):
    sizes, weights, x, y = twin_case()
    _, noise = _reference()
    bad = observe_hf(hf_model(sizes, weights, **wrong), x, y, step=False)
    with pytest.raises(ParityError, match="logits 'output' differs"):
        compare_observations(bad, _keras_here()[1], lr=LR, noise=noise)


# -- tensorflow and jax environments: against the fingerprint -------------------------------------------------------
def _against_fingerprint(observation):
    _, _, x, y = twin_case()
    expected = load_fingerprint(fingerprint_file())
    assert batch_checksum(x) == expected["x_crc32"]
    compare_fingerprints(fingerprint_of(observation, x=x, y=y), expected, lr=LR)


@pytest.mark.skipif(BACKEND not in ("tensorflow", "jax"), reason="the torch environment compares in-process")
def test_keras_equals_hugging_face_fingerprint():
    _against_fingerprint(_keras_here()[1])


@tensorflow_only
def test_tf_keras_equals_keras_tensorflow_and_the_fingerprint():
    sizes, weights, x, y = twin_case()
    model = keras_model("tf_keras", sizes, weights)
    assert model.count_params() == _keras_here()[0] == count_params(sizes)
    observation = observe_keras("tf_keras", model, x, y)
    _against_fingerprint(observation)
    noise = combine_noise({k[6:]: float(v) for k, v in load_fingerprint(fingerprint_file()).items()
                           if k.startswith("noise:")})
    compare_observations(observation, _keras_here()[1], lr=LR, noise=noise, factor=NOISE_FACTOR_NEITHER)


# -- checkpoints: transformers state_dict (.bin) and safetensors -> neutral .npz ---------------------------------------
@torch_only
@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_hugging_face_checkpoint_converts_to_the_neutral_npz(tmp_path, suffix):
    import torch

    from twinbench.backends.checkpoints import convert_checkpoint, read_checkpoint
    from twinbench.models.weights import load_weights

    sizes, weights, _, _ = twin_case()
    model = hf_model(sizes, weights)
    path = tmp_path / f"model{suffix}"
    if suffix == ".bin":
        torch.save(model.state_dict(), path)  # what transformers writes as pytorch_model.bin
    else:
        from safetensors.torch import save_model

        save_model(model, str(path))  # as save_pretrained: the tied lm_head stored once
    # twinbench convert-weights FILE OUT.npz --model gpt_tiny
    out, info = convert_checkpoint(path, tmp_path / "gpt_tiny.npz", "gpt_tiny")
    converted = load_weights(out)
    assert info["vocab_size"] == sizes.vocab_size and sorted(converted) == sorted(weights)
    assert all(np.array_equal(converted[name], weights[name]) for name in weights)
    # --weights FILE reads it directly too
    read, info = read_checkpoint(path, "gpt_tiny")
    assert info["num_classes"] == sizes.vocab_size and all(np.array_equal(read[n], weights[n]) for n in weights)


def test_safetensors_reader_needs_no_framework(tmp_path):
    import json
    import struct

    from twinbench.backends.checkpoints import read_safetensors

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                         "__metadata__": {"format": "pt"}}).encode()
    (tmp_path / "t.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + a.tobytes())
    assert np.array_equal(read_safetensors(tmp_path / "t.safetensors")["a"], a)


def test_checkpoint_errors_are_one_line(tmp_path):
    from twinbench.backends.checkpoints import CheckpointError, read_gpt2_checkpoint

    with pytest.raises(CheckpointError, match="does not exist"):
        read_gpt2_checkpoint(tmp_path / "missing.safetensors", "gpt_tiny")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"Valid choices: a transformers state_dict \(.bin, .pth, .pt\)"):
        read_gpt2_checkpoint(tmp_path / "w.onnx", "gpt_tiny")
    (tmp_path / "bad.safetensors").write_bytes(b"\x05")
    with pytest.raises(CheckpointError, match="as safetensors"):
        read_gpt2_checkpoint(tmp_path / "bad.safetensors", "gpt_tiny")
