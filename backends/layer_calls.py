"""One call of one layer, in each implementation: what ``twinbench calls`` times (``twinbench.measuring.calls``).

For each layer type the registered models use (``LAYERS``) this module builds the layer in one implementation
(``keras`` on this process's backend, ``torch``'s ``nn.Module``, ``tf_keras``), makes its input at a given batch
size, and returns a ``LayerCall``: a function that runs one call (``forward``: the layer on its input;
``backward``: the layer, the sum of its output and the gradients of that with respect to the input and the
layer's weights) and returns something to ``sync`` on. ``compiled=True`` wraps that function in the backend's
compiler where one is run here (``jax.jit``; ``tf.function`` for ``keras[tensorflow]`` and ``tf_keras``); PyTorch
calls run eager only (``torch.compile`` takes minutes per layer shape on a CPU: left out, and the record says so).

Shapes: every layer has a tiny size (``tiny``: batch 1 and a handful of features, so the kernel is negligible and
the call is all fixed cost) and the models' size (``model``: the feature sizes of the registered models' layers, at
the batch size asked for); the Keras and tf.keras layers take channels-last images, the torch modules
channels-first, as each framework's users write them.

Frameworks are imported inside the functions (importing this module imports none).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Each layer type, with the sizes it is called at: (feature sizes at ``tiny``, at ``model``).
# image: H, W, C (channels-last); seq: T, D; vector: D; ids: T (vocabulary 1000).
LAYERS = {
    "Conv2D": {"input": "image", "tiny": (4, 4, 4), "model": (16, 16, 32)},
    "Dense": {"input": "vector", "tiny": (4,), "model": (256,)},
    "BatchNormalization": {"input": "image", "tiny": (4, 4, 4), "model": (16, 16, 32)},
    "LayerNormalization": {"input": "seq", "tiny": (2, 4), "model": (64, 128)},
    "MultiHeadAttention": {"input": "seq", "tiny": (2, 4), "model": (64, 128)},
    "Embedding": {"input": "ids", "tiny": (2,), "model": (64,)},
    "LSTM": {"input": "seq", "tiny": (2, 4), "model": (16, 64)},
    "MaxPooling2D": {"input": "image", "tiny": (4, 4, 4), "model": (16, 16, 32)},
    "ReLU": {"input": "image", "tiny": (4, 4, 4), "model": (16, 16, 32)},
}
SIZES = ("tiny", "model")
PASSES = ("forward", "backward")
VOCABULARY = 1000
HEADS = 4


@dataclass
class LayerCall:
    """One layer, ready to be called: ``call()`` runs one call, ``sync(result)`` waits for it; ``elements``: the
    input's elements (what the per-element cost is per)."""

    call: Callable[[], object]
    sync: Callable[[object], None]
    elements: int


def input_array(layer: str, size: str, batch: int, *, seed: int = 0) -> np.ndarray:
    """The input of ``layer`` at ``size`` and ``batch``, channels-last, as numpy (ids as int64)."""
    info = LAYERS[layer]
    rng = np.random.default_rng(seed)
    shape = (batch, *info[size])
    if info["input"] == "ids":
        return rng.integers(0, VOCABULARY, size=shape, dtype=np.int64)
    return rng.standard_normal(shape).astype(np.float32)


def _features(layer: str, size: str) -> int:
    return LAYERS[layer][size][-1]


def make_call(implementation: str, backend: str | None, layer: str, *, size: str, batch: int, backward: bool,
              compiled: bool = False) -> LayerCall:
    """The ``LayerCall`` of ``layer`` in ``implementation`` (``keras`` on ``backend``, the process's Keras backend)."""
    x = input_array(layer, size, batch)
    if implementation == "torch":
        if compiled:
            raise ValueError("compiled layer calls of torch are not run here (torch.compile per shape: minutes).")
        return _torch_call(layer, size, x, backward=backward)
    if implementation == "tf_keras":
        import tf_keras

        return _tf_call(tf_keras, layer, size, x, backward=backward, compiled=compiled)
    import keras

    if backend == "tensorflow":
        return _tf_call(keras, layer, size, x, backward=backward, compiled=compiled)
    if backend == "jax":
        return _jax_call(keras, layer, size, x, backward=backward, compiled=compiled)
    if compiled:
        raise ValueError("compiled layer calls of keras[torch] are not run here (torch.compile per shape: minutes).")
    return _keras_torch_call(keras, layer, size, x, backward=backward)


def _keras_layer(keras, layer: str, size: str, x: np.ndarray):
    """The Keras (or tf.keras: same API) layer, built on ``x``'s shape."""
    features = _features(layer, size)
    layers = keras.layers
    made = {
        "Conv2D": lambda: layers.Conv2D(features, 3, padding="same"),
        "Dense": lambda: layers.Dense(features),
        "BatchNormalization": lambda: layers.BatchNormalization(),
        "LayerNormalization": lambda: layers.LayerNormalization(),
        "MultiHeadAttention": lambda: layers.MultiHeadAttention(HEADS, key_dim=max(1, features // HEADS)),
        "Embedding": lambda: layers.Embedding(VOCABULARY, 128 if size == "model" else 4),
        "LSTM": lambda: layers.LSTM(features),
        "MaxPooling2D": lambda: layers.MaxPooling2D(2),
        "ReLU": lambda: layers.ReLU(),
    }[layer]()
    return made


def _apply(made, layer: str, x, **kwargs):
    return made(x, x, **kwargs) if layer == "MultiHeadAttention" else made(x, **kwargs)


def _torch_module(layer: str, size: str):
    import torch

    features = _features(layer, size)
    nn = torch.nn
    return {
        "Conv2D": lambda: nn.Conv2d(features, features, 3, padding=1),
        "Dense": lambda: nn.Linear(features, features),
        "BatchNormalization": lambda: nn.BatchNorm2d(features),
        "LayerNormalization": lambda: nn.LayerNorm(features),
        "MultiHeadAttention": lambda: nn.MultiheadAttention(features, HEADS, batch_first=True),
        "Embedding": lambda: nn.Embedding(VOCABULARY, 128 if size == "model" else 4),
        "LSTM": lambda: nn.LSTM(features, features, batch_first=True),
        "MaxPooling2D": lambda: nn.MaxPool2d(2),
        "ReLU": lambda: nn.ReLU(),
    }[layer]()


def _torch_sync(result) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _torch_call(layer: str, size: str, x: np.ndarray, *, backward: bool) -> LayerCall:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    module = _torch_module(layer, size).to(device).train()
    if LAYERS[layer]["input"] == "image":
        x = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    tensor = torch.from_numpy(x).to(device)
    if backward and tensor.is_floating_point():
        tensor.requires_grad_(True)

    def forward():
        if layer == "MultiHeadAttention":
            return module(tensor, tensor, tensor, need_weights=False)[0]
        out = module(tensor)
        return out[0] if layer == "LSTM" else out

    if not backward:
        def call():
            with torch.no_grad():
                return forward()
    else:
        def call():
            out = forward()
            out.sum().backward()
            return out
    return LayerCall(call, _torch_sync, int(x.size))


def _keras_torch_call(keras, layer: str, size: str, x: np.ndarray, *, backward: bool) -> LayerCall:
    import torch

    made = _keras_layer(keras, layer, size, x)
    tensor = keras.ops.convert_to_tensor(x)
    _apply(made, layer, tensor)  # build
    if backward and tensor.is_floating_point():
        tensor.requires_grad_(True)

    if not backward:
        def call():
            with torch.no_grad():
                return _apply(made, layer, tensor, training=True)
    else:
        def call():
            out = _apply(made, layer, tensor, training=True)
            out.sum().backward()
            return out
    return LayerCall(call, _torch_sync, int(x.size))


def _tf_call(keras, layer: str, size: str, x: np.ndarray, *, backward: bool, compiled: bool) -> LayerCall:
    import tensorflow as tf

    made = _keras_layer(keras, layer, size, x)
    tensor = tf.convert_to_tensor(x)
    _apply(made, layer, tensor)  # build
    floating = tensor.dtype.is_floating

    def forward():
        return _apply(made, layer, tensor, training=True)

    def forward_backward():
        with tf.GradientTape() as tape:
            if floating:
                tape.watch(tensor)
            out = forward()
            total = tf.reduce_sum(out)
        sources = [*made.trainable_variables, *([tensor] if floating else [])]
        return tape.gradient(total, sources) if sources else out

    call = forward_backward if backward else forward
    if compiled:
        call = tf.function(call)

    def sync(result):
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)

    return LayerCall(call, sync, int(x.size))


def _jax_call(keras, layer: str, size: str, x: np.ndarray, *, backward: bool, compiled: bool) -> LayerCall:
    import jax
    import jax.numpy as jnp

    made = _keras_layer(keras, layer, size, x)
    array = jnp.asarray(x)
    _apply(made, layer, array)  # build
    trainable = [v.value for v in made.trainable_variables]
    others = [v.value for v in made.non_trainable_variables]
    # stateless_call hands its keyword arguments to the layer's call as they are (Layer.__call__ drops a `training`
    # the call does not take; stateless_call does not): Conv2D's, MaxPooling2D's and ReLU's take none.
    training = {"training": True} if "training" in inspect.signature(made.call).parameters else {}

    def loss(weights, inputs):
        out, _ = made.stateless_call(weights, others, *([inputs, inputs] if layer == "MultiHeadAttention"
                                                        else [inputs]), **training)
        return jnp.sum(out)

    def run(weights, inputs):
        return made.stateless_call(weights, others, *([inputs, inputs] if layer == "MultiHeadAttention"
                                                      else [inputs]), **training)[0]

    if backward:
        floating = jnp.issubdtype(array.dtype, jnp.floating)
        target = jax.grad(loss, argnums=(0, 1) if floating else 0)
    else:
        target = run
    compiled_target = jax.jit(target) if compiled else None

    def function():
        if compiled_target is not None:
            return compiled_target(trainable, array)
        if backward:  # eager: every op dispatched as it is traced for the gradient
            return target(trainable, array)
        return _apply(made, layer, array, training=True)  # eager: the layer called as users do

    return LayerCall(function, lambda result: jax.block_until_ready(result), int(x.size))
