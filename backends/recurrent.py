"""Which kernel runs each LSTM: a fused library kernel (cuDNN, oneDNN) or the framework's own step-by-step loop.

Every framework decides this itself, per layer and per call, from the layer's settings, the device, the dtype and
whether the input is masked or packed. The runners record the outcome in ``describe()["recurrent"]`` (``None`` for a
model without LSTMs), as ``{layer: "kernel (why)"}``. The rules, read from each framework's source:

- **Keras 3** (``keras.layers.LSTM(use_cudnn="auto")``): ``LSTM.inner_loop`` tries the backend's fused ``lstm`` when
  there is no recurrent dropout and the cell qualifies (``backend.cudnn_ok``: ``tanh``, ``sigmoid``, a bias, no
  unrolling) on a GPU; the **torch** and **jax** backends refuse any mask (they raise ``NotImplementedError`` and
  Keras runs its generic loop), **TensorFlow** takes right-padded masks. Without a GPU: the generic loop.
- **tf.keras** (``tf_keras.layers.LSTM``): the same settings (``LSTM._could_use_gpu_kernel``) and, at run time, a
  GPU and a right-padded mask (``gpu_lstm_with_fallback``) select cuDNN; otherwise ``standard_lstm``, a
  ``tf.while_loop``.
- **PyTorch** (``nn.LSTM``): ATen calls cuDNN for CUDA input (packed sequences included) while
  ``torch.backends.cudnn.enabled``; on a CPU, oneDNN's fused LSTM (``aten::mkldnn_rnn_layer``) for unpacked float32
  input while ``torch.backends.mkldnn.enabled``, and ATen's own loop for packed input and other dtypes. What the
  input was is only known once the module has run, so ``watch_lstms`` records it at each LSTM's first call.
"""

from __future__ import annotations

CUDNN, GENERIC = "cuDNN", "generic loop"


def _fused_settings(activation, recurrent_activation, *, use_bias, unroll, recurrent_dropout, use_cudnn=True) -> str:
    """Why a Keras-style LSTM cannot take the fused kernel on any device ('' if its settings allow it)."""
    name = getattr(activation, "__name__", str(activation))
    recurrent = getattr(recurrent_activation, "__name__", str(recurrent_activation))
    reasons = [
        *([] if use_cudnn in ("auto", True) else ["use_cudnn=False"]),
        *([] if name == "tanh" else [f"activation {name}"]),
        *([] if recurrent == "sigmoid" else [f"recurrent activation {recurrent}"]),
        *([] if use_bias else ["no bias"]),
        *([] if not unroll else ["unroll"]),
        *([] if not recurrent_dropout else ["recurrent dropout"]),
    ]
    return ", ".join(reasons)


def _masked_layers(model) -> set[str]:
    """Names of the recurrent layers that receive a mask in a functional Keras model (given, or propagated)."""
    masked = set()
    for layer in model.layers:
        if type(layer).__name__ not in ("LSTM", "Bidirectional"):
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            tensors = getattr(node, "input_tensors", None)
            tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
            arguments = getattr(node, "arguments", None)  # Keras 3: the call's arguments, the mask among them
            kwargs = getattr(arguments, "kwargs", None) or getattr(node, "call_kwargs", None) or {}
            if kwargs.get("mask") is not None or any(getattr(t, "_keras_mask", None) is not None for t in tensors):
                masked.add(layer.name)
    return masked


def _keras_lstms(model):
    """``(name, lstm, outer name)`` for every LSTM, a Bidirectional's two directions included."""
    for layer in model.layers:
        if type(layer).__name__ == "LSTM":
            yield layer.name, layer, layer.name
        elif type(layer).__name__ == "Bidirectional" and type(layer.forward_layer).__name__ == "LSTM":
            for inner in (layer.forward_layer, layer.backward_layer):
                yield f"{layer.name}/{inner.name}", inner, layer.name


def keras_lstm_kernels(model, backend: str, *, gpu: bool) -> dict[str, str] | None:
    """The kernel Keras 3 takes for each LSTM of ``model`` on ``backend`` (``gpu``: a GPU is in use)."""
    masked = _masked_layers(model)
    kernels = {}
    for name, layer, outer in _keras_lstms(model):
        cell = layer.cell
        blocked = _fused_settings(cell.activation, cell.recurrent_activation, use_bias=cell.use_bias,
                                  unroll=layer.unroll, recurrent_dropout=cell.recurrent_dropout,
                                  use_cudnn=layer.use_cudnn)
        if blocked:
            kernels[name] = f"{GENERIC} ({blocked})"
        elif not gpu:
            kernels[name] = f"{GENERIC} (no GPU)"
        elif outer in masked and backend in ("torch", "jax"):
            kernels[name] = f"{GENERIC} (masked: the {backend} backend's cuDNN path takes no mask)"
        else:
            kernels[name] = CUDNN + (" (right-padded mask)" if outer in masked else "")
    return kernels or None


def tf_keras_lstm_kernels(model, *, gpu: bool) -> dict[str, str] | None:
    """The kernel tf.keras takes for each LSTM of ``model`` (cuDNN needs right-padded masks, checked at run time)."""
    masked = _masked_layers(model)
    kernels = {}
    for name, layer, outer in _keras_lstms(model):
        if not layer._could_use_gpu_kernel:
            blocked = _fused_settings(layer.activation, layer.recurrent_activation, use_bias=layer.use_bias,
                                      unroll=layer.unroll, recurrent_dropout=layer.recurrent_dropout)
            kernels[name] = f"standard_lstm ({blocked or 'not built eagerly'})"
        elif not gpu:
            kernels[name] = "standard_lstm (no GPU)"
        else:
            kernels[name] = CUDNN + (" (if the mask is right-padded)" if outer in masked else "")
    return kernels or None


# -- PyTorch: recorded from the first call -------------------------------------------------------------------------
def torch_lstm_kernel(*, device_type: str, dtype, packed: bool) -> str:
    """The kernel ATen picks for one ``nn.LSTM`` call."""
    import torch

    if device_type == "cuda":
        return CUDNN if torch.backends.cudnn.enabled and torch.backends.cudnn.is_available() else "ATen loop (cuDNN off)"
    if packed:
        return "ATen loop (packed sequence)"
    if dtype == torch.float32 and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return "oneDNN fused LSTM"
    return f"ATen loop ({dtype})"


def watch_lstms(module) -> None:
    """Record, at each ``nn.LSTM``'s first call, which kernel ran (``module.twinbench_lstm_kernels``)."""
    from torch import nn
    from torch.nn.utils.rnn import PackedSequence

    kernels = module.twinbench_lstm_kernels = {}

    def hook_for(name):
        def hook(_module, args):
            if name not in kernels:
                x = args[0]
                packed = isinstance(x, PackedSequence)
                data = x.data if packed else x
                kernels[name] = torch_lstm_kernel(device_type=data.device.type, dtype=data.dtype, packed=packed)
        return hook

    for name, child in module.named_modules():
        if isinstance(child, nn.LSTM):
            child.register_forward_pre_hook(hook_for(name))


def torch_lstm_kernels(module) -> dict[str, str] | None:
    """What ``watch_lstms`` recorded (``None`` for a module without LSTMs or one not yet run)."""
    return dict(getattr(module, "twinbench_lstm_kernels", {})) or None
