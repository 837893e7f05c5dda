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
            cases.append(pytest.param(model_name, pair, id=f"{model_name}-{impl_id(pair)}"))
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
