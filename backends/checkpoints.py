"""Weights in and out of a local file, for every implementation: the fine-tuning start, and a trained model
carried from one framework to another.

The formats, told apart by the file name:

- a **torchvision checkpoint** (``.pth`` / ``.pt``): a ``state_dict`` saved with ``torch.save``, e.g.
  ``resnet50-11ad3fa6.pth``. Reading or writing it needs PyTorch, so only the torch environment can;
- a **neutral** ``.npz`` (``twinbench.models.weights.save_weights``): Keras weight paths and layouts, BatchNorm statistics
  included, readable anywhere (``twinbench train --save-weights`` writes one);
- a **Keras** ``.weights.h5`` (``model.save_weights`` of the Keras 3 definition), read and written with Keras on
  any backend. The file stores the layers in the order the definition creates them, not by name, so it holds no
  class count to read: it is read at the run's class count, else the model's default;
- for GPT-2 (whose PyTorch twin is a transformers class), a **Hugging Face** file: transformers' ``state_dict``
  (``pytorch_model.bin``) or a ``.safetensors`` file (``read_gpt2_checkpoint``, at the end of this module).

``twinbench convert-weights IN OUT --model M`` turns any of them into any other (through the neutral mapping).

Nothing is ever downloaded. ``pretrained_weights`` puts the checkpoint into the run's model: when the run has
another class count than the checkpoint (ImageNet's 1000 -> CIFAR-10's 10), the classifier layer
(``ModelSpec.head``) keeps the model's own initial weights and the record says so; any other
missing, unexpected or misshapen tensor is a ``WeightMismatchError`` naming it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from twinbench.models import build_model, get_model_spec
from twinbench.models.gpt2.config import GPT2_SIZES
from twinbench.models.gpt2.weights import from_hf_state
from twinbench.models.weights import (
    WeightMismatchError,
    from_torch_state,
    load_weights,
    merge_pretrained,
    save_weights,
    torch_layout,
)

TORCH_SUFFIXES = (".pth", ".pt")
NEUTRAL_SUFFIXES = (".npz",)
KERAS_SUFFIXES = (".weights.h5",)
# Hugging Face's files (GPT-2: ``read_gpt2_checkpoint``): transformers' pytorch_model.bin and safetensors.
HF_SUFFIXES = (".bin", ".safetensors")
FORMAT_NAMES = {"torch": "torchvision state_dict", "neutral": "neutral npz", "keras": "Keras .weights.h5",
                "hf": "transformers state_dict or safetensors"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read here; the message says why and what to do, on one line."""


def checkpoint_format(path) -> str:
    """``"torch"``, ``"neutral"`` or ``"keras"``, from the file name; anything else is refused."""
    name = Path(path).name.lower()
    if name.endswith(KERAS_SUFFIXES):
        return "keras"
    if Path(name).suffix in TORCH_SUFFIXES:
        return "torch"
    if Path(name).suffix in NEUTRAL_SUFFIXES:
        return "neutral"
    if Path(name).suffix in HF_SUFFIXES:
        return "hf"
    raise CheckpointError(
        f"Unknown checkpoint format {Path(path).name!r}. Valid choices: a torchvision state_dict "
        f"({', '.join(TORCH_SUFFIXES)}), a neutral {', '.join(NEUTRAL_SUFFIXES)}, a Keras "
        f"{', '.join(KERAS_SUFFIXES)} or a Hugging Face {' / '.join(HF_SUFFIXES)} (GPT-2) "
        f"(twinbench convert-weights turns each into the others)."
    )


def _is_hf_model(model_name) -> bool:
    """Whether the model's PyTorch twin is a Hugging Face transformers class (its checkpoints use HF's keys)."""
    return model_name in GPT2_SIZES


def _head_bias(model_name) -> str | None:
    """The neutral path of the classifier's bias, or None for a model that declares no classifier head (its
    checkpoints must then fit it exactly: no new classifier for another class count)."""
    spec = get_model_spec(model_name)
    return None if spec.head is None else f"{spec.head}/bias"


def read_torch_state_dict(path) -> dict[str, np.ndarray]:
    """A ``state_dict`` saved with ``torch.save``, as NumPy arrays (tensors only; needs PyTorch)."""
    if importlib.util.find_spec("torch") is None:
        raise CheckpointError(
            f"Reading {Path(path).name!r} needs PyTorch, which this environment lacks. Convert it in the torch "
            f"environment: twinbench convert-weights {path} OUT.npz --model MODEL"
        )
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.") from None
    except Exception as err:  # a truncated or foreign file
        raise CheckpointError(f"Cannot read {str(path)!r} as a PyTorch checkpoint: {err}".splitlines()[0]) from None
    for wrapper in ("state_dict", "model"):  # training scripts often wrap the state_dict
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not a state_dict.")
    return {key: value.detach().cpu().numpy() for key, value in state.items() if torch.is_tensor(value)}


def neutral_from_torch_state(model_name, state: dict[str, np.ndarray], *, input_shape=None) -> dict[str, np.ndarray]:
    """A torchvision ``state_dict`` -> the neutral mapping (Keras paths and layouts) at its own class count.

    Builds the Keras definition at the checkpoint's class count (read from the classifier bias) to get the
    layout (names, Flatten permutation), so the Keras backend must already be chosen.
    """
    from twinbench.models._registry import _resolve
    from twinbench.models.weights import default_torch_key

    spec = get_model_spec(model_name)
    if "torch" not in spec.builders:
        raise CheckpointError(
            f"Model {model_name!r} has no PyTorch twin, so a torchvision checkpoint does not fit it; "
            f"give a neutral .npz written from this definition."
        )
    key_fn = _resolve(spec.torch_keys) if spec.torch_keys else default_torch_key
    head = _head_bias(model_name)
    num_classes = spec.num_classes  # without a declared head the checkpoint must have the default class count
    if head is not None:
        head_key = key_fn(head)
        if head_key not in state:
            raise WeightMismatchError(f"PyTorch key {head_key!r} (the classifier of {model_name}) is missing from "
                                      f"the checkpoint: is it a {model_name} checkpoint?")
        num_classes = int(state[head_key].shape[0])
    reference = build_model(model_name, "keras", input_shape=input_shape or spec.input_shape, num_classes=num_classes)
    layout = torch_layout(reference, key_fn=key_fn)
    unexpected = sorted(set(state) - set(layout.keys.values()))
    unexpected = [key for key in unexpected if not key.endswith("num_batches_tracked")]
    if unexpected:
        raise WeightMismatchError(f"PyTorch tensor {unexpected[0]!r} in the checkpoint has no counterpart in "
                                  f"{model_name}.")
    return from_torch_state(state, layout, {v.path: tuple(v.shape) for v in reference.weights})


def read_checkpoint(path, model_name, *, num_classes=None, input_shape=None) -> tuple[dict[str, np.ndarray], dict]:
    """The neutral weights in ``path`` for ``model_name``, and a description of the file for the record.

    ``num_classes``: the class count to try first for a Keras ``.weights.h5`` (which does not record it);
    ``input_shape``: the one the weights were made for where it changes their shapes (a Dense after a Flatten);
    default: the model's own.
    """
    kind = checkpoint_format(path)
    if not Path(path).is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    if _is_hf_model(model_name) and kind in ("torch", "hf"):  # GPT-2: transformers' keys, vocabulary from the file
        weights, info = read_gpt2_checkpoint(path, model_name)
        return weights, {**info, "num_classes": info.pop("vocab_size")}
    if kind == "hf":
        raise CheckpointError(f"{Path(path).name!r} is a Hugging Face checkpoint, which only the models whose "
                              f"PyTorch twin is a transformers class read (gpt2, gpt_tiny), not {model_name!r}.")
    if kind == "torch":
        weights = neutral_from_torch_state(model_name, read_torch_state_dict(path), input_shape=input_shape)
    elif kind == "keras":
        weights = read_keras_weights(path, model_name, num_classes=num_classes, input_shape=input_shape)
    else:
        try:
            weights = load_weights(path)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"Cannot read {str(path)!r} as a neutral .npz: {err}".splitlines()[0]) from None
    head = _head_bias(model_name)
    info = {"path": str(path), "format": FORMAT_NAMES[kind],
            "num_classes": int(np.shape(weights[head])[0]) if head is not None and head in weights else None}
    return weights, info


def pretrained_weights(model_name, path, *, canonical: dict[str, np.ndarray], input_shape=None) -> tuple[dict, dict]:
    """The checkpoint in ``path`` fitted to a model whose own initial weights are ``canonical``.

    Returns ``(weights, info)``; ``info["replaced"]`` lists the classifier weights that kept their initial
    values because the checkpoint has another class count.
    """
    head = _head_bias(model_name)
    checkpoint, info = read_checkpoint(path, model_name,
                                       num_classes=int(np.shape(canonical[head])[0]) if head in canonical else None,
                                       input_shape=input_shape)
    weights, replaced = merge_pretrained(checkpoint, canonical, head=get_model_spec(model_name).head)
    return weights, {**info, "replaced": replaced}


def read_keras_weights(path, model_name, *, num_classes=None, input_shape=None) -> dict[str, np.ndarray]:
    """A Keras 3 ``.weights.h5`` of ``model_name``'s definition -> the neutral mapping (needs keras, any backend).

    Tried at ``num_classes`` first, then at the model's default class count.
    """
    spec = get_model_spec(model_name)
    if "keras" not in spec.builders:
        raise CheckpointError(f"Model {model_name!r} has no Keras 3 definition to read {Path(path).name!r} with.")
    tried, last_error = [], None
    for classes in dict.fromkeys(c for c in (num_classes, spec.num_classes) if c):
        model = build_model(model_name, "keras", input_shape=input_shape or spec.input_shape, num_classes=classes)
        try:
            model.load_weights(path)
        except (ValueError, OSError, KeyError) as err:
            tried.append(classes)
            last_error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            continue
        import keras

        return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}
    raise CheckpointError(f"{str(path)!r} is not a Keras weights file of {model_name} at "
                          f"{' or '.join(map(str, tried))} classes: {last_error}")


def write_checkpoint(path, weights: dict[str, np.ndarray], model_name, *, input_shape=None) -> None:
    """Write the neutral mapping ``weights`` of ``model_name`` to ``path`` in the format its name says (atomically).

    A torchvision ``state_dict`` needs PyTorch, a Keras ``.weights.h5`` needs keras (the backend chosen already).
    """
    kind = checkpoint_format(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "neutral":
        save_weights(path, weights)
        return
    spec = get_model_spec(model_name)
    head = _head_bias(model_name)
    num_classes = int(np.shape(weights[head])[0]) if head is not None and head in weights else spec.num_classes
    partial = path.with_name(f".{path.stem}.partial{''.join(path.suffixes)}")  # Keras wants the .weights.h5 ending
    try:
        if kind == "keras":
            _write_keras_weights(partial, weights, model_name, num_classes, input_shape or spec.input_shape)
        else:
            _write_torch_state_dict(partial, weights, model_name, num_classes, input_shape or spec.input_shape)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _write_keras_weights(path, weights, model_name, num_classes, input_shape):
    from twinbench.models.weights import check_weights

    model = build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes)
    check_weights(weights, {v.path: tuple(v.shape) for v in model.weights})
    for variable in model.weights:
        variable.assign(np.asarray(weights[variable.path], dtype=variable.dtype))
    model.save_weights(str(path))


def _write_torch_state_dict(path, weights, model_name, num_classes, input_shape):
    if importlib.util.find_spec("torch") is None:
        raise CheckpointError(f"Writing {Path(path).name!r} needs PyTorch, which this environment lacks: convert in "
                              "the torch environment.")
    if "torch" not in get_model_spec(model_name).builders:
        raise CheckpointError(f"Model {model_name!r} has no PyTorch twin to write a state_dict for.")
    import torch

    from twinbench.backends.torch_runner import TorchRunner

    runner = TorchRunner()
    runner.setup()
    module = runner.prepare(model_name, input_shape=input_shape, num_classes=num_classes, weights=weights)
    torch.save({key: value.detach().cpu() for key, value in module.state_dict().items()}, path)


def convert_checkpoint(path, out, model_name, *, num_classes=None, input_shape=None) -> tuple[Path, dict]:
    """Read ``path`` in any format and write ``out`` in any other: neutral ``.npz``, torchvision ``state_dict``,
    Keras ``.weights.h5`` (each through the neutral mapping). Returns the path written and what was read."""
    kind, out_kind = checkpoint_format(path), checkpoint_format(out)
    if kind == out_kind:
        raise CheckpointError(f"{str(path)!r} and {str(out)!r} are both a {FORMAT_NAMES[kind]}: give another "
                              f"output format (.npz, .pth or .weights.h5).")
    if out_kind == "hf":
        raise CheckpointError(f"twinbench writes no Hugging Face checkpoint; convert {Path(path).name!r} to a neutral "
                              f".npz (what every implementation reads).")
    if _is_hf_model(model_name) and out_kind == "neutral":
        return convert_gpt2_checkpoint(path, out, model_name)
    weights, info = read_checkpoint(path, model_name, num_classes=num_classes, input_shape=input_shape)
    write_checkpoint(out, weights, model_name, input_shape=input_shape)
    return Path(out), info


# ----------------------------------------------------------------------------------------------------------
# GPT-2 weights from a local Hugging Face file -> the neutral mapping (``twinbench.models.gpt2.weights``) and ``.npz``.
# Two formats, as Hugging Face writes them (nothing is downloaded): a transformers ``state_dict`` saved with
# ``torch.save`` (``pytorch_model.bin``, or ``.pt``/``.pth``), read with PyTorch, so in the torch environment only; a
# ``.safetensors`` file (``model.safetensors``), read here with NumPy alone (the format is an 8-byte header length, a
# JSON table of tensors and the raw little-endian bytes), so in every environment. ``convert_gpt2_checkpoint``
# writes the neutral ``.npz`` (atomically) that ``--weights`` reads anywhere.
# ----------------------------------------------------------------------------------------------------------

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
