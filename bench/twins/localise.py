"""Where two twins part: the first layer whose activations differ, and the first whose gradients differ.

Both models run the same batch with the same weights while every layer's input and output is recorded: in PyTorch
by forward hooks on the modules that own weights, in Keras by wrapping each layer's ``call`` for the one batch.
The layers are aligned by the weight pairing (a Keras layer and the module that holds its weights), PyTorch's
tensors are turned into Keras' layout (NCHW -> NHWC; a flattened ``(C, H, W)`` vector reordered to ``(H, W, C)``)
and, walking in the order Keras runs its layers, each pair's input and then output is compared:

- an **output** that differs while the input agreed: the layer itself differs (its padding, epsilon, stride...);
- an **input** that differs while the previous pair's output agreed: the difference lies *between* two layers
  with weights, in a layer without any (an activation, a pooling, a padding, a Flatten), which is listed.

A difference counts when it exceeds the float32 floor: ``LOGITS_ATOL`` of the tensor's largest value, or
``NOISE_FACTOR`` times the PyTorch twin's own float32 error there (the same tensor computed in float64), whichever
is larger. Gradients are compared layer by layer walking back from the loss, with the twin check's tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twinbench.backends.tolerances import GRAD_ATOL, GRAD_RTOL, LOGITS_ATOL, NOISE_FACTOR, ZERO_GRAD_REL
from twinbench.models.weights import leaf_layers


@dataclass
class Call:
    """One layer's first call: its name, the layer or module itself, its (first) input and its output."""

    name: str
    owner: object
    input: np.ndarray | None
    output: np.ndarray | None


def _numpy(value, convert):
    return None if isinstance(value, list | tuple | dict) or value is None else np.asarray(convert(value))


def keras_trace(model, x, *, training: bool) -> list[Call]:
    """Every leaf layer's first call while ``model`` runs ``x``, in the order Keras runs them."""
    import keras

    calls: list[Call] = []
    seen: set[int] = set()
    layers = [layer for layer in leaf_layers(model) if type(layer).__name__ != "InputLayer"]
    for layer in layers:
        original = layer.call

        def traced(*args, _layer=layer, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            if id(_layer) not in seen:
                seen.add(id(_layer))
                calls.append(Call(_layer.name, _layer, _numpy(args[0] if args else None, keras.ops.convert_to_numpy),
                                  _numpy(out, keras.ops.convert_to_numpy)))
            return out

        layer.call = traced
    try:
        model(keras.ops.convert_to_tensor(x), training=training)
    finally:
        for layer in layers:
            del layer.call  # the class's own call again
    return calls


def torch_trace(module, x_nchw, *, training: bool) -> list[Call]:
    """The first call of every module that owns weights while ``module`` runs ``x_nchw``, in the order they ran."""
    import torch

    calls: list[Call] = []
    seen: set[str] = set()

    def hook_for(name):
        def hook(mod, inputs, output):
            if name not in seen:
                seen.add(name)
                first = inputs[0] if inputs else None
                calls.append(Call(name, mod, _numpy(first, lambda t: t.detach().cpu()),
                                  _numpy(output, lambda t: t.detach().cpu())))
        return hook

    owners = [(name, mod) for name, mod in module.named_modules()
              if any(True for _ in mod.parameters(recurse=False)) or any(True for _ in mod.buffers(recurse=False))]
    handles = [mod.register_forward_hook(hook_for(name)) for name, mod in owners]
    module.train(training)
    try:
        with torch.no_grad():
            module(x_nchw)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def to_keras_layout(array, like, *, flattened=None):
    """A PyTorch activation in Keras' layout, shaped like the Keras one where a layout transform explains it."""
    if array is None:
        return None
    if flattened is not None and array.ndim == 2:  # rows (C, H, W) -> (H, W, C), as the Flatten permutation
        h, w, c = flattened
        return array.reshape(len(array), c, h, w).transpose(0, 2, 3, 1).reshape(len(array), -1)
    if array.ndim == 4:
        return array.transpose(0, 2, 3, 1)
    if array.ndim == 3 and like is not None and array.shape != like.shape:
        return array.transpose(0, 2, 1)  # Conv1D: (N, C, L) -> (N, L, C)
    return array


@dataclass
class Divergence:
    """The first place the activations differ (``where``: ``input`` or ``output`` of the named layers)."""

    mode: str  # "inference" or "training"
    keras_layer: str
    torch_module: str
    where: str
    keras_shape: tuple
    torch_shape: tuple  # in Keras layout
    max_diff: float = float("nan")
    scale: float = float("nan")
    tolerance: float = float("nan")
    agreed: tuple[str, str] | None = None  # the last pair whose output agreed
    between: list[str] = field(default_factory=list)  # Keras layers without weights run in between

    def describe(self) -> str:
        names = f"Keras layer {self.keras_layer!r} / PyTorch module {self.torch_module!r}"
        if self.keras_shape != self.torch_shape:
            size = f"the shapes differ: Keras {self.keras_shape} vs PyTorch {self.torch_shape} (in Keras layout)"
        else:
            size = (f"shape {self.keras_shape}, max |difference| {self.max_diff:.3g} = "
                    f"{100 * self.max_diff / (self.scale or 1.0):.3g}% of the largest value "
                    f"(floor {self.tolerance:.2g})")
        if self.where == "output":
            return f"{self.mode} mode: activations first differ at the output of {names}, whose input agreed: {size}"
        before = ("the model's input" if self.agreed is None
                  else f"the output of {self.agreed[0]!r} / {self.agreed[1]!r}")
        inside = (f"Keras layers {self.between}" if self.between else "no Keras layer (an activation fused into "
                  "the layer before?)")
        return (f"{self.mode} mode: activations first differ at the input of {names}, while {before} agreed: the "
                f"difference is in between ({inside} and the PyTorch code between those modules): {size}")


def first_divergence(keras_calls, torch_calls, pairs, *, mode, flatten_inputs=None, noise_calls=None):
    """The first place, in Keras' order, where paired layers' inputs or outputs differ beyond the floor.

    Args:
        keras_calls, torch_calls: ``keras_trace`` and ``torch_trace`` of the same batch and weights.
        pairs: Keras layer name -> PyTorch module name (from the weight pairing).
        mode: ``"inference"`` or ``"training"``, for the message.
        flatten_inputs: Keras layer name -> the ``(H, W, C)`` its flattened input comes from.
        noise_calls: ``torch_trace`` of the float64 copy: the floor's float32 error per tensor.

    Returns:
        A ``Divergence``, or ``None`` when every paired layer agrees.
    """
    torch_by_name = {call.name: call for call in torch_calls}
    exact_by_name = {call.name: call for call in noise_calls or []}
    agreed, between = None, []
    for call in keras_calls:
        module = pairs.get(call.name)
        if module is None or module not in torch_by_name:
            between.append(call.name)
            continue
        other, exact = torch_by_name[module], exact_by_name.get(module)
        flattened = (flatten_inputs or {}).get(call.name)
        for where in ("input", "output"):
            mine, theirs = getattr(call, where), getattr(other, where)
            if mine is None or theirs is None:
                continue
            theirs = to_keras_layout(theirs, mine, flattened=flattened if where == "input" else None)
            if where == "input":
                theirs = _with_conv_padding(other.owner, theirs, mine)
            if where == "output":
                theirs = _with_fused_activation(call.owner, theirs)
            exact_value = None if exact is None else getattr(exact, where)
            if exact_value is not None:
                exact_value = to_keras_layout(exact_value, mine, flattened=flattened if where == "input" else None)
                if where == "input":
                    exact_value = _with_conv_padding(other.owner, exact_value, mine)
                if where == "output":
                    exact_value = _with_fused_activation(call.owner, exact_value.astype(np.float32))
            found = _compare(mine, theirs, exact_value)
            if found is not None:
                if where == "input":  # the graph knows which layers feed this one; execution order guesses
                    agreed, between = _feeding(call.owner, pairs) or (agreed, between)
                return Divergence(mode, call.name, module, where, tuple(mine.shape), tuple(theirs.shape), *found,
                                  agreed=agreed if where == "input" else None,
                                  between=between if where == "input" else [])
        agreed, between = (call.name, module), []
    return None


def _feeding(layer, pairs):
    """``(the nearest paired layer upstream, the unpaired Keras layers on the way)`` read from the Keras graph,
    or ``None`` where there is no graph (a subclassed model)."""
    between, agreed, queue = [], None, [layer]
    while queue:
        producers = _producers(queue.pop(0))
        if producers is None:
            return None
        for producer in producers:
            if producer.name in pairs:
                agreed = agreed or (producer.name, pairs[producer.name])
            elif type(producer).__name__ != "InputLayer" and producer.name not in between:
                between.insert(0, producer.name)
                queue.append(producer)
    return agreed, between


def _producers(layer):
    try:
        inputs = layer.input
    except (AttributeError, ValueError):
        return None
    inputs = inputs if isinstance(inputs, list | tuple) else [inputs]
    return [t._keras_history.operation for t in inputs if hasattr(t, "_keras_history")]


def _compare(mine, theirs, exact) -> tuple[float, float, float] | None:
    """``(max |difference|, largest |value|, tolerance)`` if ``mine`` and ``theirs`` differ beyond the floor."""
    if mine.shape != theirs.shape:
        return (float("nan"), float("nan"), float("nan"))
    theirs64 = np.asarray(theirs, np.float64)
    diff = float(np.abs(np.asarray(mine, np.float64) - theirs64).max(initial=0.0))
    scale = float(np.abs(theirs64).max(initial=0.0))
    noise = 0.0 if exact is None else float(np.abs(theirs64 - np.asarray(exact, np.float64)).max(initial=0.0))
    tolerance = max(LOGITS_ATOL * (scale or 1.0), NOISE_FACTOR * noise)
    return (diff, scale, tolerance) if diff > tolerance else None


def _with_conv_padding(module, array, like):
    """A PyTorch convolution pads its input itself (``padding=1``) where Keras pads in a layer before it
    (``ZeroPadding2D`` + ``padding="valid"``): pad PyTorch's input the same way when that explains the shapes."""
    padding = getattr(module, "padding", None)
    if array.ndim != 4 or array.shape == like.shape or not isinstance(padding, tuple) or len(padding) != 2:
        return array
    (ph, pw), mode = padding, getattr(module, "padding_mode", "zeros")
    if mode != "zeros" or like.shape != (array.shape[0], array.shape[1] + 2 * ph, array.shape[2] + 2 * pw,
                                         array.shape[3]):
        return array
    return np.pad(array, ((0, 0), (ph, ph), (pw, pw), (0, 0)))


def _with_fused_activation(layer, array):
    """A Keras layer's output includes its ``activation=...``; the PyTorch module's does not: apply it."""
    activation = getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear":
        return array
    import keras

    return np.asarray(keras.ops.convert_to_numpy(activation(keras.ops.convert_to_tensor(array))))


@dataclass
class GradientDivergence:
    """The first layer, walking back from the loss, whose weight gradients differ."""

    keras_layer: str
    torch_module: str
    weight: str
    shape: tuple
    max_diff: float
    scale: float
    tolerance: float

    def describe(self) -> str:
        return (f"gradients: walking back from the loss, the first layer whose weight gradients differ is Keras layer "
                f"{self.keras_layer!r} / PyTorch module {self.torch_module!r}: {self.weight!r} {self.shape}, max "
                f"|difference| {self.max_diff:.3g} = {100 * self.max_diff / (self.scale or 1.0):.3g}% of its largest "
                f"gradient (tolerance {self.tolerance:.2g})")


def first_gradient_divergence(keras_grads, torch_grads, *, layer_order, pairs, noise=None):
    """The first paired layer, from the output back, with a weight gradient beyond the twin check's tolerance.

    Args:
        keras_grads, torch_grads: gradients by neutral name (Keras layout), as ``parity.observe`` returns them.
        layer_order: Keras layer name -> its weights' neutral names, in the order the layers run.
        pairs: Keras layer name -> PyTorch module name.
        noise: ``parity.float64_noise`` of the PyTorch twin (``grad:<name>`` widens that tensor's tolerance).
    """
    zero_floor = ZERO_GRAD_REL * max((float(np.linalg.norm(np.asarray(g, np.float64))) for g in torch_grads.values()),
                                     default=0.0)
    for layer, names in reversed(list(layer_order.items())):
        for name in names:
            if name not in keras_grads or name not in torch_grads:
                continue
            mine, ref = np.asarray(keras_grads[name], np.float64), np.asarray(torch_grads[name], np.float64)
            scale = float(np.abs(ref).max(initial=0.0))
            atol = max(GRAD_ATOL * (scale or 1.0), zero_floor, NOISE_FACTOR * float((noise or {}).get(f"grad:{name}", 0)))
            diff = np.abs(mine - ref)
            if (diff > atol + GRAD_RTOL * np.abs(ref)).any():
                return GradientDivergence(layer, pairs.get(layer, "?"), name, tuple(ref.shape), float(diff.max()),
                                          scale, atol)
    return None
