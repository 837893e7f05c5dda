"""Pretrained weights from a local file, for every implementation: the fine-tuning start.

Two formats:

- a **torchvision checkpoint** (``.pth`` / ``.pt``): a ``state_dict`` saved with ``torch.save``, e.g.
  ``resnet50-11ad3fa6.pth``. Reading it needs PyTorch, so only the torch environment can;
- a **neutral** ``.npz`` (``models.weights.save_weights``): Keras weight paths and layouts, readable
  anywhere. ``python -m bench convert-weights IN.pth OUT.npz --model M`` writes one in the torch
  environment, for the tensorflow and jax environments.

Nothing is ever downloaded. ``pretrained_weights`` puts the checkpoint into the run's model: when the run has
another class count than the checkpoint (ImageNet's 1000 -> CIFAR-10's 10), the classifier layer
(``ModelSpec.head``) keeps the model's own initial weights and the record says so; any other
missing, unexpected or misshapen tensor is a ``WeightMismatchError`` naming it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from models import build_model, get_model_spec
from models.weights import WeightMismatchError, from_torch_state, load_weights, merge_pretrained, torch_layout

TORCH_SUFFIXES = (".pth", ".pt")
NEUTRAL_SUFFIXES = (".npz",)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read here; the message says why and what to do, on one line."""


def checkpoint_format(path) -> str:
    """``"torch"`` or ``"neutral"``, from the file name; anything else is refused."""
    suffix = Path(path).suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix in NEUTRAL_SUFFIXES:
        return "neutral"
    raise CheckpointError(
        f"Unknown checkpoint format {Path(path).name!r}. Valid choices: a torchvision state_dict "
        f"({', '.join(TORCH_SUFFIXES)}) or a neutral {', '.join(NEUTRAL_SUFFIXES)} (python -m bench convert-weights)."
    )


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
            f"environment: python -m bench convert-weights {path} OUT.npz --model MODEL"
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


def neutral_from_torch_state(model_name, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A torchvision ``state_dict`` -> the neutral mapping (Keras paths and layouts) at its own class count.

    Builds the Keras definition at the checkpoint's class count (read from the classifier bias) to get the
    layout (names, Flatten permutation), so the Keras backend must already be chosen.
    """
    from models._registry import _resolve
    from models.weights import default_torch_key

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
    reference = build_model(model_name, "keras", input_shape=spec.input_shape, num_classes=num_classes)
    layout = torch_layout(reference, key_fn=key_fn)
    unexpected = sorted(set(state) - set(layout.keys.values()))
    unexpected = [key for key in unexpected if not key.endswith("num_batches_tracked")]
    if unexpected:
        raise WeightMismatchError(f"PyTorch tensor {unexpected[0]!r} in the checkpoint has no counterpart in "
                                  f"{model_name}.")
    return from_torch_state(state, layout, {v.path: tuple(v.shape) for v in reference.weights})


def read_checkpoint(path, model_name) -> tuple[dict[str, np.ndarray], dict]:
    """The neutral weights in ``path`` for ``model_name``, and a description of the file for the record."""
    kind = checkpoint_format(path)
    if not Path(path).is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    if kind == "torch":
        weights = neutral_from_torch_state(model_name, read_torch_state_dict(path))
    else:
        try:
            weights = load_weights(path)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"Cannot read {str(path)!r} as a neutral .npz: {err}".splitlines()[0]) from None
    head = _head_bias(model_name)
    info = {"path": str(path), "format": {"torch": "torchvision state_dict", "neutral": "neutral npz"}[kind],
            "num_classes": int(np.shape(weights[head])[0]) if head is not None and head in weights else None}
    return weights, info


def pretrained_weights(model_name, path, *, canonical: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The checkpoint in ``path`` fitted to a model whose own initial weights are ``canonical``.

    Returns ``(weights, info)``; ``info["replaced"]`` lists the classifier weights that kept their initial
    values because the checkpoint has another class count.
    """
    checkpoint, info = read_checkpoint(path, model_name)
    weights, replaced = merge_pretrained(checkpoint, canonical, head=get_model_spec(model_name).head)
    return weights, {**info, "replaced": replaced}


def convert_checkpoint(path, out, model_name) -> tuple[Path, dict]:
    """Write the neutral ``.npz`` of a torchvision checkpoint (torch environment)."""
    from models.weights import save_weights

    if checkpoint_format(path) != "torch":
        raise CheckpointError(f"{str(path)!r} is not a torchvision checkpoint ({', '.join(TORCH_SUFFIXES)}).")
    if checkpoint_format(out) != "neutral":
        raise CheckpointError(f"The output must be a .npz file. Received: {str(out)!r}.")
    weights, info = read_checkpoint(path, model_name)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, weights)
    return Path(out), info
