"""Forward FLOPs of a model, counted from the layer shapes of its Keras definition (no framework calls).

Convention (the one MFU accounting uses, e.g. Chowdhery et al., *PaLM*, 2022, appendix B):

- one multiply-accumulate (MAC) is **2 FLOPs**;
- only convolutions, Dense layers and attention's two matrix products are counted, where the MACs are: a
  ``Conv2D`` output element costs ``kh * kw * in_channels / groups`` MACs, a ``DepthwiseConv2D`` output element ``kh * kw``, a ``Dense``
  output ``in_features``; a layer with a ``macs()`` method counts its own (``twinbench.models.vit``'s ``SelfAttention``:
  ``q k^T`` and ``weights v``, ``2 * tokens^2 * D`` per sample; GNMT's attention: its scores and context; GPT-2's
  attention, the full ``T x T`` square since the mask is applied after, and its tied output layer, ``T x width x vocab``);
- bias additions, BatchNorm, activations, pooling, padding and residual additions are *not* counted
  (for the CNNs here they are well under 1% of the total); nor are embedding lookups (a row copy, no MACs);
- an ``LSTM`` costs ``4 * units * (inputs + units)`` MACs per time step (four gates, each a Dense layer over the
  input and the previous output), a ``Bidirectional`` one twice that.

torchvision reports the same quantity in MACs (its weights' ``meta["_ops"]``, e.g. 4.089 "GFLOPS" for
ResNet50 at 224x224), so our count is twice torchvision's figure. A training step costs about 3x the
forward FLOPs (the backward pass computes gradients for activations and for weights: 2x forward).

The count works on a built Keras 3 or tf.keras model (both expose ``layer.output.shape``).
"""

from __future__ import annotations

import math

FLOPS_PER_MAC = 2
TRAIN_FLOPS_PER_FORWARD_FLOP = 3  # forward + backward (about 2x forward)

# Layers with weights that cost no MACs in this convention (BatchNorm: a scale and a shift per element).
# The ViT's class token and position embedding are a concatenation and an addition; an Embedding is a lookup.
_NO_MAC_LAYERS = ("BatchNormalization", "TorchBatchNormalization", "LayerNormalization", "ClassToken",
                  "PositionEmbedding", "Embedding")


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def _mro_names(layer):
    return {cls.__name__ for cls in type(layer).__mro__}


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for one input sample (0 for layers without MACs)."""
    names = _mro_names(layer)
    if callable(getattr(layer, "macs", None)):  # a layer that counts its own, e.g. the ViT's attention products
        return int(layer.macs())
    if "Conv2DTranspose" in names:
        raise NotImplementedError(f"No FLOP count for transposed convolution {layer.name!r}.")
    if "DepthwiseConv2D" in names:
        kh, kw = layer.kernel_size
        return math.prod(layer.output.shape[1:]) * kh * kw
    if "Conv2D" in names:
        kh, kw = layer.kernel_size
        in_channels = layer.input.shape[-1]
        return math.prod(layer.output.shape[1:]) * kh * kw * in_channels // getattr(layer, "groups", 1)
    if "Dense" in names:
        return math.prod(layer.output.shape[1:]) * layer.input.shape[-1]
    if "LSTM" in names or ("Bidirectional" in names and "LSTM" in _mro_names(layer.forward_layer)):
        x = layer.input[0] if isinstance(layer.input, list | tuple) else layer.input  # [x, mask] when given one
        steps, inputs = x.shape[1], x.shape[-1]
        units = layer.forward_layer.units if "Bidirectional" in names else layer.units
        return (2 if "Bidirectional" in names else 1) * steps * 4 * units * (inputs + units)
    if layer.weights and not names & set(_NO_MAC_LAYERS):
        raise NotImplementedError(f"No FLOP count for layer {layer.name!r} of type {type(layer).__name__}.")
    return 0


def forward_flops(keras_model) -> int:
    """FLOPs of one forward pass of one sample: 2 x the MACs of every convolution and Dense layer."""
    return FLOPS_PER_MAC * sum(layer_macs(layer) for layer in _leaf_layers(keras_model))


def model_flops(model_name: str, *, input_shape=None, num_classes=None) -> int:
    """Forward FLOPs per sample of a registered model, counted on its Keras 3 definition.

    Builds the Keras definition, so the Keras backend must already be chosen (``twinbench.backends.select_keras_backend``).
    """
    from twinbench.models import build_model

    return forward_flops(build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes))
