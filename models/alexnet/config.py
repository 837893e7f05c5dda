"""The AlexNet architecture table, shared by the Keras 3 definition, the tf.keras twin and the weight mapping.

torchvision's ``AlexNet`` (the one-GPU variant of Krizhevsky et al. 2012, as in Krizhevsky's "One weird trick",
arXiv:1404.5997: 64, 192, 384, 256, 256 filters) is five convolutions with ReLU, three 3x3/2 max-pools, an
``AdaptiveAvgPool2d((6, 6))`` and a three-layer classifier with dropout before each hidden layer.
"""

from twinbench.models.weights import default_torch_key

# name, filters, kernel, stride, padding, max-pool after it; torchvision's `features` indices follow from it.
CONVS = [
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
]
POOL_SIZE, POOL_STRIDE = 3, 2
POOLED_SIZE = (6, 6)  # torchvision's AdaptiveAvgPool2d((6, 6)) before the classifier, at every input size
HIDDEN_UNITS = 4096
DROPOUT = 0.5  # torchvision's default `dropout`
# conv1 (11x11/4, pad 2) and three 3x3/2 pools leave at least 1x1 only from 63x63 up:
# 63 -> conv1 15 -> pool 7 -> pool 3 -> pool 1; at 62 the last pool has a 2x2 input.
MIN_INPUT_SIZE = 63

# 61,100,840 parameters at 1000 classes (torchvision's figure); 6 * 6 * 256 = 9,216 features reach fc1.
PARAMS_IMAGENET = 61_100_840

# Keras layer -> torchvision module: `features` numbers conv, ReLU and pool modules; `classifier` is
# Dropout(0), Linear(1), ReLU, Dropout(3), Linear(4), ReLU, Linear(6).
TORCH_PATHS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
               "conv5": "features.10", "fc1": "classifier.1", "fc2": "classifier.4", "predictions": "classifier.6"}


def torch_key(path: str) -> str:
    """Keras weight path -> torchvision ``state_dict`` key: ``conv1/kernel`` -> ``features.0.weight``."""
    layer, variable = path.rsplit("/", 1)
    return default_torch_key(f"{TORCH_PATHS[layer]}/{variable}")
