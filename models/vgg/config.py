"""The VGG19 architecture table, shared by the Keras 3 definition, the tf.keras twin and the weight mapping.

torchvision describes VGG by a list per configuration: a number is a 3x3 convolution (padding 1) with that
many filters followed by ReLU, ``"M"`` a 2x2 max-pool with stride 2. VGG19 is configuration ``"E"``
(Simonyan & Zisserman, Table 1, column E).
"""

from twinbench.models.weights import default_torch_key

CFGS = {
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
POOLED_SIZE = (7, 7)  # torchvision's AdaptiveAvgPool2d((7, 7)) before the classifier, at every input size
HIDDEN_UNITS = 4096
DROPOUT = 0.5  # torchvision's default `dropout`

# 143,667,240 parameters at 1000 classes (torchvision's figure); 7 * 7 * 512 = 25,088 features reach fc1.
PARAMS_IMAGENET = 143_667_240


def conv_layer_names(cfg):
    """Keras names of the convolutions, in order: ``block1_conv1``, ``block1_conv2``, ``block2_conv1``, ..."""
    names, block, conv = [], 1, 1
    for value in cfg:
        if value == "M":
            block, conv = block + 1, 1
        else:
            names.append(f"block{block}_conv{conv}")
            conv += 1
    return names


def torch_module_paths(cfg):
    """Keras layer name -> torchvision module path: ``block1_conv1`` -> ``features.0``, ``fc1`` -> ``classifier.0``.

    ``features`` numbers every module: a convolution and its ReLU take two indices, a max-pool one.
    ``classifier`` is Linear(0), ReLU, Dropout, Linear(3), ReLU, Dropout, Linear(6).
    """
    paths, index = {}, 0
    names = iter(conv_layer_names(cfg))
    for value in cfg:
        if value == "M":
            index += 1
        else:
            paths[next(names)] = f"features.{index}"
            index += 2
    paths.update(fc1="classifier.0", fc2="classifier.3", predictions="classifier.6")
    return paths


_VGG19_PATHS = torch_module_paths(CFGS["E"])


def torch_key(path: str) -> str:
    """Keras weight path -> torchvision ``state_dict`` key: ``block1_conv1/kernel`` -> ``features.0.weight``."""
    layer, variable = path.rsplit("/", 1)
    return default_torch_key(f"{_VGG19_PATHS[layer]}/{variable}")
