"""Framework-neutral weights: one mapping ``{name: numpy array}`` that every twin can load.

The neutral mapping uses the Keras 3 variable paths as names (``conv1/kernel``, ``bn1/moving_mean``) and
the Keras layouts (conv kernels HWIO, dense kernels ``(in, out)``). Loading into PyTorch converts:

- conv kernels HWIO -> OIHW; depthwise kernels ``(H, W, C, M)`` -> ``(C*M, 1, H, W)``;
- dense kernels are transposed;
- the first dense kernel after a Flatten is *permuted*: Keras flattens ``(H, W, C)``, PyTorch ``(C, H, W)``;
- BatchNorm ``gamma/beta/moving_mean/moving_variance`` -> ``weight/bias/running_mean/running_var``;
- embedding tables keep their ``(vocabulary, width)`` layout (no transpose);
- LSTM: ``kernel (in, 4h)`` and ``recurrent_kernel (h, 4h)`` are transposed into ``weight_ih (4h, in)`` and
  ``weight_hh (4h, h)`` (both stack the gates ``i, f, c/g, o`` in the same order); the one Keras bias is PyTorch's
  ``bias_ih + bias_hh``: it loads as ``bias_ih`` with ``bias_hh = 0`` and is read back as their sum.

``canonical_weights`` realises the Keras definition's own initializers in NumPy with a fixed seed, so every
implementation, on every backend, starts from the very same numbers (each backend's RNG differs).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class WeightMismatchError(ValueError):
    """A weight mapping does not fit a model; the message names the first mismatching tensor."""


# ----------------------------------------------------------------------------------------------------------
# Canonical initial weights: the Keras definition's initializers, drawn with NumPy.
# ----------------------------------------------------------------------------------------------------------

def _fans(shape):
    """Keras' fan computation: conv kernels are (..., in, out) with a receptive field in front."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _draw(config: dict, class_name: str, shape, rng: np.random.Generator) -> np.ndarray:
    """Draw one tensor like the named Keras initializer would (same distribution, NumPy RNG)."""
    if class_name in ("Zeros",):
        return np.zeros(shape)
    if class_name in ("Ones",):
        return np.ones(shape)
    if class_name == "Constant":
        return np.full(shape, config["value"])
    if class_name == "RandomNormal":  # drawn in float32: VGG19's 100M-weight fc1 takes 2x less time and memory
        return config["mean"] + rng.standard_normal(shape, dtype=np.float32) * np.float32(config["stddev"])
    if class_name == "RandomUniform":
        return rng.uniform(config["minval"], config["maxval"], shape)
    if class_name == "TruncatedNormal":
        return config["mean"] + _truncated_normal(rng, shape) * config["stddev"]
    if "mode" in config:  # VarianceScaling and its children: Glorot*, He*, Lecun*
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[config["mode"]]
        variance = config["scale"] / max(1.0, fan)
        distribution = config["distribution"]
        if distribution == "truncated_normal":
            # The constant is the std of a unit normal truncated to [-2, 2], as in Keras.
            return _truncated_normal(rng, shape) * math.sqrt(variance) / 0.87962566103423978
        if distribution == "untruncated_normal":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(variance))
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    raise NotImplementedError(f"No NumPy version of Keras initializer {class_name} ({config}).")


def _truncated_normal(rng, shape):
    """Unit normal truncated to [-2, 2] by redrawing, the distribution Keras uses."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out


# Where a Keras layer keeps the initializer of each variable (``depthwise`` convs name theirs differently).
_INITIALIZER_ATTRS = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "recurrent_kernel": ("recurrent_initializer",),  # LSTM, GRU, SimpleRNN
    "bias": ("bias_initializer",),
    "gamma": ("gamma_initializer",),
    "beta": ("beta_initializer",),
    "moving_mean": ("moving_mean_initializer",),
    "moving_variance": ("moving_variance_initializer",),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
}


# Initializers a layer passes inline to ``add_weight`` and keeps no attribute for: (layer class, variable) -> name.
_INLINE_INITIALIZERS = {
    ("ViTPatchingAndEmbedding", "class_token"): "random_normal",  # keras_hub/src/models/vit/vit_layers.py
}


def _initializer_of(layer, variable_name, variable=None):
    """The initializer of ``layer``'s variable ``variable_name``: the layer's own attribute for it; else (a composite
    layer such as keras-hub's ``TransformerDecoder``, whose ``weights`` include its sublayers') the attribute of the
    sublayer that owns ``variable``; else a known inline initializer."""
    for attr in _INITIALIZER_ATTRS.get(variable_name, (f"{variable_name}_initializer", "initializer")):
        initializer = getattr(layer, attr, None)
        if initializer is not None:
            return initializer
    if variable is not None:
        for sublayer in layer._flatten_layers(include_self=False, recursive=True):
            if any(own is variable for own in sublayer._trainable_variables + sublayer._non_trainable_variables):
                return _initializer_of(sublayer, variable_name)
    inline = _INLINE_INITIALIZERS.get((type(layer).__name__, variable_name))
    if inline is not None:
        import keras  # a Keras 3 model is being read: keras is imported already

        return keras.initializers.get(inline)
    raise NotImplementedError(f"Cannot find the initializer of {layer.name}/{variable_name}.")


def canonical_weights(keras_model, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The canonical initial weights of a Keras 3 model, identical on every backend.

    Each tensor is drawn from the layer's own initializer (same distribution as Keras) with a NumPy
    generator seeded by ``(seed, crc32(path))``, so a weight's values do not depend on the order in which
    layers were created or on the backend's RNG.
    """
    weights = {}
    for layer in leaf_layers(keras_model):
        for variable in layer.weights:
            if variable.path in weights:
                continue  # shared layers appear once
            name = variable.path.rsplit("/", 1)[-1]
            initializer = _initializer_of(layer, name, variable)
            cls = type(initializer).__name__
            config = dict(initializer.get_config())
            for attr in ("scale", "mode", "distribution"):
                if hasattr(initializer, attr):
                    config[attr] = getattr(initializer, attr)
            rng = np.random.default_rng([seed, zlib.crc32(variable.path.encode())])
            weights[variable.path] = _draw(config, cls, tuple(variable.shape), rng).astype(np.float32)
    return weights


def leaf_layers(model):
    """Every leaf layer of a (possibly nested) Keras model, in definition order."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from leaf_layers(layer)
        elif hasattr(layer, "forward_layer"):  # Bidirectional: its two recurrent layers hold the weights
            yield layer.forward_layer
            yield layer.backward_layer
        else:
            yield layer


# ----------------------------------------------------------------------------------------------------------
# Keras <-> PyTorch layouts.
# ----------------------------------------------------------------------------------------------------------

_TORCH_SUFFIX = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def default_torch_key(path: str) -> str:
    """``block1/conv/kernel`` -> ``block1.conv.weight``: the naming our hand-written torch twins use."""
    *layer, variable = path.split("/")
    return ".".join([*layer, _TORCH_SUFFIX.get(variable, variable)])


@dataclass
class TorchLayout:
    """How the neutral mapping of one model lines up with its PyTorch ``state_dict``.

    Attributes:
        keys: neutral path -> torch state_dict key.
        flatten_inputs: neutral path of a dense kernel fed by a Flatten -> the ``(H, W, C)`` it flattens.
        same_layout: neutral paths whose 2-D tensor has one layout in both (embedding tables: no transpose).
        summed_biases: neutral path of a recurrent layer's bias (loaded as ``bias_ih``) -> the torch key of the
            second bias, ``bias_hh``, that PyTorch adds to it: zero when loaded, added when read back.
    """

    keys: dict[str, str]
    flatten_inputs: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    same_layout: frozenset[str] = frozenset()
    summed_biases: dict[str, str] = field(default_factory=dict)


def torch_layout(keras_model, *, key_fn=default_torch_key) -> TorchLayout:
    """Derive the PyTorch layout from the Keras definition (names, which Dense follows a Flatten, which tensors are
    embedding tables, and which biases PyTorch splits in two: a key ``...bias_ih_l0`` pairs with ``...bias_hh_l0``)."""
    keys = {v.path: key_fn(v.path) for v in keras_model.weights}
    same_layout = frozenset(layer.embeddings.path for layer in leaf_layers(keras_model)
                            if type(layer).__name__ == "Embedding")
    summed = {path: key.replace(".bias_ih_l", ".bias_hh_l") for path, key in keys.items() if ".bias_ih_l" in key}
    return TorchLayout(keys=keys, flatten_inputs=flatten_inputs(keras_model), same_layout=same_layout,
                       summed_biases=summed)


def flatten_inputs(keras_model) -> dict[str, tuple[int, int, int]]:
    """Neutral path of every Dense kernel fed by a Flatten (through Dropout layers, if any) -> the ``(H, W, C)`` map
    that Flatten flattens.

    Read from the graph: the Flatten's input shape in its own layout. Keras' Flatten orders its output ``(H, W, C)``
    in either layout (a channels-first map is turned channels last first, so that weights survive a change of
    layout), so the neutral kernel's rows are ``(H, W, C)`` whichever layout the model was built in. A subclassed
    Keras model has no graph to read: its Dense layers are not known to follow a Flatten.
    """
    found = {}
    for layer in leaf_layers(keras_model):
        if type(layer).__name__ != "Dense":
            continue
        try:
            producer = layer.input._keras_history.operation
            while type(producer).__name__ == "Dropout":  # element-wise: keeps the Flatten's order (AlexNet)
                producer = producer.input._keras_history.operation
        except (AttributeError, ValueError):  # no graph: a subclassed model
            continue
        if type(producer).__name__ == "Flatten" and len(producer.input.shape) == 4:
            shape = tuple(int(d) for d in producer.input.shape[1:])
            if getattr(producer, "data_format", "channels_last") == "channels_first":
                shape = (*shape[1:], shape[0])
            found[layer.kernel.path] = shape
    return found


def hwc_rows_to_chw(kernel, flatten_input) -> np.ndarray:
    """A Dense kernel after a Flatten, its rows reordered from ``(H, W, C)`` (Keras) to ``(C, H, W)`` (PyTorch)."""
    h, w, c = flatten_input
    return np.asarray(kernel).reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)


def chw_rows_to_hwc(kernel, flatten_input) -> np.ndarray:
    """Inverse of ``hwc_rows_to_chw``."""
    h, w, c = flatten_input
    return np.asarray(kernel).reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)


def keras_to_torch_array(array, torch_shape, *, flatten_input=None, same_layout=False) -> np.ndarray:
    """Convert one tensor from Keras layout to the PyTorch layout of shape ``torch_shape``."""
    array = np.asarray(array)
    torch_shape = tuple(torch_shape)
    if same_layout:
        converted = array
    elif array.ndim == 4:
        converted = array.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if converted.shape != torch_shape:  # depthwise: (H, W, C, M) -> (C*M, 1, H, W)
            h, w, c, m = array.shape
            converted = array.transpose(2, 3, 0, 1).reshape(c * m, 1, h, w)
    elif array.ndim == 2:
        if flatten_input is not None:  # rows ordered (H, W, C) in Keras, (C, H, W) in PyTorch
            array = hwc_rows_to_chw(array, flatten_input)
        converted = array.T
    else:
        converted = array
    return np.asarray(converted, order="C")  # (ascontiguousarray would make a 0-d scalar 1-d)


def torch_to_keras_array(array, keras_shape, *, flatten_input=None, same_layout=False) -> np.ndarray:
    """Inverse of ``keras_to_torch_array``: PyTorch layout -> Keras layout of shape ``keras_shape``."""
    array = np.asarray(array)
    keras_shape = tuple(keras_shape)
    if same_layout:
        converted = array
    elif array.ndim == 4:
        if array.shape[1] == 1 and keras_shape[2] * keras_shape[3] == array.shape[0] and keras_shape[2] != 1:
            h, w, c, m = keras_shape  # depthwise
            converted = array.reshape(c, m, h, w).transpose(2, 3, 0, 1)
        else:
            converted = array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif array.ndim == 2:
        converted = array.T
        if flatten_input is not None:
            converted = chw_rows_to_hwc(converted, flatten_input)
    else:
        converted = array
    return np.asarray(converted, order="C")  # (ascontiguousarray would make a 0-d scalar 1-d)


def to_torch_state(weights: dict, layout: TorchLayout, torch_shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Neutral mapping -> ``{torch_key: array}`` checked against the module's shapes."""
    state = {}
    for path, key in layout.keys.items():
        if path not in weights:
            raise WeightMismatchError(f"Weight {path!r} is missing from the mapping.")
        if key not in torch_shapes:
            raise WeightMismatchError(
                f"Weight {path!r} maps to PyTorch key {key!r}, which the module does not have."
            )
        expected = tuple(torch_shapes[key])
        try:
            array = keras_to_torch_array(weights[path], expected, flatten_input=layout.flatten_inputs.get(path),
                                         same_layout=path in layout.same_layout)
        except ValueError as err:  # a reshape that cannot work: the twin is not the same network
            raise WeightMismatchError(
                f"Weight {path!r} {tuple(np.shape(weights[path]))} cannot become {key!r} {expected}: {err}"
            ) from None
        if array.shape != expected:
            raise WeightMismatchError(
                f"Weight {path!r} has shape {tuple(np.shape(weights[path]))} -> {array.shape} in PyTorch layout, "
                f"but {key!r} has shape {expected}."
            )
        state[key] = array
        if path in layout.summed_biases:  # PyTorch's second bias: the sum is the Keras bias
            second = layout.summed_biases[path]
            if second not in torch_shapes:
                raise WeightMismatchError(f"Bias {path!r} needs PyTorch key {second!r}, which the module does not have.")
            state[second] = np.zeros(torch_shapes[second], dtype=array.dtype)
    return state


def from_torch_state(state: dict, layout: TorchLayout, keras_shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """``{torch_key: array}`` -> neutral mapping with the Keras shapes."""
    weights = {}
    for path, key in layout.keys.items():
        if key not in state:
            raise WeightMismatchError(f"PyTorch key {key!r} (for {path!r}) is missing from the state dict.")
        array = torch_to_keras_array(state[key], keras_shapes[path], flatten_input=layout.flatten_inputs.get(path),
                                     same_layout=path in layout.same_layout)
        if path in layout.summed_biases:  # b_ih + b_hh: the one bias the forward pass uses
            second = layout.summed_biases[path]
            if second not in state:
                raise WeightMismatchError(f"PyTorch key {second!r} (for {path!r}) is missing from the state dict.")
            array = array + np.asarray(state[second], dtype=array.dtype)
        if array.shape != tuple(keras_shapes[path]):
            raise WeightMismatchError(
                f"PyTorch tensor {key!r} has shape {tuple(np.shape(state[key]))}, "
                f"but {path!r} needs {tuple(keras_shapes[path])}."
            )
        weights[path] = array
    return weights


def check_weights(weights: dict, expected_shapes: dict[str, tuple]) -> None:
    """Raise ``WeightMismatchError`` naming the first tensor whose name or shape does not fit."""
    for path, shape in expected_shapes.items():
        if path not in weights:
            raise WeightMismatchError(f"Weight {path!r} (shape {tuple(shape)}) is missing.")
        if tuple(np.shape(weights[path])) != tuple(shape):
            raise WeightMismatchError(
                f"Weight {path!r} has shape {tuple(np.shape(weights[path]))}, the model needs {tuple(shape)}."
            )
    extra = sorted(set(weights) - set(expected_shapes))
    if extra:
        raise WeightMismatchError(f"Weight {extra[0]!r} does not belong to this model.")


def save_weights(path, weights: dict) -> None:
    """Write a neutral mapping to ``.npz`` (names are kept verbatim), atomically: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as file:  # a file object: np.savez would append ".npz" to a name
            np.savez(file, **{name: np.asarray(value) for name, value in weights.items()})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_weights(path) -> dict[str, np.ndarray]:
    """Read a neutral mapping written by ``save_weights``."""
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def merge_pretrained(checkpoint: dict, initial: dict, *, head: str | None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Pretrained weights for a model whose own initial weights are ``initial``.

    Every weight comes from ``checkpoint`` except the classifier layer ``head`` when its shape differs (a
    checkpoint with another class count): those keep their initial values and are listed in the result. With
    ``head=None`` every tensor must fit.

    Returns:
        ``(weights, replaced)``: the mapping to load and the paths that kept their initial values.

    Raises:
        WeightMismatchError: naming the first tensor that is missing, unexpected or of the wrong shape.
    """
    weights, replaced = {}, []
    for path, value in initial.items():
        if path not in checkpoint:
            raise WeightMismatchError(f"Weight {path!r} is missing from the checkpoint.")
        if tuple(np.shape(checkpoint[path])) == tuple(np.shape(value)):
            weights[path] = np.asarray(checkpoint[path], dtype=np.float32)
        elif path.split("/")[0] == head:
            weights[path] = value  # a new classifier for the new classes
            replaced.append(path)
        else:
            raise WeightMismatchError(
                f"Checkpoint tensor {path!r} has shape {tuple(np.shape(checkpoint[path]))}, "
                f"the model needs {tuple(np.shape(value))}."
            )
    extra = sorted(set(checkpoint) - set(initial))
    if extra:
        raise WeightMismatchError(f"Checkpoint tensor {extra[0]!r} does not belong to this model.")
    return weights, replaced
