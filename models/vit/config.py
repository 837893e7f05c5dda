"""The ViT configuration table, shared by the Keras 3 definition, the tf.keras twin, the PyTorch twin and the
weight mapping.

Dosovitskiy et al., Table 1 (ViT-Base: 12 layers, width 768, MLP 3072, 12 heads), with torchvision's argument
names (``VisionTransformer(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim)``) and its module
names (``conv_proj``, ``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_{i}``,
``encoder.ln``, ``heads.head``). ``vit_tiny`` is the same class at CPU size: 32x32 images cut into 4x4 patches
(64 patches + the class token), 4 layers of width 64.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinbench.models.weights import default_torch_key


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """One row of the table.

    Attributes:
        image_size: height = width of the input, pixels (torchvision builds the position embedding for it).
        patch_size: side of a square patch, pixels; the patch embedding is a Conv2D with this kernel and stride.
        num_layers: encoder blocks.
        num_heads: attention heads; ``hidden_dim`` must be a multiple of it.
        hidden_dim: token width D.
        mlp_dim: hidden width of each block's MLP.
    """

    image_size: int
    patch_size: int
    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int


CONFIGS = {
    "vit_b_16": ViTConfig(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072),
    "vit_tiny": ViTConfig(image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=256),
}

LAYER_NORM_EPSILON = 1e-6  # torchvision: partial(nn.LayerNorm, eps=1e-6); Keras' default is 1e-3, torch's 1e-5
GELU_APPROXIMATE = False  # nn.GELU() is the exact erf form; keras.ops.gelu defaults to the tanh approximation
DROPOUT = 0.0  # torchvision's defaults for `dropout` and `attention_dropout`
POS_EMBEDDING_STD = 0.02  # torchvision: normal_(std=0.02)
MLP_BIAS_STD = 1e-6  # torchvision's MLPBlock: normal_(bias, std=1e-6)

# Parameter counts at the default input shape and 1,000 / 10 classes (torchvision's figures).
PARAMS = {"vit_b_16": 86_567_656, "vit_tiny": 208_074}


def num_patches(config: ViTConfig, image_size: int) -> int:
    """Patches of an ``image_size`` x ``image_size`` image: the token count without the class token."""
    return (image_size // config.patch_size) ** 2


def check_image_size(name: str, config: ViTConfig, input_shape) -> int:
    """The image side of ``input_shape``; a one-line ``ValueError`` unless it is square and a multiple of the patch.

    torchvision's ``VisionTransformer`` asserts the same (``image_size % patch_size == 0`` and ``h == w``).
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height != width or height % config.patch_size:
        raise ValueError(f"Model {name!r} takes square images whose side is a multiple of its patch size "
                         f"{config.patch_size}. Received: input_shape={tuple(input_shape)}.")
    return height


def check_input(name: str, input_shape) -> None:
    """The registry's ``input_check``: ``check_image_size`` for the configuration ``name`` (a variant of another
    definition, ``vit_tiny_kerashub``, takes its twin's)."""
    check_image_size(name, CONFIGS[name.removesuffix("_kerashub")], input_shape)


# Keras layer name -> torchvision module path, for the layers outside the encoder blocks.
_TOP = {"conv_proj": "conv_proj", "encoder_ln": "encoder.ln", "head": "heads.head"}
# Within block i: Keras suffix -> torchvision path under encoder.layers.encoder_layer_{i}.
_BLOCK = {"ln_1": "ln_1", "ln_2": "ln_2", "attention_out": "self_attention.out_proj", "mlp_1": "mlp.0",
          "mlp_2": "mlp.3"}


def torch_key(path: str) -> str:
    """Keras weight path -> torchvision ``state_dict`` key.

    ``encoder_layer_3_attention_qkv/kernel`` -> ``encoder.layers.encoder_layer_3.self_attention.in_proj_weight``
    (torch's packed q, k, v projection), ``class_token/token`` -> ``class_token``,
    ``pos_embedding/embedding`` -> ``encoder.pos_embedding``, ``head/kernel`` -> ``heads.head.weight``.
    """
    layer, variable = path.rsplit("/", 1)
    if layer == "class_token":
        return "class_token"
    if layer == "pos_embedding":
        return "encoder.pos_embedding"
    if layer in _TOP:
        return default_torch_key(f"{_TOP[layer]}/{variable}")
    if layer.startswith("encoder_layer_"):
        index, _, part = layer[len("encoder_layer_"):].partition("_")
        module = f"encoder.layers.encoder_layer_{index}"
        if part == "attention_qkv":
            return f"{module}.self_attention.in_proj_{'weight' if variable == 'kernel' else 'bias'}"
        if part in _BLOCK:
            return default_torch_key(f"{module}.{_BLOCK[part]}/{variable}")
    raise KeyError(f"No torchvision key for ViT weight {path!r}.")
