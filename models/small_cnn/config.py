"""The architecture table shared by every twin of the small CNNs (one place, imported by all three files).

Both are the classic tutorial networks: two 3x3 conv + 2x2 max-pool stages, then Flatten -> Dense -> logits.
They differ only in the width of the hidden Dense layer and in their input.
"""

# conv filters per stage, hidden dense units, default input (H, W, C), parameters at the defaults
SMALL_CNNS = {
    # The CIFAR-10 comparison CNN: 896 + 18,496 + 147,520 + 650 = 167,562 parameters.
    # Forward FLOPs (2 per multiply-accumulate, models/flops.py): 2 x (30*30*32*27 + 13*13*64*288 + 2304*64 + 64*10).
    "cifar_cnn": dict(filters=(32, 64), dense_units=64, input_shape=(32, 32, 3), num_classes=10, params=167_562,
                      forward_flops=8_081_408),
    # The MNIST CNN: 320 + 18,496 + 204,928 + 1,290 = 225,034 parameters (1,600 features into the Dense layer).
    # Forward FLOPs: 2 x (26*26*32*9 + 11*11*64*288 + 1600*128 + 128*10).
    "mnist_cnn": dict(filters=(32, 64), dense_units=128, input_shape=(28, 28, 1), num_classes=10, params=225_034,
                      forward_flops=5_262_080),
}

KERNEL_SIZE = 3
POOL_SIZE = 2


def feature_map_size(image_size: int) -> int:
    """Spatial size after the two conv ('valid') + max-pool (floor) stages: 32 -> 6, 28 -> 5."""
    size = image_size
    for _ in range(2):
        size = (size - KERNEL_SIZE + 1) // POOL_SIZE
    return size


# The smallest input for which the last pool still sees a 2x2 window.
MIN_INPUT_SIZE = 10
