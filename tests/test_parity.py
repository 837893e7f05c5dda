"""The twins are the same network: parameter counts, logits, loss, gradients and one training step.

Parametrized over the registry, so every registered model is covered, and over the implementations
this test process can run (see conftest.py) that the model has builders for.

``test_twin_parity`` runs one implementation at the model's small parity case once and checks, in turn
(tolerances: the fixed float32 ones, or a few times the reference twin's float32 error against float64 where
that is larger, see ``twinbench.twins.parity``):

1. the canonical weights come back exactly as loaded (the weight mapping is lossless);
2. for a model with a PyTorch twin: agreement with the committed fingerprint of that twin
   (tests/parity/), which ties every environment, keras[jax] included, to PyTorch; for the torch
   implementation itself this proves the committed file is current;
3. for a native twin (torch, tf_keras): tensor-by-tensor agreement with the Keras 3 definition in the
   same process.

The keras.applications variants have no PyTorch twin: their Keras 3 definition is compared with their
tf.keras twin in-process only.

The parity case (``twinbench.models._registry.TwinCase``) is small: smaller inputs and, for the deep full-size models,
fewer repeated blocks at full width. ViT-B/16 is checked on 1 of its 12 encoder blocks, GPT-2 small on 2 of its 12,
ResNet50 on one bottleneck block per stage (the first, with its downsampling shortcut) instead of 3-4-6-3: every
kind of layer, every stage and every width is in the check, and the blocks left out are the same code called again
with another index in every implementation. What the full depth adds, the weight mapping of every block and the
parameter count, ``test_parameter_count_matches_registry`` checks at the model's default size in every
implementation. Each environment still proves its own backend: torch the PyTorch twin (the fingerprint is current)
and keras[torch] against it, tensorflow keras[tensorflow] and the tf.keras twin, jax keras[jax].

The checks that take a minute or more (``LARGE_TWIN_CHECKS``: full-width classifiers, keras.applications at full depth,
and the deep models outside the torch environment) are in the large tier (``--run-large``, ``nox -s tests_large``).
"""

from __future__ import annotations

import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, impl_id, requires_backend
from parity_fixtures import fixture_path, has_torch_twin, observed
from twinbench.backends import get_runner
from twinbench.models import get_model_spec, list_models
from twinbench.twins.parity import (
    ParityError,
    batch_checksum,
    check_against_fingerprint,
    check_in_process,
    load_fingerprint,
)

pytestmark = requires_backend

EVERY_ENVIRONMENT = ("torch", "tensorflow", "jax")
# The twin checks of the large tier (--run-large), by model: the environments where they take a minute or more, each
# with its float64 copy. Every other model's twin check, and these elsewhere, run in the fast tier.
LARGE_TWIN_CHECKS = {
    # Full width at the twin case: torchvision's classifier (VGG19's 25,088 x 4,096 fc1, AlexNet's 9,216 x 4,096)
    # does not shrink with the input, 139M and 57M parameters. A fast twin needs a narrower classifier, which
    # torchvision's builder does not offer, and a new committed fingerprint.
    "vgg19": EVERY_ENVIRONMENT,
    "alexnet": EVERY_ENVIRONMENT,
    # keras.applications at full depth (their builders have no smaller variant), compared in-process with tf.keras.
    "resnet50_kerasapps": EVERY_ENVIRONMENT,
    "vgg19_kerasapps": EVERY_ENVIRONMENT,
    "mobilenet_v2_kerasapps": EVERY_ENVIRONMENT,
    # Full depth or full width: seconds in the torch environment, where the fast tier checks the PyTorch twin against
    # its fingerprint and keras[torch] against the twin; compiling them here takes a minute each. The same code at
    # small sizes (vit_tiny, gpt_tiny) stays in every environment's fast tier.
    "mobilenet_v2": ("tensorflow", "jax"),
    "resnet50": ("tensorflow", "jax"),
    "vit_b_16": ("tensorflow", "jax"),
    "gpt2": ("tensorflow", "jax"),
    # Checked at the same size in this environment's fast tier by tests/test_gnmt.py and tests/test_gpt2.py (the same
    # twins against their own committed fingerprints); the registry's twin case adds its float64 copies.
    "gnmt": ("tensorflow", "jax"),
    "gpt_tiny": ("tensorflow", "jax"),
}


def _large_here(model_name, pair=None) -> list:
    """``[pytest.mark.large]`` for a twin check in ``LARGE_TWIN_CHECKS`` here; with ``pair``, for a parameter count
    that tf.keras (which builds the full-size model in full, no shape-only build) takes for such a model."""
    large = BACKEND in LARGE_TWIN_CHECKS.get(model_name, ())
    if pair is not None:
        large = large and pair[0] == "tf_keras"
    return [pytest.mark.large] if large else []


def _cases(*, with_a_reference=False):
    """(model, (implementation, backend)) for every registered model and implementation runnable here.

    With ``with_a_reference``, only those that have something to be compared with here: a PyTorch
    fingerprint, or (for a native twin) the Keras definition. Native twins come first, so that the
    Keras observation they computed is still cached for the keras case of the same model.
    """
    cases = []
    for model_name in list_models():
        spec = get_model_spec(model_name)
        for pair in sorted(IMPLEMENTATIONS_HERE, key=lambda p: p[0] == "keras"):
            if pair[0] not in spec.builders or not spec.builds_in(pair[1]):
                continue
            if with_a_reference and pair[0] == "keras" and "torch" not in spec.builders:
                continue
            marks = _large_here(model_name) if with_a_reference else _large_here(model_name, pair)
            if with_a_reference:  # one pytest-xdist worker per model (--dist loadgroup): its Keras observation is cached
                marks = [*marks, pytest.mark.xdist_group(f"parity-{model_name}")]
            cases.append(pytest.param(model_name, pair, id=f"{model_name}-{impl_id(pair)}", marks=marks))
    return cases


@pytest.mark.parametrize(("model_name", "pair"), _cases())
def test_parameter_count_matches_registry(model_name, pair):
    spec = get_model_spec(model_name)
    runner = get_runner(*pair)
    # Full size, weights' shapes only (Runner.build_shapes: no initializer runs): the count is the same, the time
    # and memory of drawing e.g. VGG19's 143M weights are not spent.
    model = runner.build_shapes(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
    assert runner.count_params(model) == spec.params


@pytest.mark.parametrize(("model_name", "pair"), _cases(with_a_reference=True))
def test_twin_parity(model_name, pair):
    here = observed(*pair, model_name)
    assert here.round_trip_error is None, here.round_trip_error

    if has_torch_twin(model_name):
        path = fixture_path(model_name)
        assert path.exists(), f"no PyTorch fingerprint for {model_name}: run `nox -s parity_fixtures`"
        expected = load_fingerprint(path)
        assert batch_checksum(here.x) == expected["x_crc32"], "the parity batch has changed: regenerate the fixtures (nox -s parity_fixtures)"
        try:
            check_against_fingerprint(here, expected, lr=1e-3)
        except ParityError as err:
            raise ParityError(f"{impl_id(pair)} vs the PyTorch fingerprint: {err}") from None

    if pair[0] != "keras":
        keras_here = observed("keras", BACKEND, model_name)
        try:  # the envelope is the PyTorch twin's float32 error, or the Keras definition's for a model without one
            check_in_process(here, keras_here, lr=1e-3, with_reference=pair[0] == "torch" or not has_torch_twin(model_name))
        except ParityError as err:
            raise ParityError(f"{impl_id(pair)} vs keras[{BACKEND}] in-process: {err}") from None


def test_parity_error_is_an_assertion():
    """A failed twin check reads as a test failure, not an error."""
    assert issubclass(ParityError, AssertionError)
