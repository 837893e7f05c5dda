"""The PyTorch twin of the Vision Transformer *is* torchvision's ``VisionTransformer``; this file only adapts its
arguments (``vit_b_16`` through torchvision's own builder, ``vit_tiny`` through the class with the table's row)."""

import torchvision
from torchvision.models.vision_transformer import VisionTransformer

from twinbench.models.vit.config import CONFIGS, DROPOUT, check_image_size


def _head(model, zero_head):
    """torchvision zeroes ``heads.head``; ``zero_head=False`` gives it ``nn.Linear``'s default init instead."""
    if not zero_head:
        model.heads.head.reset_parameters()
    return model


def _vision_transformer(name, *, input_shape, num_classes, dropout, attention_dropout, zero_head, num_layers):
    """``VisionTransformer`` with the table's row ``name`` (and ``num_layers`` blocks, if given)."""
    config = CONFIGS[name]
    image_size = check_image_size(name, config, input_shape)
    num_layers = config.num_layers if num_layers is None else num_layers
    model = VisionTransformer(image_size=image_size, patch_size=config.patch_size, num_layers=num_layers,
                              num_heads=config.num_heads, hidden_dim=config.hidden_dim, mlp_dim=config.mlp_dim,
                              dropout=dropout, attention_dropout=attention_dropout, num_classes=num_classes)
    return _head(model, zero_head)


def vit_b_16(*, input_shape=(224, 224, 3), num_classes=1000, dropout=DROPOUT, attention_dropout=DROPOUT,
             zero_head=True, num_layers=None):
    """``torchvision.models.vit_b_16(weights=None, image_size=..., ...)``; 86,567,656 parameters at 224x224, 1000.

    With ``num_layers`` (the twin case's single block) it is the same ``VisionTransformer`` with fewer blocks.
    """
    options = {"dropout": dropout, "attention_dropout": attention_dropout, "zero_head": zero_head}
    if num_layers is not None:
        return _vision_transformer("vit_b_16", input_shape=input_shape, num_classes=num_classes,
                                   num_layers=num_layers, **options)
    image_size = check_image_size("vit_b_16", CONFIGS["vit_b_16"], input_shape)
    model = torchvision.models.vit_b_16(weights=None, image_size=image_size, num_classes=num_classes,
                                        dropout=dropout, attention_dropout=attention_dropout)
    return _head(model, zero_head)


def vit_tiny(*, input_shape=(32, 32, 3), num_classes=10, dropout=DROPOUT, attention_dropout=DROPOUT,
             zero_head=True, num_layers=None):
    """``VisionTransformer(image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=256)``."""
    return _vision_transformer("vit_tiny", input_shape=input_shape, num_classes=num_classes, dropout=dropout,
                               attention_dropout=attention_dropout, zero_head=zero_head, num_layers=num_layers)
