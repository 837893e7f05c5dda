"""Forward FLOPs counted from layer shapes (models/flops.py): hand counts, the registry, torchvision's figures."""

from __future__ import annotations

import pytest

from conftest import BACKEND, requires_backend
from twinbench.backends import get_runner
from twinbench.models import build_model, get_model_spec, list_models
from twinbench.models.flops import FLOPS_PER_MAC, forward_flops

pytestmark = requires_backend


def test_cifar_cnn_flops_match_a_hand_count():
    # conv 3x3x3 -> 32 on a 30x30 output, conv 3x3x32 -> 64 on 13x13, dense 6*6*64 -> 64, dense 64 -> 10
    macs = 30 * 30 * 32 * (3 * 3 * 3) + 13 * 13 * 64 * (3 * 3 * 32) + (6 * 6 * 64) * 64 + 64 * 10
    assert forward_flops(build_model("cifar_cnn", "keras")) == FLOPS_PER_MAC * macs == 8_081_408


def test_mnist_cnn_flops_match_a_hand_count():
    # conv 3x3x1 -> 32 on 26x26, conv 3x3x32 -> 64 on 11x11, dense 5*5*64 -> 128, dense 128 -> 10
    macs = 26 * 26 * 32 * (3 * 3 * 1) + 11 * 11 * 64 * (3 * 3 * 32) + (5 * 5 * 64) * 128 + 128 * 10
    assert forward_flops(build_model("mnist_cnn", "keras")) == FLOPS_PER_MAC * macs == 5_262_080


def test_depthwise_convolution_costs_one_mac_per_kernel_tap():
    import keras

    inputs = keras.Input((8, 8, 16))
    outputs = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(inputs)
    assert forward_flops(keras.Model(inputs, outputs)) == FLOPS_PER_MAC * 8 * 8 * 16 * 3 * 3


def test_layers_it_cannot_count_are_refused():
    import keras

    inputs = keras.Input((5, 4))
    outputs = keras.layers.GRU(3)(inputs)
    with pytest.raises(NotImplementedError, match="GRU"):
        forward_flops(keras.Model(inputs, outputs))


@pytest.mark.skipif(BACKEND != "torch", reason="layer shapes are the same on every backend: counted once (builds are fastest on torch)")
@pytest.mark.parametrize("model_name", list_models())
def test_registry_flops_are_the_count(model_name):
    spec = get_model_spec(model_name)
    if spec.environments is not None:
        pytest.skip(f"{model_name}'s FLOPs are its twin's (models/kerashub); models/flops.py cannot walk keras-hub's "
                    "composite layers, and the model builds in the tensorflow environment only")
    runner = get_runner("keras", BACKEND)
    for size, expected in spec.forward_flops.items():
        shape = tuple(int(d) for d in size.split("x"))
        # layer shapes only (Runner.build_shapes: no weight drawn; VGG19 has 143M at 224x224)
        model = runner.build_shapes(model_name, input_shape=shape, num_classes=spec.num_classes)
        assert forward_flops(model) == expected, size


@pytest.mark.skipif(BACKEND != "torch", reason="torchvision lives in the torch environment")
@pytest.mark.parametrize(("model_name", "weights_enum"), [("resnet50", "ResNet50_Weights"),
                                                          ("vgg19", "VGG19_Weights"),
                                                          ("mobilenet_v2", "MobileNet_V2_Weights")])
def test_flops_are_twice_torchvision_published_macs(model_name, weights_enum):
    """torchvision lists "GFLOPS" that are multiply-accumulates (meta["_ops"], 3 decimals) at 224x224."""
    import torchvision

    published_gmacs = getattr(torchvision.models, weights_enum).IMAGENET1K_V1.meta["_ops"]
    ours = get_model_spec(model_name).forward_flops["224x224x3"]
    assert round(ours / FLOPS_PER_MAC / 1e9, 3) == pytest.approx(published_gmacs, abs=1e-3)
