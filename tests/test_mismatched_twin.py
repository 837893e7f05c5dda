"""A twin that is *not* the same network must fail the twin check (the check can fail).

The classic mistake: the PyTorch MNIST tutorial network feeds 9,216 features into its first Linear
(one pooling stage, 12 x 12 x 64), while the Keras tutorial network yields 1,600 (two stages, 5 x 5 x 64).
A subtler one: a twin that forgets the ReLU after the hidden Linear has the same shapes, so only the
numbers can tell.
"""

from __future__ import annotations

import pytest

from conftest import BACKEND
from parity_fixtures import parity_case
from twinbench.twins.parity import ParityError, compare_twins

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="needs the PyTorch twin (torch environment)")


def _twins(build_wrong):
    from twinbench.backends import get_runner
    from twinbench.backends.torch_runner import TorchRunner

    class WrongRunner(TorchRunner):
        def build(self, model_name, *, input_shape, num_classes):
            module = super().build(model_name, input_shape=input_shape, num_classes=num_classes)
            wrong = build_wrong(num_classes)
            wrong.twinbench_layout, wrong.twinbench_shapes = module.twinbench_layout, module.twinbench_shapes
            return wrong.to(self.device)

    input_shape, num_classes, x, y = parity_case("mnist_cnn")
    reference = get_runner("keras", "torch")
    reference.setup(seed=0)
    ref_model = reference.prepare("mnist_cnn", input_shape=input_shape, num_classes=num_classes)
    wrong = WrongRunner()
    wrong.setup(seed=0)
    return reference, ref_model, wrong, x, y, input_shape, num_classes


def test_tutorial_mnist_net_with_9216_features_is_caught():
    import torch.nn.functional as F
    from torch import nn

    class TutorialNet(nn.Module):  # the widely copied PyTorch example: one max-pool, Linear(9216, 128)
        def __init__(self, num_classes):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3)
            self.dense1 = nn.Linear(9216, 128)
            self.logits = nn.Linear(128, num_classes)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return self.logits(F.relu(self.dense1(x.flatten(1))))

    reference, ref_model, wrong, x, y, input_shape, num_classes = _twins(TutorialNet)
    model = wrong.build("mnist_cnn", input_shape=input_shape, num_classes=num_classes)
    with pytest.raises(ParityError, match="parameter counts differ: 1,199,882 vs 225,034"):
        compare_twins(reference, ref_model, wrong, model, x=x, y=y)
    from twinbench.models.weights import WeightMismatchError

    with pytest.raises(WeightMismatchError, match="dense1"):
        wrong.set_weights(model, reference.get_weights(ref_model))


def test_twin_without_hidden_relu_is_caught_by_the_logits():
    from torch import nn

    from twinbench.models.small_cnn.torch_model import SmallCNN

    class NoHiddenRelu(SmallCNN):
        def forward(self, x):
            x = self.pool2(nn.functional.relu(self.conv2(self.pool1(nn.functional.relu(self.conv1(x))))))
            return self.logits(self.dense1(self.flatten(x)))  # forgot the ReLU

    def build(num_classes):
        return NoHiddenRelu(in_channels=1, image_size=28, num_classes=num_classes, filters=(32, 64), dense_units=128)

    reference, ref_model, wrong, x, y, input_shape, num_classes = _twins(build)
    model = wrong.prepare("mnist_cnn", input_shape=input_shape, num_classes=num_classes)
    with pytest.raises(ParityError, match="logits"):
        compare_twins(reference, ref_model, wrong, model, x=x, y=y)


@pytest.mark.large  # MobileNetV2 at full depth; the small twins above show the check failing in the fast tier
def test_keras_moving_variance_rule_is_caught_despite_the_noise_floor(monkeypatch):
    """The BatchNorm trap: Keras' biased moving variance instead of PyTorch's unbiased one.

    MobileNetV2's training-mode outputs are noisy in float32 (``twinbench.twins.parity``: its float32 error against
    float64), so the tolerances widen; the moving variance after one step must still give the twin away
    (32x32 images leave 1x1 maps, so with a batch of 8 the unbiased variance is 8/7 of the biased one).
    """
    from parity_fixtures import canonical, fixture_path
    from twinbench.models.common import keras_layers
    from twinbench.twins.parity import (
        committed_noise,
        compare_fingerprints,
        fingerprint_of,
        load_fingerprint,
        observe_twin,
    )

    class BiasedMovingVariance(keras_layers.TorchBatchNormalization):
        def variance_for_moving_average(self, variance, n):
            return variance  # what keras.layers.BatchNormalization does

    monkeypatch.setattr("twinbench.models.mobilenet_v2.keras_model.TorchBatchNormalization", BiasedMovingVariance)
    twin = observe_twin("keras", "torch", "mobilenet_v2", weights=canonical("mobilenet_v2"),
                        noise=committed_noise("mobilenet_v2"), float64=False)  # the committed envelope only
    actual = fingerprint_of(twin.observation, x=twin.x, y=twin.y, noise=twin.noise)
    with pytest.raises(ParityError, match="state after one step '.*moving_variance'"):
        compare_fingerprints(actual, load_fingerprint(fixture_path("mobilenet_v2")), lr=1e-3)


@pytest.mark.large  # ResNet50 (one block per stage): likewise
def test_keras_batchnorm_epsilon_in_resnet50_is_caught_despite_wide_gradient_tolerances(monkeypatch):
    """The porting mistake: Keras' BatchNorm epsilon (1e-3) instead of PyTorch's 1e-5, in ResNet50.

    ResNet50's float32 training-mode gradients are a few percent from float64 in every framework, so its gradient
    tolerances are wide (``twinbench.twins.parity``); the inference-mode logits are well conditioned, and give it away.
    """
    from parity_fixtures import canonical, fixture_path
    from twinbench.models.common import keras_layers
    from twinbench.twins.parity import (
        committed_noise,
        compare_fingerprints,
        fingerprint_of,
        load_fingerprint,
        observe_twin,
    )

    class KerasEpsilon(keras_layers.TorchBatchNormalization):
        def __init__(self, **kwargs):
            super().__init__(epsilon=1e-3, **kwargs)

    monkeypatch.setattr("twinbench.models.resnet.keras_model.TorchBatchNormalization", KerasEpsilon)
    twin = observe_twin("keras", "torch", "resnet50", weights=canonical("resnet50"), noise=committed_noise("resnet50"),
                        float64=False)  # the committed envelope only
    actual = fingerprint_of(twin.observation, x=twin.x, y=twin.y, noise=twin.noise)
    with pytest.raises(ParityError, match="logits"):
        compare_fingerprints(actual, load_fingerprint(fixture_path("resnet50")), lr=1e-3)
