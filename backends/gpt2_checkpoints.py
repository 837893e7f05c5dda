"""GPT-2 weights from a local Hugging Face file -> the neutral mapping (``twinbench.models.gpt2.weights``) and ``.npz``.

Two formats, as Hugging Face writes them (nothing is downloaded):

- a transformers ``state_dict`` saved with ``torch.save`` (``pytorch_model.bin``, or ``.pt``/``.pth``): read with
  PyTorch, so in the torch environment only;
- a ``.safetensors`` file (``model.safetensors``): read here with NumPy alone (the format is an 8-byte header length,
  a JSON table of tensors and the raw little-endian bytes), so in every environment.

``convert_gpt2_checkpoint`` writes the neutral ``.npz`` (atomically) that ``--weights`` reads anywhere.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from twinbench.backends.checkpoints import TORCH_SUFFIXES, CheckpointError, read_torch_state_dict
from twinbench.models.gpt2.config import GPT2_SIZES
from twinbench.models.gpt2.weights import from_hf_state
from twinbench.models.weights import load_weights, save_weights

SAFETENSORS_SUFFIXES = (".safetensors",)
GPT2_TORCH_SUFFIXES = (".bin", *TORCH_SUFFIXES)  # transformers saves pytorch_model.bin
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a NumPy array (bfloat16 widened to float32)."""
    try:
        raw = Path(path).read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + length])
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.") from None
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"Cannot read {str(path)!r} as safetensors: {err}".splitlines()[0]) from None
    data = memoryview(raw)[8 + length:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":  # no NumPy bfloat16: the upper half of a float32
            bits = np.frombuffer(data[start:end], dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(data[start:end], dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        else:
            raise CheckpointError(f"{str(path)!r}: tensor {name!r} has dtype {info['dtype']}, which twinbench does "
                                  f"not read. Valid choices: BF16, {', '.join(_DTYPES)}.")
        out[name] = array.reshape(info["shape"]).copy()
    return out


def read_gpt2_checkpoint(path, model_name) -> tuple[dict[str, np.ndarray], dict]:
    """The neutral weights of ``model_name`` (``gpt2``/``gpt_tiny``) in a transformers ``state_dict``, a
    ``.safetensors`` file or a neutral ``.npz``; the vocabulary size is read from the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    if suffix in SAFETENSORS_SUFFIXES:
        state, kind = read_safetensors(path), "safetensors"
    elif suffix in GPT2_TORCH_SUFFIXES:
        state, kind = read_torch_state_dict(path), "transformers state_dict"
    elif suffix == ".npz":
        weights = load_weights(path)
        return weights, {"path": str(path), "format": "neutral npz",
                         "vocab_size": int(weights["wte/embeddings"].shape[0]) if "wte/embeddings" in weights else None}
    else:
        raise CheckpointError(f"Unknown checkpoint format {path.name!r} for {model_name}. Valid choices: a "
                              f"transformers state_dict ({', '.join(GPT2_TORCH_SUFFIXES)}), a safetensors file "
                              f"({', '.join(SAFETENSORS_SUFFIXES)}) or a neutral .npz.")
    wte = next((state[key] for key in ("transformer.wte.weight", "wte.weight", "lm_head.weight") if key in state), None)
    if wte is None:
        raise CheckpointError(f"{str(path)!r} has no 'transformer.wte.weight': is it a GPT-2 checkpoint?")
    from dataclasses import replace

    sizes = replace(GPT2_SIZES[model_name], vocab_size=int(wte.shape[0]))
    return from_hf_state(state, sizes, name=model_name), {"path": str(path), "format": kind,
                                                         "vocab_size": sizes.vocab_size}


def convert_gpt2_checkpoint(path, out, model_name) -> tuple[Path, dict]:
    """Write the neutral ``.npz`` of a GPT-2 checkpoint (atomically: a temporary file, then renamed)."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise CheckpointError(f"The output must be a .npz file. Received: {str(out)!r}.")
    weights, info = read_gpt2_checkpoint(path, model_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npz")
    save_weights(tmp, weights)
    os.replace(tmp, out)
    return out, info
