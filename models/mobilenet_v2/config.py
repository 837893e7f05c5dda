"""The MobileNetV2 architecture table, shared by the Keras 3 definition, the tf.keras twin and the weight mapping.

Sandler et al., Table 2: each row ``t, c, n, s`` is a stage of ``n`` inverted-residual blocks with
expansion factor ``t`` and ``c`` output channels; the first block of the stage has stride ``s``.
This is torchvision's table and numbering (``features.0`` is the stem, ``features.1``-``features.17`` the
blocks, ``features.18`` the last 1x1 convolution), at width multiplier 1.0.
"""

from twinbench.models.weights import default_torch_key

# t, c, n, s
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNEL = 1280
DROPOUT = 0.2  # torchvision's default `dropout`, before the classifier
RELU6 = 6.0

# 3,504,872 parameters at 1000 classes (torchvision's figure; BatchNorm statistics not counted).
PARAMS_IMAGENET = 3_504_872


def make_divisible(value, divisor=8):
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``, never more than 10% down."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def blocks():
    """Every inverted-residual block as ``(index, in_channels, out_channels, stride, expand_ratio)``.

    ``index`` is the block's position in torchvision's ``features`` (1 to 17).
    """
    rows, index, in_channels = [], 1, make_divisible(STEM_CHANNELS)
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        out_channels = make_divisible(c)
        for i in range(n):
            rows.append((index, in_channels, out_channels, s if i == 0 else 1, t))
            in_channels, index = out_channels, index + 1
    return rows


def torch_module_paths():
    """Keras layer name -> torchvision module path.

    ``features.i.conv`` is [expand ConvBNReLU6], depthwise ConvBNReLU6, project Conv, project BN; a block
    with ``t = 1`` has no expansion, so its depthwise part is ``conv.0`` instead of ``conv.1``.
    """
    paths = {"stem_conv": "features.0.0", "stem_bn": "features.0.1"}
    for index, _, _, _, t in blocks():
        prefix, part = f"features.{index}.conv", 0
        if t != 1:
            paths[f"block{index}_expand_conv"] = f"{prefix}.0.0"
            paths[f"block{index}_expand_bn"] = f"{prefix}.0.1"
            part = 1
        paths[f"block{index}_depthwise_conv"] = f"{prefix}.{part}.0"
        paths[f"block{index}_depthwise_bn"] = f"{prefix}.{part}.1"
        paths[f"block{index}_project_conv"] = f"{prefix}.{part + 1}"
        paths[f"block{index}_project_bn"] = f"{prefix}.{part + 2}"
    last = len(blocks()) + 1
    paths.update(head_conv=f"features.{last}.0", head_bn=f"features.{last}.1", classifier="classifier.1")
    return paths


_PATHS = torch_module_paths()


def torch_key(path: str) -> str:
    """Keras weight path -> torchvision key: ``block2_depthwise_bn/gamma`` -> ``features.2.conv.1.1.weight``."""
    layer, variable = path.rsplit("/", 1)
    return default_torch_key(f"{_PATHS[layer]}/{variable}")
