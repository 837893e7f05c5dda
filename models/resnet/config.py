"""The ResNet50 architecture table, shared by the Keras 3 definition and the tf.keras twin.

torchvision builds ResNet50 as ``_resnet(Bottleneck, [3, 4, 6, 3])``: four stages of bottleneck blocks,
widths 64-128-256-512, each block expanding its width by 4. This is ResNet **v1.5**: a downsampling block
puts its stride on the 3x3 convolution (the original paper, and keras.applications, put it on the first
1x1 convolution).
"""

from twinbench.models.weights import default_torch_key

# blocks per stage (torchvision's `layers` argument)
LAYERS = (3, 4, 6, 3)
# bottleneck width of each stage and the stride of its first block
WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
EXPANSION = 4  # a bottleneck block outputs EXPANSION * width channels
STEM_CHANNELS = 64

# 25,557,032 parameters at 1000 classes (torchvision's figure); 2048 features reach the classifier.
PARAMS_IMAGENET = 25_557_032
FEATURES = WIDTHS[-1] * EXPANSION


def torch_key(path: str) -> str:
    """Keras weight path -> torchvision ``state_dict`` key: ``layer1_0_downsample_0/kernel`` -> ``layer1.0.downsample.0.weight``.

    The Keras layer names are torchvision's module paths with ``_`` for ``.`` (Keras forbids dots in names).
    """
    layer, variable = path.rsplit("/", 1)
    return default_torch_key(f"{layer.replace('_', '.')}/{variable}")
