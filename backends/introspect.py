"""Layer-by-layer views of a built model, for the teaching pages (``docs/models/``, ``python -m twinbench show``).

One row per *leaf* layer (a layer or module with no sub-layers; in PyTorch also a module or model that owns
parameters itself, see ``torch_layer_rows``), in the order the model defines them:

- ``name``: the Keras layer name, or the PyTorch module's dotted name (``layer1.0.conv1``);
- ``kind``: the class name (``Conv2D`` in Keras, ``Conv2d`` in PyTorch);
- ``output_shape``: the output of one sample, batch dimension dropped, in the framework's own layout
  (Keras ``(H, W, C)``, PyTorch ``(C, H, W)``);
- ``params``: parameters in that layer, counted like ``Runner.count_params`` counts them: BatchNorm's
  moving statistics (buffers in PyTorch) are state, not parameters.

The frameworks are imported only by the function that needs them; pass models the matching runner built.
"""

from __future__ import annotations

import math

# Keras weights that are state rather than parameters (PyTorch keeps them as buffers).
_STATE_SUFFIXES = ("moving_mean", "moving_variance")


def _leaf_layers(model):
    """Every leaf layer of a (possibly nested) Keras or tf.keras model, in definition order."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def _shape(shape) -> list[int | None]:
    return [None if d is None else int(d) for d in tuple(shape)[1:]]


def _keras_output_shape(layer):
    """The layer's output shape in the functional graph (works for Keras 3 and tf.keras)."""
    try:
        output = layer.output
    except (AttributeError, ValueError):  # a layer used at several places has no single output
        return None
    if isinstance(output, (list, tuple)):
        return [_shape(o.shape) for o in output]
    return _shape(output.shape)


def keras_layer_rows(model) -> list[dict]:
    """Rows for a Keras 3 or tf.keras model (functional or sequential, built with an ``Input``)."""
    rows = []
    for layer in _leaf_layers(model):
        params = sum(math.prod(int(d) for d in w.shape) for w in layer.weights
                     if not w.name.split("/")[-1].split(":")[0].endswith(_STATE_SUFFIXES))
        rows.append({"name": layer.name, "kind": type(layer).__name__,
                     "output_shape": _keras_output_shape(layer), "params": int(params),
                     "weights": [w.path if hasattr(w, "path") else w.name for w in layer.weights]})
    return rows


def torch_layer_rows(module, *, input_shape, inputs=None) -> list[dict]:
    """Rows for a PyTorch module: forward hooks on the leaf modules record one sample's output shapes.

    A module with sub-modules that also owns parameters itself gets a row for those too, so that every parameter
    is in the table: ``nn.MultiheadAttention``'s packed ``in_proj_weight`` (its output: the attention's, the first
    of the tuple it returns), torchvision ViT's ``encoder.pos_embedding``. The model's own top-level parameters
    (the ViT's ``class_token``) get a row each, named by the parameter, with no output shape.

    Args:
        module: an ``nn.Module`` taking ``(N, C, H, W)`` images.
        input_shape: ``(H, W, C)``, as everywhere in twinbench.
        inputs: for a model of another task (``twinbench.data.tasks``): one sample's inputs as a tuple of tensors, passed
            as ``module(*inputs)`` instead of a zero image.
    """
    import torch

    listed = [(name, m) for name, m in module.named_modules()
              if name and (not list(m.children()) or list(m.parameters(recurse=False)))]
    shapes: dict[str, object] = {}

    def hook_for(name):
        def hook(_module, _inputs, output):
            if isinstance(output, tuple) and output and hasattr(output[0], "shape"):
                output = output[0]  # nn.MultiheadAttention: (attention output, attention weights)
            if name not in shapes:  # a module called twice (torchvision reuses its ReLU) keeps its first output
                shapes[name] = _shape(output.shape) if hasattr(output, "shape") else None
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in listed]
    device = next(module.parameters()).device
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            if inputs is not None:
                module(*(t.to(device) for t in inputs))
            else:
                height, width, channels = input_shape
                module(torch.zeros(1, channels, height, width, device=device))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    top = [{"name": key, "kind": "Parameter", "output_shape": None, "params": int(p.numel()), "weights": [key]}
           for key, p in module.named_parameters(recurse=False)]
    return top + [{"name": name, "kind": type(m).__name__, "output_shape": shapes.get(name),
                   "params": int(sum(p.numel() for p in m.parameters(recurse=False))),
                   "weights": [f"{name}.{key}" for key, _ in m.named_parameters(recurse=False)]
                              + [f"{name}.{key}" for key, _ in m.named_buffers(recurse=False)]}
                  for name, m in listed]
